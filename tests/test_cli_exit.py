"""How a `kaos` command ends: without the interpreter's teardown, yet with its exit code, its
whole output and the atexit handlers; the normal exit wherever another thread still runs."""

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from kaos import __version__
from tests.cli import Cli

# A command run as `kaos` runs it, with three witnesses: an atexit handler, an object only the
# interpreter's teardown frees, and (asked for) a thread still at work when the command ends.
_COMMAND = """
import atexit, sys, threading, time
from pathlib import Path

seen = Path(sys.argv[1])


class FreedAtTeardown:
    def __del__(self):
        (seen / "torn-down").write_text("")


kept = FreedAtTeardown()
atexit.register(lambda: (seen / "atexit").write_text(""))
if sys.argv[2] == "thread":
    def late():
        time.sleep(0.5)
        (seen / "thread").write_text("")

    threading.Thread(target=late).start()
sys.stdout.write("x" * 300_000 + "\\n")  # more than a pipe holds: flushed at the end, or lost
sys.argv = ["kaos", *sys.argv[3:]]
from kaos.cli.main import main

main()
"""

_SPEC = [
    (["version"], 0, "kaos "),
    (["nosuch"], 2, "No such command 'nosuch'"),
    (["init", "-e", "http://127.0.0.1:1", "-t", " padded "], 1, "leading or trailing whitespace"),
]


def _run(tmp_path: Path, thread: str, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", _COMMAND, str(tmp_path), thread, *argv],
        env={**os.environ, "KAOS_HOME": str(tmp_path / "home"), "NO_COLOR": "1"},
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(("argv", "code", "said"), _SPEC, ids=["ok", "usage", "kaos-error"])
def test_a_command_ends_without_teardown_but_with_its_code_output_and_atexit(
    tmp_path, argv, code, said
):
    proc = _run(tmp_path, "none", *argv)
    assert proc.returncode == code, proc.stderr
    assert proc.stdout.startswith("x" * 300_000 + "\n")
    assert said in proc.stdout + proc.stderr
    assert (tmp_path / "atexit").exists()
    assert not (tmp_path / "torn-down").exists()


def test_a_thread_still_running_gets_the_normal_exit_which_waits_for_it(tmp_path):
    proc = _run(tmp_path, "thread", "version")
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "thread").exists()
    assert (tmp_path / "atexit").exists()
    assert (tmp_path / "torn-down").exists()


@pytest.mark.parametrize("closed", [">&-", "2>&-"], ids=["stdout", "stderr"])
def test_a_command_started_without_stdout_or_stderr_still_succeeds(tmp_path, closed):
    proc = subprocess.run(
        ["sh", "-c", f'"$0" -m kaos version {closed}', sys.executable],
        env={**os.environ, "KAOS_HOME": str(tmp_path / "home")},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == ("" if closed == ">&-" else f"kaos {__version__}\n")


def test_a_deploy_closes_the_stat_cache_so_no_log_is_left_for_the_next_command(
    kaos_server, tmp_path
):
    """The interpreter's teardown used to close the stat cache's database; without it, a
    write-ahead log left behind is read back by every later command (40-215 ms after a
    million rows)."""
    data = tmp_path / "data" / "features"
    data.mkdir(parents=True)
    for i in range(300):
        (data / f"{i}.csv").write_text(f"{i},{i * i}\n")
        os.utime(data / f"{i}.csv", (1_600_000_000, 1_600_000_000))
    home = tmp_path / "home"
    cli = Cli(home, tmp_path, kaos_server.url)
    cli.ok("workspace", "create", "-n", "wal")
    cli.ok("train", "deploy", "-d", "data")
    assert (home / "state.db").exists()
    assert not (home / "state.db-wal").exists()
    with sqlite3.connect(home / "state.db") as db:
        assert db.execute("SELECT count(*) FROM state").fetchone() == (300,)
