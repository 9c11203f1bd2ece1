"""Serving: a trained model as an HTTP endpoint (`kaos serve`).

An endpoint is a pointer (workspace, name) -> revision -> model id, like a git ref: deploy moves
it, rollback moves it back, `--follow METRIC` moves it when a better model lands. Each revision
runs `runtime.py` (stdlib only) in the model's own environment (the local environment's Python,
or a container of its docker image), so it predicts with exactly the packages it trained with.

formats.py   MLflow request bodies -> rows (pure, stdlib only: the runtime imports it too)
runtime.py   the endpoint process: /invocations, /ping, /health, /version, micro-batching
follow.py    which model an endpoint following a metric should serve (pure)
records.py   endpoint and revision records, their states
process.py   one revision's process: its command (local or docker), start, probe, stop
forward.py   the kaos route's keep-alive hop to a revision
manager.py   starts, swaps, drains, restarts and restores revision processes
"""
