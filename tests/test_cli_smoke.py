import subprocess
import sys

from kaos import __version__


def test_kaos_console_script_runs():
    out = subprocess.run(
        [sys.executable, "-m", "kaos", "version"], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == f"kaos {__version__}"
