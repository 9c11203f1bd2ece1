"""schemathesis against the server's own OpenAPI schema, bounded in time: no 5xx, ever."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import KaosServer

pytestmark = pytest.mark.slow


def test_no_generated_request_makes_the_server_fail(tmp_path):
    exe = shutil.which("schemathesis", path=str(Path(sys.executable).parent))
    if exe is None:
        pytest.skip("schemathesis is not installed (it is in the dev extras)")
    (tmp_path / "home").mkdir()
    server = KaosServer(tmp_path / "home")
    try:
        result = subprocess.run(
            [exe, "run", f"{server.url}/openapi.json", "--checks", "not_a_server_error",
             "--max-examples", "25", "--max-time", "45", "--seed", "20261127"],
            capture_output=True, text=True, timeout=300, cwd=tmp_path,
        )  # fmt: skip
    finally:
        server.stop()
    assert result.returncode == 0, result.stdout[-3000:]
    assert " passed" in result.stdout
