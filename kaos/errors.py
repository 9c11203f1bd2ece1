"""One exception hierarchy for every user-facing failure.

Each error carries a one-line message and, where one exists, the fix; the CLI prints them as one
red line and the API returns them as a 4xx, so a traceback is always a bug, never a message.
"""

from __future__ import annotations


class KaosError(Exception):
    """Base of every error kaos reports to a user."""

    exit_code = 1
    http_status = 400

    def __init__(self, message: str, fix: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.fix = fix

    def __str__(self) -> str:
        return f"{self.message} ({self.fix})" if self.fix else self.message


class BundleError(KaosError):
    """A bundle folder cannot be hashed or stored as it is (bad path, escaping symlink, ...)."""


class UnsafePathError(BundleError):
    """A path would land outside its bundle or destination."""


class IntegrityError(KaosError):
    """Stored or received bytes do not match their hash; the object is never served."""

    http_status = 422

    def __init__(self, message: str, digest: str | None = None, fix: str | None = None) -> None:
        super().__init__(message, fix)
        self.digest = digest


class ObjectNotFound(KaosError):
    """The store has no object with that hash."""

    http_status = 404

    def __init__(self, digest: str, what: str = "object") -> None:
        super().__init__(f"{what} {digest} is not in the store")
        self.digest = digest


class Conflict(KaosError):
    """The request clashes with the state things are in (409); the subclasses say which."""

    http_status = 409


class LockBusy(Conflict):
    """A catalog lock (a workspace's) stayed held by someone else longer than a request waits."""


class StoreBusy(Conflict):
    """Another process holds a lock that conflicts with this operation (e.g. gc vs. writers)."""


class ConfigError(KaosError):
    """A setting is missing or invalid."""


class NoWorkspace(ConfigError):
    """The client has no workspace to act on: none named, none set by `kaos workspace`."""

    def __init__(self) -> None:
        super().__init__("no workspace is set", "create one with 'kaos workspace create -n NAME'")


class InputError(KaosError):
    """Training inputs that cannot be used as given (bad grid, bad resources...)."""


class ManifestError(KaosError):
    """A remote data manifest that cannot be parsed or whose files cannot be fetched."""


class NotFound(KaosError):
    """No workspace, job, model or log by that name or id."""

    http_status = 404


class Ambiguous(Conflict):
    """An id prefix that matches more than one job or model."""


class WorkspaceBusy(Conflict):
    """The workspace has running jobs, so it cannot be removed."""


class JobFinished(Conflict):
    """The job has already ended; there is nothing to kill."""


class Unauthorized(KaosError):
    """The request carries no token, or one that names no user."""

    http_status = 401


class Forbidden(KaosError):
    """The token is valid, but its user may not do this (store maintenance is for admins)."""

    http_status = 403


class BuildFailed(KaosError):
    """The build ran and failed; the reason is one line, the details are in the build log."""


class TrainFailed(KaosError):
    """The train script failed, or its outputs break the contract."""


class Killed(KaosError):
    """The job was killed on request (one message, wherever a build or train noticed)."""

    def __init__(self, message: str = "killed on request") -> None:
        super().__init__(message)


class ServeError(KaosError):
    """An endpoint cannot be deployed or moved as asked."""


class NotServing(KaosError):
    """The endpoint exists but has no live revision to answer (failed, killed, restarting)."""

    http_status = 503


class EndpointTimeout(KaosError):
    """The endpoint took the request but gave no answer in time (a hanging predict)."""

    http_status = 504


class QueryError(KaosError):
    """A model query (filter, sort, page) that cannot be run as written."""

    http_status = 422


class LockError(KaosError):
    """A lock that cannot be used: unparsable, unpinned, or corrupt in the store."""


# -- the client's: what a server answered, or that none did ------------------------------------
class ServerUnreachable(KaosError):
    """No kaos server answers at the configured endpoint (or a download broke off)."""


class ServerError(KaosError):
    """The server refused a request: its one-line reason and fix, and the HTTP status."""

    def __init__(self, message: str, fix: str | None, status: int) -> None:
        super().__init__(message, fix)
        self.status = status
