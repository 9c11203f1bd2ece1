"""A throwaway PostgreSQL server for the tests: Debian's `initdb` and `pg_ctl` on a temp folder
and a free 127.0.0.1 port, one fresh database per test. initdb refuses root, so as root the
server runs as the `postgres` system user (or `nobody`)."""

from __future__ import annotations

import os
import pwd
import re
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path


def postgres_bin() -> Path | None:
    """The folder with initdb and pg_ctl: the newest /usr/lib/postgresql/N/bin, else PATH."""

    def version(path: Path) -> int:
        match = re.search(r"/(\d+)/bin$", str(path))
        return int(match[1]) if match else 0

    found = [p.parent for p in Path("/usr/lib/postgresql").glob("*/bin/pg_ctl")]
    if found:
        return max(found, key=version)
    on_path = shutil.which("pg_ctl")
    return Path(on_path).parent if on_path and shutil.which("initdb") else None


class PostgresServer:
    def __init__(self, bin_dir: Path, port: int) -> None:
        self.bin = bin_dir
        self.port = port
        self.folder = Path(tempfile.mkdtemp(prefix="kaos-pg-"))  # not under root's 0700 tmp
        self.user = "kaos"
        self._as: list[str] = []
        if os.geteuid() == 0:
            owner = next((u for u in ("postgres", "nobody") if _exists(u)), None)
            if owner is None:
                raise RuntimeError("running as root and no 'postgres' or 'nobody' user")
            entry = pwd.getpwnam(owner)
            os.chown(self.folder, entry.pw_uid, entry.pw_gid)
            self._as = [
                "setpriv",
                f"--reuid={entry.pw_uid}",
                f"--regid={entry.pw_gid}",
                "--clear-groups",
            ]
        self.data = self.folder / "data"
        self._run("initdb", "-D", self.data, "-U", self.user, "-A", "trust", "-E", "UTF8",
                  "--no-sync", "--no-instructions")  # fmt: skip
        self.start()

    def start(self) -> None:
        options = (
            f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=off"
            " -c synchronous_commit=off -c full_page_writes=off -c max_connections=300"
        )
        self._run("pg_ctl", "-D", self.data, "-o", options, "-l", self.folder / "log", "-w",
                  "start")  # fmt: skip

    def halt(self) -> None:
        """Stop the server, keeping its data (`start` brings it back)."""
        self._run("pg_ctl", "-D", self.data, "-m", "fast", "-w", "stop")

    def _run(self, tool: str, *args: object) -> None:
        command = [*self._as, str(self.bin / tool), *map(str, args)]
        done = subprocess.run(command, capture_output=True, text=True, cwd=self.folder)
        if done.returncode:
            log = self.folder / "log"
            raise RuntimeError(
                f"{tool} failed: {done.stderr or done.stdout}"
                + (log.read_text() if log.exists() else "")
            )

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{database}"

    def new_database(self) -> str:
        """A fresh empty database; its URL."""
        import psycopg

        name = f"t_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        return self.url(name)

    def stop(self) -> None:
        try:
            if (self.data / "postmaster.pid").exists():  # not halted
                self._run("pg_ctl", "-D", self.data, "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)


def _exists(user: str) -> bool:
    try:
        pwd.getpwnam(user)
    except KeyError:
        return False
    return True
