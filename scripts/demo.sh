#!/usr/bin/env bash
# The seed walkthrough on a local kaos server: poly kernel, linear kernel, more data.
# Run through `make demo`; everything happens in .kaos-demo/ (its own KAOS_HOME).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
demo="$root/.kaos-demo"
export PATH="$root/.venv/bin:$PATH"
export KAOS_HOME="$demo/home"
export KAOS_PORT="${KAOS_PORT:-8585}"

rm -rf "$demo"
mkdir -p "$demo"
cd "$demo"
trap 'kaos server stop >/dev/null 2>&1 || true' EXIT

step() { printf '\n\033[1m$ %s\033[0m\n' "$*"; "$@"; }

# No `kaos init`: the first command starts the embedded local server and says so.
step kaos workspace create -n mnist
step kaos template get --name mnist

echo; echo "== 1. the initial model (poly kernel) =="
step kaos train deploy -s templates/mnist/model-train -d templates/mnist/data --wait
step kaos train list
step kaos train info -i 0 -s accuracy_test

echo; echo "== 2. a changed kernel: the same command =="
sed -i "s/KERNEL = 'poly'/KERNEL = 'linear'/" templates/mnist/model-train/mnist/model/train
step kaos train deploy -s templates/mnist/model-train --wait
step kaos train info -i 0 -s accuracy_test

echo; echo "== 3. more training data (rows appended to the training file) =="
cat templates/mnist/more-data/training-extra.csv.gz >> templates/mnist/data/features/training/training.csv.gz
step kaos train deploy -d templates/mnist/data --wait
step kaos train list
step kaos train info -i 0 -s accuracy_test

echo; echo "== the three models, oldest first =="
kaos train list --json > jobs.json
python3 - <<'PY'
import json, subprocess

jobs = json.load(open("jobs.json"))["training"]
for job in reversed(jobs):
    out = subprocess.run(["kaos", "train", "info", "-j", job["id"], "--json"],
                         check=True, capture_output=True, text=True).stdout
    for model in json.loads(out)["models"]:
        accuracy = model["metrics"]["accuracy_test"]
        print(f"{model['model_id']}  accuracy_test={accuracy:.3f}")
PY
