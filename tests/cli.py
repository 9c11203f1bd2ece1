"""Run the real `kaos` command line in a subprocess, as a user would."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass
class Result:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


class Cli:
    def __init__(self, home: Path, cwd: Path, endpoint: str | None = None) -> None:
        self.env = {**os.environ, "KAOS_HOME": str(home), "NO_COLOR": "1"}
        self.env.pop("KAOS_WORKSPACE", None)
        self.cwd = cwd
        if endpoint:
            self.ok("init", "-e", endpoint)

    def run(self, *args: str, timeout: float = 600) -> Result:
        proc = subprocess.run(
            [sys.executable, "-m", "kaos", *args],
            cwd=self.cwd,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        return Result(proc.returncode, proc.stdout, proc.stderr)

    def start(self, *args: str) -> Running:
        """Start a command without waiting for it (several at once)."""
        proc = subprocess.Popen(
            [sys.executable, "-m", "kaos", *args],
            cwd=self.cwd,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        return Running(proc)

    def ok(self, *args: str, timeout: float = 600) -> Result:
        result = self.run(*args, timeout=timeout)
        assert result.code == 0, f"kaos {' '.join(args)} failed:\n{result.out}\n{result.err}"
        return result

    def fails(self, *args: str) -> Result:
        result = self.run(*args)
        assert result.code != 0, f"kaos {' '.join(args)} should have failed:\n{result.out}"
        assert "Traceback" not in result.err, result.err
        return result


@dataclass
class Running:
    proc: subprocess.Popen[str]

    def finish(self, timeout: float = 600) -> Result:
        out, err = self.proc.communicate(timeout=timeout)
        return Result(self.proc.returncode, out, err)
