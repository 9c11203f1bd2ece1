"""Ctrl-C of `kaos train deploy` while the stat cache's rows are still being written in the
background (kaos/store/state.py): the command ends at once, in one line at most, and the
cache's database stays whole."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from tests.cli import Cli

FILES = 2000
OLD = 1_700_000_000  # a file's mtime long ago


def deploy(cli: Cli, data: Path, out: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "kaos", "train", "deploy", "-d", str(data), "--json"],
        cwd=cli.cwd,
        env=cli.env,
        stdout=out.open("wb"),
        stderr=subprocess.PIPE,
    )


def test_ctrl_c_while_the_stat_cache_waits_to_write_ends_deploy_at_once(kaos_server, tmp_path):
    """Another process holds the cache's write lock (a second kaos, a database browser), so
    its rows wait: the deploy is done, and Ctrl-C then used to print the interpreter's
    traceback from its wait for the writing thread."""
    home, cwd = tmp_path / "home", tmp_path / "cwd"
    home.mkdir()
    cwd.mkdir()
    (cwd / "train.py").write_text("print('hi')\n")
    cli = Cli(home, cwd, kaos_server.url)
    cli.ok("workspace", "create", "-n", "w")
    first, data = tmp_path / "first", tmp_path / "data"
    for folder, count in ((first, 3), (data, FILES)):
        for i in range(count):
            path = folder / "samples" / f"d{i % 20:02d}" / f"f{i:05d}.txt"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(f"{folder.name} {i}\n")
            os.utime(path, (OLD, OLD))  # past the racy window: the cache keeps their rows
    cli.ok("train", "deploy", "-d", str(first))  # makes the cache's database
    holder = sqlite3.connect(home / "state.db", isolation_level=None)
    try:
        holder.execute("BEGIN IMMEDIATE")  # its write lock, for as long as this test wants
        out = tmp_path / "out.json"
        proc = deploy(cli, data, out)
        deadline = time.monotonic() + 60
        while not out.read_bytes().strip() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert json.loads(out.read_bytes())  # the deploy is done; its rows are waiting
        assert proc.poll() is None
        proc.send_signal(signal.SIGINT)
        started = time.monotonic()
        _, err = proc.communicate(timeout=60)
        assert time.monotonic() - started < 5  # not the cache's 30 s wait for the lock
        assert proc.returncode == 130 and b"Traceback" not in err, err.decode()
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    check = sqlite3.connect(home / "state.db")
    try:
        assert check.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    finally:
        check.close()
    cli.ok("train", "deploy", "-d", str(data))  # the cache works on
