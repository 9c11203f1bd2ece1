"""Docker executor benchmark (needs a Docker engine and the local base image).

    python benchmarks/docker_bench.py [--runs 5] [--base-image kaos-python:3.11]

Prints (medians):
  cached_build_s              build of an unchanged source: the image is found by its tag
  docker_build_s              a real image build of the same bundle, as the peer figure
  local_train_s / docker_train_s   the same small model trained by each executor
  container_train_overhead_s  docker_train_s - local_train_s
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import figure, median_of, timed

from kaos.executors.docker import DockerExecutor, DockerSettings
from kaos.executors.local import LocalExecutor
from kaos.pipeline.executor import BuildRequest, Cancel, TrainRequest
from kaos.pipeline.logs import JobLogs
from kaos.store import ContentStore, scan_folder
from kaos.store.backends import LocalBackend

TRAIN = """#!/usr/bin/env python3
import json, os, sys
out = sys.argv[1]
os.makedirs(os.path.join(out, "metrics"), exist_ok=True)
json.dump({"score": 1.0}, open(os.path.join(out, "metrics", "metrics.json"), "w"))
"""


def bundle(root: Path, tag: str) -> Path:
    model = root / "bench" / "model"
    model.mkdir(parents=True)
    (root / "bench" / "Dockerfile").write_text(
        f"ARG BASE_IMAGE=python:3.11-slim\nFROM ${{BASE_IMAGE}}\nRUN echo {tag}\n"
    )
    (root / "bench" / "requirements.txt").write_text("")
    (model / "train").write_text(TRAIN)
    os.chmod(model / "train", 0o755)
    return root


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--base-image", default="kaos-python:3.11")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="kaos-docker-bench-"))
    try:
        store = ContentStore(LocalBackend(work / "store"), work / "home")
        docker_ex = DockerExecutor(store, work / "home", DockerSettings(base_image=args.base_image))
        local_ex = LocalExecutor(store, work / "home")
        log = JobLogs(work / "logs").writer("bench")
        data = work / "data" / "features"
        data.mkdir(parents=True)
        (data / "x.csv").write_text("1\n")
        data_digest = store.push(scan_folder(data.parent)).tree.digest

        def fresh_build() -> float:
            src = store.push(
                scan_folder(bundle(work / uuid.uuid4().hex, uuid.uuid4().hex))
            ).tree.digest
            request = BuildRequest("bench", src, "bench")
            seconds = timed(lambda: docker_ex.build(request, log, Cancel()))
            docker_ex.client.images.remove(f"build-train-bench:{src[:5]}", force=True)
            return seconds

        source = store.push(scan_folder(bundle(work / "src", "fixed"))).tree.digest
        request = BuildRequest("bench", source, "bench")
        image = docker_ex.build(request, log, Cancel()).ref
        env = local_ex.build(request, log, Cancel()).ref
        figure(
            "cached_build_s",
            median_of(args.runs, lambda: timed(lambda: docker_ex.build(request, log, Cancel()))),
            "s",
        )
        figure("docker_build_s", median_of(args.runs, fresh_build), "s")

        def train(executor, image_ref: str) -> float:
            req = TrainRequest("bench", 0, source, data_digest, "bench", image_ref, None)
            return timed(lambda: executor.train(req, log, Cancel()))

        local = median_of(args.runs, lambda: train(local_ex, env))
        docker = median_of(args.runs, lambda: train(docker_ex, image))
        figure("local_train_s", local, "s")
        figure("docker_train_s", docker, "s")
        figure("container_train_overhead_s", docker - local, "s")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
