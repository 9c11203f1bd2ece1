"""`kaos serve`: a trained model as an HTTP endpoint (deploy, list, info, provenance, logs,
build-logs, rollback, kill, predict). Each command calls the client and renders its answer."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from kaos.cli.common import JsonOpt, WorkspaceOpt

app = typer.Typer(no_args_is_help=True)  # its help line: kaos.cli.main.GROUPS

NameOpt = Annotated[str, typer.Option("-n", "--name", help="endpoint name")]


@app.command()
def deploy(
    model: Annotated[
        str | None, typer.Option("-m", "--model", help="model id (any unique prefix)")
    ] = None,
    name: Annotated[
        str | None, typer.Option("-n", "--name", help="endpoint name (default: the bundle's)")
    ] = None,
    follow: Annotated[
        str | None,
        typer.Option("--follow", help="swap to better models by this metric (-loss: lower)"),
    ] = None,
    port: Annotated[int | None, typer.Option("--port", help="127.0.0.1 port to serve on")] = None,
    replicas: Annotated[
        int | None, typer.Option("--replicas", min=1, help="processes (ray; default 1)")
    ] = None,
    cpu: Annotated[float | None, typer.Option("--cpu", help="CPUs per replica")] = None,
    memory: Annotated[str | None, typer.Option("--memory", help="memory, e.g. 2g")] = None,
    gpu: Annotated[int | None, typer.Option("--gpu", help="GPUs per replica")] = None,
    max_batch_size: Annotated[
        int | None,
        typer.Option("--max-batch-size", min=0, help="micro-batch up to N rows (0, default: off)"),
    ] = None,
    max_latency_ms: Annotated[
        float | None,
        typer.Option("--max-latency-ms", min=0, help="wait at most this for a batch (default 5)"),
    ] = None,
    serve_source: Annotated[
        Path | None,
        typer.Option("-s", "--serve-source", help="kaos 1.0: a bundle whose model/serve serves"),
    ] = None,
    ws: WorkspaceOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Serve a model; deploying to an existing name swaps it in once it answers (and keeps
    the replicas, batching and resources this deploy leaves out)."""
    from kaos.cli import context
    from kaos.cli.render import echo, print_json

    if model is None and follow is None:
        from kaos.errors import KaosError

        raise KaosError("which model?", "pass -m MODEL_ID (or --follow METRIC for the best)")
    api = context.client()
    body: dict[str, Any] = {
        "model_id": model,
        "name": name,
        "follow": follow,
        "port": port,
        "replicas": replicas,
        "max_batch_size": max_batch_size,
        "max_latency_ms": max_latency_ms,
    }
    if any(v is not None for v in (cpu, memory, gpu)):
        body["resources"] = {"cpu": cpu, "memory": memory, "gpu": gpu or 0}
    if serve_source is not None:
        body["serve_source"] = _push_serve_source(serve_source, quiet=as_json)
    result = api.serve_deploy(context.workspace(ws), **body)
    if as_json:
        print_json(result)
        return
    echo(f" ✔ Serving {result['model_id']} as {result['name']} (revision {result['revision']})")
    echo(f"   {result['url']}/invocations")
    echo(f"   {api.endpoint.rstrip('/')}{result['route']}/invocations")
    if result["follow"]:
        echo(f"   following {result['follow']}: better models take over by themselves")


def _push_serve_source(folder: Path, quiet: bool) -> str:
    """Hash and upload a serve source (only what the server lacks); the server checks it."""
    from kaos.cli import context
    from kaos.cli.render import echo
    from kaos.errors import BundleError

    if not folder.is_dir():
        raise BundleError(f"serve source path not found: {folder}", "check the path you passed")
    if not quiet:
        echo(f"Submitting serve source bundle: {folder}")
    return context.uploader(quiet=quiet).upload_folder(folder, "serve source bundle")


@app.command("list")
def list_(ws: WorkspaceOpt = None, as_json: JsonOpt = False) -> None:
    """Endpoints of the workspace: name, model, state, URL, started."""
    from kaos.cli import context
    from kaos.cli.render import ascii_table, echo, http_date, print_json

    api = context.client()
    workspace = context.workspace(ws)
    endpoints = api.endpoints(workspace)
    if as_json:
        print_json(endpoints)
        return
    if not endpoints:
        echo(f"No endpoints in workspace {workspace}: serve one with 'kaos serve deploy -m MODEL'")
        return
    rows = [
        [e["name"], e["model_id"] or "", e["state"], e["url"] or "", http_date(e["started"])]
        for e in endpoints
    ]
    echo(ascii_table(["name", "model_id", "state", "url", "started"], rows, title="SERVING"))


