"""Photograph the dashboard of a running server: `screenshot.py URL OUT_DIR` (see screenshot.sh).

URL is what `kaos ui` prints for the workspace (http://HOST:PORT/#/w/NAME)."""

from __future__ import annotations

import json
import sys
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.browser import chromium, wait_for


def full_page(driver, path: Path, width: int = 1360) -> None:
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(width, height + 120)
    time.sleep(0.4)
    driver.save_screenshot(str(path))
    print(f"wrote {path}")


def main(url: str, out: Path) -> None:
    base, _, fragment = url.partition("#")
    workspace = fragment.rsplit("/", 1)[-1]
    with urllib.request.urlopen(f"{base.rstrip('/')}/workspaces/{workspace}/progress") as r:
        points = json.load(r)["points"]
    with chromium(1360, 900) as driver:
        driver.get(url)
        wait_for(driver, "#progress-chart svg[data-drawn]")
        wait_for(driver, "#models-table")
        time.sleep(0.5)
        full_page(driver, out / "dashboard.png")
        driver.set_window_size(1360, 900)
        driver.get(f"{base.rstrip('/')}/#/m/{points[1]['model_id']}")
        wait_for(driver, "#provenance svg")
        wait_for(driver, "#logs")
        time.sleep(1.0)
        full_page(driver, out / "model.png")


if __name__ == "__main__":
    main(sys.argv[1], Path(sys.argv[2]))
