#!/usr/bin/env bash
# docs/img/dashboard.png (workspace page) and docs/img/model.png (model page) from a real run:
# a fresh local server, the seed walkthrough's three deploys, then a small hyperparameter grid,
# photographed by headless Chromium (Debian's chromium + chromium-driver, selenium).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
export PATH="$root/.venv/bin:$PATH"
work="$(mktemp -d)"
export KAOS_HOME="$work/home"
export KAOS_PORT="${KAOS_PORT:-$(python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}"
cd "$work"
trap 'kaos server stop >/dev/null 2>&1 || true; rm -rf "$work"' EXIT

kaos workspace create -n mnist
kaos template get --name mnist
kaos train deploy -s templates/mnist/model-train -d templates/mnist/data --wait
sed -i "s/KERNEL = 'poly'/KERNEL = 'linear'/" templates/mnist/model-train/mnist/model/train
kaos train deploy -s templates/mnist/model-train --wait
cat templates/mnist/more-data/training-extra.csv.gz >> templates/mnist/data/features/training/training.csv.gz
kaos train deploy -d templates/mnist/data --wait
echo '{"kernel": ["poly", "rbf"], "gamma": [0.01, 0.001], "degree": [3]}' > grid.json
kaos train deploy -h grid.json -p 2 --wait

mkdir -p "$root/docs/img"
python "$root/scripts/screenshot.py" "$(kaos ui --json | python -c 'import json,sys; print(json.load(sys.stdin)["url"])')" "$root/docs/img"
