"""The train contract's folders, shared by executors that run on this machine.

<job dir>/source/<name>/model/train   run with model/ as working directory
<job dir>/data/...                    KAOS_DATA_DIR (hardlinked from the file cache)
<job dir>/output/                     KAOS_OUTPUT_DIR: model/ and metrics/metrics.json
<job dir>/hyperparams.json            KAOS_HYPERPARAMS (only with a grid)
KAOS_SEED (from the train key) and PYTHONHASHSEED=0 make reruns of the same inputs draw alike.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

from kaos.errors import TrainFailed
from kaos.pipeline.executor import JobLog, TrainOutcome, TrainRequest
from kaos.store import ContentStore
from kaos.store.scan import scan_folder

METRICS_FILE = "metrics/metrics.json"


@dataclass(frozen=True)
class TrainDirs:
    root: Path
    source: Path
    data: Path
    output: Path
    hyperparams: Path | None
    bundle_name: str
    seed: int = 0

    @property
    def model_dir(self) -> Path:
        return self.source / self.bundle_name / "model"

    def contract_env(self, container_paths: TrainDirs | None = None) -> dict[str, str]:
        """The contract's variables, for paths as seen by the train script."""
        seen = container_paths or self
        env = {
            "KAOS_DATA_DIR": str(seen.data),
            "KAOS_OUTPUT_DIR": str(seen.output),
            "KAOS_SEED": str(self.seed),
            "PYTHONHASHSEED": "0",  # set and dict order of str keys stays the same run to run
        }
        if seen.hyperparams is not None:
            env["KAOS_HYPERPARAMS"] = str(seen.hyperparams)
        return env


def prepare(store: ContentStore, request: TrainRequest, root: Path) -> TrainDirs:
    """Materialise source and data (hardlinks from the file cache) and the hyperparameters."""
    root.mkdir(parents=True, exist_ok=True)
    source = store.checkout(request.source, root / "source")
    data = store.checkout(request.data, root / "data")
    output = root / "output"
    output.mkdir()
    hyperparams = None
    if request.params is not None:
        hyperparams = root / "hyperparams.json"
        hyperparams.write_text(json.dumps(dict(request.params), indent=2))
    dirs = TrainDirs(root, source, data, output, hyperparams, request.bundle_name, request.seed)
    train = dirs.model_dir / "train"
    if not train.is_file():
        raise TrainFailed(f"{request.bundle_name}/model/train is missing from the source bundle")
    if not os.access(train, os.X_OK):
        raise TrainFailed(f"{request.bundle_name}/model/train is not executable", "chmod +x it")
    return dirs


def collect(
    store: ContentStore, dirs: TrainDirs, log: JobLog, node: str | None = None
) -> TrainOutcome:
    """Read the metrics, store the output tree; refuse outputs that break the contract."""
    metrics = read_metrics(dirs.output / METRICS_FILE, log)
    if not any(dirs.output.rglob("*")):
        raise TrainFailed("the train script wrote nothing to its output folder")
    tree = store.push(scan_folder(dirs.output, allow_empty=False)).tree
    return TrainOutcome(tree.digest, metrics, node)


def read_metrics(path: Path, log: JobLog) -> dict[str, float | int | str | bool | None]:
    if not path.is_file():
        log.write(f"kaos: no {METRICS_FILE} was written; the model has no metrics\n")
        return {}
    try:
        metrics = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as exc:
        raise TrainFailed(f"{METRICS_FILE} is not valid JSON: {exc}") from None
    if not isinstance(metrics, dict):
        raise TrainFailed(f"{METRICS_FILE} must hold a flat JSON object of name -> value")
    flat = {}
    for name, value in metrics.items():
        if isinstance(value, dict | list):
            value = json.dumps(value)  # kept, but not sortable
        if isinstance(value, float) and not math.isfinite(value):
            value = None
        flat[str(name)] = value
    return flat
