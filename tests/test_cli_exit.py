"""How a `kaos` command ends: without the interpreter's teardown, yet with its exit code, its
whole output and the atexit handlers; the normal exit wherever another thread still runs."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

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
