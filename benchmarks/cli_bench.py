"""CLI start-up cost: `kaos --help` and `kaos train list` against a running local server.

    python benchmarks/cli_bench.py [--runs 10]

Prints medians: cli_help_s, train_list_s (target: each <= 0.5 s), and git_help_s as a peer
figure for a native CLI on the same machine.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import figure, free_port, median_of, timed


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="kaos-cli-bench-"))
    kaos = str(Path(sys.executable).parent / "kaos")
    env = {**os.environ, "KAOS_HOME": str(work / "home"), "KAOS_PORT": str(free_port())}

    def run(*argv: str) -> None:
        subprocess.run([kaos, *argv], env=env, cwd=work, check=True, stdout=subprocess.DEVNULL)

    try:
        run("workspace", "create", "-n", "bench")  # starts the embedded server
        figure("cli_help_s", median_of(args.runs, lambda: timed(lambda: run("--help"))), "s")
        figure(
            "train_list_s", median_of(args.runs, lambda: timed(lambda: run("train", "list"))), "s"
        )
        if shutil.which("git"):
            git = lambda: subprocess.run(["git", "--help"], stdout=subprocess.DEVNULL, check=True)  # noqa: E731
            figure("git_help_s", median_of(args.runs, lambda: timed(git)), "s")
    finally:
        subprocess.run(
            [kaos, "server", "stop"], env=env, cwd=work, stdout=subprocess.DEVNULL, check=False
        )
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
