import os
import subprocess
import sys

from kaos import __version__


def test_kaos_console_script_runs():
    out = subprocess.run(
        [sys.executable, "-m", "kaos", "version"], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == f"kaos {__version__}"


def test_docker_executor_without_an_engine_is_one_clear_error(tmp_path):
    env = {**os.environ, "KAOS_HOME": str(tmp_path), "DOCKER_HOST": "unix:///nonexistent.sock"}
    result = subprocess.run(
        [sys.executable, "-m", "kaos", "server", "start", "--executor", "docker", "--port", "9"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert result.returncode != 0
    assert result.stderr.strip().splitlines() == [
        "Error: cannot reach the Docker engine (DockerException) "
        "(start dockerd (or set DOCKER_HOST), or use --executor local)"
    ]
