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


class StoreBusy(KaosError):
    """Another process holds a lock that conflicts with this operation (e.g. gc vs. writers)."""

    http_status = 409


class ConfigError(KaosError):
    """A setting is missing or invalid."""
