"""Where kaos keeps local state, and the client's saved settings (`kaos init`)."""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

DEFAULT_PORT = 8585


def kaos_home() -> Path:
    return Path(os.environ.get("KAOS_HOME") or Path.home() / ".kaos").expanduser()


def default_endpoint() -> str:
    return f"http://127.0.0.1:{os.environ.get('KAOS_PORT') or DEFAULT_PORT}"


@dataclass
class ClientConfig:
    endpoint: str | None = None  # None: the embedded local server
    token: str | None = None
    workspace: str | None = None

    @property
    def path(self) -> Path:
        return kaos_home() / "config.json"

    @classmethod
    def load(cls) -> ClientConfig:
        path = kaos_home() / "config.json"
        if not path.is_file():
            return cls()
        data = json.loads(path.read_text())
        return cls(**{k: data.get(k) for k in ("endpoint", "token", "workspace")})

    def save(self) -> None:
        """Atomic, and readable by its owner only: it may hold a token."""
        path = self.path
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".config-")
        with os.fdopen(fd, "w") as f:
            json.dump(asdict(self), f, indent=2)
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)


def stat_cache_path() -> Path:
    """The client's stat cache: a file's stat record -> its digest, so rescans read little."""
    return kaos_home() / "state.db"


def server_pid_file() -> Path:
    """Where a server started from this KAOS_HOME records its pid and URL."""
    return kaos_home() / "server.pid"
