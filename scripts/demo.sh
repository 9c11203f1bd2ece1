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

echo; echo "== 4. serve the best model; better ones take over by themselves =="
step kaos serve deploy -n mnist --follow accuracy_test
step kaos serve list
python3 - "http://127.0.0.1:$KAOS_PORT/serve/mnist/mnist/invocations" <<'PY'
import gzip, json, sys, urllib.request

with gzip.open("templates/mnist/data/features/test/test.csv.gz", "rt") as f:
    rows = [[float(v) for v in line.split(",")] for line in f.read().splitlines()[:20]]
body = json.dumps({"instances": [row[1:] for row in rows]}).encode()
request = urllib.request.Request(sys.argv[1], body, {"Content-Type": "application/json"})
predictions = json.load(urllib.request.urlopen(request))["predictions"]
right = sum(int(p) == int(row[0]) for p, row in zip(predictions, rows))
print(f"{right} of {len(rows)} test digits right through {sys.argv[1]}")
PY
