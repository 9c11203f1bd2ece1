"""The dashboard with 1,000 models: one page of the models API, and a real browser's load.

    python benchmarks/ui_bench.py [--models 1000] [--runs 5]

Prints medians: ui_models_api_ms (GET /workspaces/W/models, one page of 50 sorted by a metric,
target <= 100 ms) and ui_load_s (headless Chromium: navigation start to the progress chart
drawn with every model, target <= 1.5 s).

To get 1,000 models cheaply the bench writes them straight into a fresh catalog (100 deploys,
each a 10-combination grid job) before starting a real `kaos server` on it: the API and the page
read the catalog exactly as they would after real training, but nothing trains.
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parent.parent))
from _common import figure, free_port, median_of, timed

from kaos.pipeline.catalog import SqliteCatalog
from kaos.pipeline.inputs import Grid, TrainingInputs
from kaos.pipeline.records import Job, Model
from kaos.pipeline.states import JobState


def seed(home: Path, workspace: str, models: int, per_job: int = 10) -> None:
    """`models` successful models in one workspace: deploys alternate source and data changes,
    each a grid over C and gamma, with an accuracy that improves on the whole."""
    rng = random.Random(7)
    catalog = SqliteCatalog(home / "catalog.db")
    catalog.create_workspace(workspace)
    now = time.time() - models * 10
    grid = Grid.from_json({"C": [0.1, 1, 10, 100, 1000], "gamma": [0.001, 0.01]})
    for d in range(models // per_job):
        source = f"{rng.getrandbits(128):032x}"
        data = f"{rng.getrandbits(128):032x}"
        inputs = TrainingInputs(source=source, data=data, grid=grid)
        deploy = catalog.record_deploy(
            workspace, "bench", inputs, {"source": source, "grid": grid.to_json()}, False
        )
        job_id = f"{rng.getrandbits(128):032x}"
        created = now + d * 10 * per_job
        rows = []
        for i, params in enumerate(grid.combinations()[:per_job]):
            accuracy = min(0.99, 0.8 + 0.15 * d / (models // per_job) + rng.uniform(-0.03, 0.03))
            output = f"{rng.getrandbits(128):032x}"
            rows.append(
                Model(
                    job_id,
                    i,
                    f"{rng.getrandbits(128):032x}",
                    params,
                    JobState.SUCCESS,
                    f"{source[:5]}_{data[:5]}:{output[:6]}",
                    output,
                    {"accuracy_test": round(accuracy, 4), "loss": round(1 - accuracy, 4)},
                    created + i,
                    created + i + 5,
                )
            )
        job = Job(
            job_id,
            "train",
            workspace,
            deploy.id,
            JobState.SUCCESS,
            created,
            created,
            created + per_job + 5,
            source,
            data,
            "bench-image",
            "bench",
            True,
            4,
        )
        catalog.add_job(job, rows)


def start_server(home: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "kaos", "server", "start", "--port", str(port)],
        env={**os.environ, "KAOS_HOME": str(home)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            urllib.request.urlopen(url + "/health", timeout=1)
            return proc, url
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("the kaos server did not start")


def page_load_s(url: str) -> float:
    """Navigation start to the progress chart drawn, as the browser's own clock measures it."""
    from tests.browser import chromium, wait_for

    with chromium() as driver:
        driver.get(url + "/#/w/bench")
        wait_for(driver, "#progress-chart svg[data-drawn]", timeout=60)
        return driver.execute_script(
            "return (performance.getEntriesByName('kaos:chart-drawn').pop().startTime) / 1000"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--models", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="kaos-ui-bench-")) / "home"
    home.mkdir(parents=True)
    seed(home, "bench", args.models)
    proc, url = start_server(home)
    try:
        api = f"{url}/workspaces/bench/models?sort=-metrics.accuracy_test&limit=50"
        urllib.request.urlopen(api).read()  # warm: first request imports and caches
        figure(
            "ui_models_api_ms",
            1000
            * median_of(args.runs * 4, lambda: timed(lambda: urllib.request.urlopen(api).read())),
            "ms",
        )
        figure("ui_load_s", median_of(args.runs, lambda: page_load_s(url)), "s")
    finally:
        proc.terminate()
        proc.wait()


if __name__ == "__main__":
    main()
