"""What a long client call tells whoever watches it: the CLI draws it, Python users see nothing.

`Reporter` is the protocol; `Silent` the null object used when nobody watches.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from kaos.store.progress import Progress

if TYPE_CHECKING:
    from kaos.client.bundles import Bundle


class Bar(Progress, Protocol):
    """A progress callback that is told when its work is over."""

    def close(self) -> None: ...


class Reporter(Protocol):
    def server_started(self, endpoint: str, store: Path) -> None:
        """A local server was started because none answered."""
        ...

    def bar(self, label: str) -> Bar:
        """A progress bar for one long step (an upload, an extraction)."""
        ...

    def uploading(self, kind: str, folder: Path) -> None:
        """A bundle folder is about to be scanned and sent."""
        ...

    def uploaded(self, bundle: Bundle) -> None:
        """The server now holds every object of this bundle."""
        ...

    def sending_manifest(self, path: Path) -> None:
        """A remote data manifest goes with the deploy (the server downloads its files)."""
        ...

    def job_changed(self, job: dict[str, Any]) -> None:
        """A followed job entered a new state."""
        ...

    def model_trained(self, model: dict[str, Any]) -> None:
        """A followed training job succeeded; one call per model it trained."""
        ...


class _NoBar:
    def __call__(self, phase: str, done: int, total: int) -> None:
        return None

    def close(self) -> None:
        return None


class Silent:
    """Tells nobody anything: the default for Python users and `--json`."""

    def server_started(self, endpoint: str, store: Path) -> None:
        return None

    def bar(self, label: str) -> Bar:
        return _NoBar()

    def uploading(self, kind: str, folder: Path) -> None:
        return None

    def uploaded(self, bundle: Bundle) -> None:
        return None

    def sending_manifest(self, path: Path) -> None:
        return None

    def job_changed(self, job: dict[str, Any]) -> None:
        return None

    def model_trained(self, model: dict[str, Any]) -> None:
        return None