@app.command()
def info(name: NameOpt, ws: WorkspaceOpt = None, as_json: JsonOpt = False) -> None:
    """An endpoint's revisions (swaps with both models and values), requests, errors, latency."""
    from kaos.cli import context
    from kaos.cli.render import ascii_table, echo, http_date, print_json

    api = context.client()
    e = api.endpoint_detail(context.workspace(ws), name)
    if as_json:
        print_json(e)
        return
    stats = e["stats"]
    echo()
    echo(f"    Endpoint: {e['name']}")
    echo(f"    State: {e['state']}" + (f" ({e['reason']})" if e["reason"] else ""))
    echo(f"    Model: {e['model_id']}")
    echo(f"    URL: {e['url'] or '-'}")
    echo(f"    Route: {api.endpoint.rstrip('/')}{e['route']}")
    if e["follow"]:
        echo(f"    Following: {e['follow']}")
    echo(
        f"    Requests: {stats['requests']}  Errors: {stats['errors']}  "
        f"p50: {_ms(stats['p50_ms'])}  p99: {_ms(stats['p99_ms'])}"
    )
    echo()
    rows = [
        [r["id"], r["model_id"], r["state"], _cause(r), http_date(r["started"]),
         r["stats"]["requests"], r["stats"]["errors"]]
        for r in reversed(e["revisions"])
    ]  # fmt: skip
    headers = ["revision", "model_id", "state", "cause", "started", "requests", "errors"]
    echo(ascii_table(headers, rows, title="REVISIONS"))


def _cause(revision: dict[str, Any]) -> str:
    if revision["cause"] != "follow":
        return str(revision["cause"])
    return (
        f"follow {revision['metric']}\n{revision['previous_value']} -> {revision['value']}\n"
        f"(was {revision['previous_model']})"
    )


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f} ms"


@app.command()
def provenance(name: NameOpt, ws: WorkspaceOpt = None, as_json: JsonOpt = False) -> None:
    """The served model's lineage: source, data, hyperparameters, image, deploy."""
    from kaos.cli import context, train
    from kaos.cli.render import print_json
    from kaos.errors import KaosError

    api = context.client()
    e = api.endpoint_detail(context.workspace(ws), name)
    if not e["model_id"]:
        raise KaosError(f"endpoint {name!r} serves no model")
    if as_json:
        print_json(api.provenance(e["model_id"]))
        return
    train.provenance(e["model_id"], as_json=False)


@app.command()
def logs(
    name: NameOpt,
    follow: Annotated[bool, typer.Option("-f", "--follow", help="keep printing new lines")] = False,
    ws: WorkspaceOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """The serving revision's log: start-up, predict errors with their tracebacks."""
    from kaos.cli import context
    from kaos.cli.render import print_json, write_log

    if as_json:
        print_json(context.client().serve_logs(context.workspace(ws), name))
        return
    for text in context.api().serve_logs(name, follow, workspace=ws):
        write_log(text)


@app.command("build-logs")
def build_logs(name: NameOpt, ws: WorkspaceOpt = None, as_json: JsonOpt = False) -> None:
    """The build log of the environment the endpoint runs in (the model's, or its serve
    source's)."""
    from kaos.cli import context

    page = context.client().serve_build_logs(context.workspace(ws), name)
    _answer(page, as_json, page["text"], raw=True)


@app.command()
def rollback(name: NameOpt, ws: WorkspaceOpt = None, as_json: JsonOpt = False) -> None:
    """Move the endpoint back to the model it served before (once that answers)."""
    from kaos.cli import context

    result = context.client().serve_rollback(context.workspace(ws), name)
    done = f" ✔ {name} rolled back to {result['model_id']} (revision {result['revision']})"
    _answer(result, as_json, done)


@app.command()
def kill(name: NameOpt, ws: WorkspaceOpt = None, as_json: JsonOpt = False) -> None:
    """Stop an endpoint (requests in flight finish first)."""
    from kaos.cli import context

    result = context.client().serve_kill(context.workspace(ws), name)
    _answer(result, as_json, f" ✔ {name} stopped")


@app.command()
def predict(
    name: NameOpt,
    file: Annotated[Path, typer.Argument(help="a JSON request body, or a CSV file of rows")],
    ws: WorkspaceOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Send a JSON or CSV file to the endpoint (through the kaos server); print predictions."""
    from kaos.cli import context
    from kaos.cli.render import echo, print_json
    from kaos.errors import KaosError

    try:
        body = file.read_bytes()
    except OSError as exc:
        raise KaosError(f"cannot read {file}: {exc.strerror}", "check the path") from None
    # rows.txt or a file with no suffix holding CSV is sent as CSV: only JSON starts with { or [
    suffix = file.suffix.lower()
    csv = suffix == ".csv" or (suffix != ".json" and not body.lstrip().startswith((b"{", b"[")))
    answer = context.client().predict(
        context.workspace(ws), name, body, "text/csv" if csv else "application/json"
    )
    if as_json:
        print_json(answer)
        return
    for prediction in answer.get("predictions", []):
        echo(json.dumps(prediction))


def _answer(result: Any, as_json: bool, shown: str, raw: bool = False) -> None:
    """--json prints the server's answer as it is; otherwise one line, or `raw` text (a log)."""
    from kaos.cli.render import echo, print_json, write_log

    if as_json:
        print_json(result)
    elif raw:
        write_log(shown)
    else:
        echo(shown)
