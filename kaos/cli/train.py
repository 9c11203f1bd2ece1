"""`kaos train`: deploy, list, info, get, logs, build-logs, kill (the seed's commands), diff."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from kaos.cli.common import JsonOpt, WorkspaceOpt

app = typer.Typer(no_args_is_help=True)  # its help line: kaos.cli.main.GROUPS
PAGE_SIZE = 20

IndexOpt = Annotated[int | None, typer.Option("-i", "--ind", help="index in 'kaos train list'")]
JobOpt = Annotated[str | None, typer.Option("-j", "--job", help="job id (any unique prefix)")]


@app.command()
def deploy(
    source: Annotated[
        Path | None, typer.Option("-s", "--source", help="source bundle folder")
    ] = None,
    data: Annotated[Path | None, typer.Option("-d", "--data", help="data bundle folder")] = None,
    manifest: Annotated[
        Path | None, typer.Option("-m", "--manifest", help="remote data manifest")
    ] = None,
    grid: Annotated[
        Path | None, typer.Option("-h", "--hyperparams", help="hyperparameter grid JSON")
    ] = None,
    parallelism: Annotated[
        int, typer.Option("-p", "--parallelism", min=1, help="models at once")
    ] = 1,
    cpu: Annotated[float | None, typer.Option("--cpu", help="CPUs per model")] = None,
    memory: Annotated[
        str | None, typer.Option("--memory", help="memory per model, e.g. 4g")
    ] = None,
    gpu: Annotated[int | None, typer.Option("--gpu", help="GPUs per model")] = None,
    network: Annotated[
        bool, typer.Option("--network", help="let the train script use the network")
    ] = False,
    force: Annotated[
        bool, typer.Option("--force", help="retrain even if identical inputs trained")
    ] = False,
    refresh_env: Annotated[
        bool,
        typer.Option(
            "--refresh-env", help="resolve the requirements again (a new lock), rebuild, retrain"
        ),
    ] = False,
    wait: Annotated[bool, typer.Option("--wait", help="follow the jobs until they end")] = False,
    ws: WorkspaceOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Change any of the training inputs; kaos reruns only what the change invalidates."""
    from kaos.cli import context
    from kaos.cli.render import echo, print_json
    from kaos.errors import KaosError
    from kaos.pipeline.inputs import Grid, Resources

    named = (source, data, manifest, grid, cpu, memory, gpu)
    force = force or refresh_env
    if all(v is None for v in named) and not (force or network):
        raise KaosError("nothing to deploy", "pass -s SOURCE, -d DATA, -m MANIFEST or -h GRID")
    if data is not None and manifest is not None:
        raise KaosError("deploy either a data folder (-d) or a manifest (-m), not both")
    grid_json = _read_grid(grid) if grid else None
    manifest_text = _read_manifest(manifest) if manifest else None
    name = context.workspace(ws)
    _check_folder(source, "source")
    _check_folder(data, "data")
    api = context.client()
    if grid_json is not None:  # the server's limit, checked before anything is uploaded
        limit = int(api.health().get("max_combinations") or 1000)
        Grid.from_json(grid_json, max_combinations=limit)
    body: dict[str, Any] = {"parallelism": parallelism, "force": force, "grid": grid_json}
    if refresh_env:
        body["refresh_env"] = True
    if network or any(v is not None for v in (cpu, memory, gpu)):
        body["resources"] = {"cpu": cpu, "memory": memory, "gpu": gpu or 0, "network": network}
        Resources.from_json(body["resources"])  # a bad size fails before any upload
    for kind, folder in (("source", source), ("data", data)):
        if folder is not None:
            body[kind] = _submit(api, kind, folder, quiet=as_json)
    if manifest_text is not None:
        body["manifest"] = manifest_text
        if not as_json:
            echo(f"Submitting data manifest: {manifest}")
    result = api.deploy(name, **body)
    if as_json:
        print_json(result)
    else:
        if manifest_text is not None:
            inputs = result["inputs"]
            echo(f" ✔ Setting data bundle: /{inputs['data_name']}:{inputs['data'][:5]}\n")
        show_deploy(result)
    if wait:
        _follow(api, name, result["deploy_id"], quiet=as_json)


def show_deploy(result: dict[str, Any]) -> None:
    from kaos.cli.render import echo

    echo("CURRENT TRAINING INPUTS\n")
    echo(inputs_table(result["inputs"]))
    if result["inputs"].get("grid"):
        echo("\nCURRENT HYPERPARAMETERS\n")
        echo(grid_table(result["inputs"]["grid"]))
    if result["reused"] and not result["train_job"] and not result["build_job"]:
        shown = ", ".join(result["reused"][:5]) + (" ..." if len(result["reused"]) > 5 else "")
        echo(f"\nInputs unchanged: {shown} already trained (use --force to retrain)")
    for note in result.get("notes", []):
        echo(f"\nNote: {note}")


def grid_table(grid: dict[str, list[Any]]) -> str:
    """The grid's combinations, one row each, in the order they train."""
    import itertools

    from kaos.cli.render import ascii_table

    rows = [[i, *combo] for i, combo in enumerate(itertools.product(*grid.values()))]
    return ascii_table(["ind", *grid], rows)


def _read_manifest(path: Path) -> str:
    from kaos.errors import KaosError
    from kaos.pipeline.manifest import parse_manifest

    try:
        text = path.read_text()
    except FileNotFoundError:
        raise KaosError(f"manifest not found: {path}") from None
    parse_manifest(text)  # every line's problem is reported before anything is sent
    return text


def _submit(api, kind: str, folder: Path, quiet: bool) -> str:
    """Hash, check and upload one bundle, with the seed's messages and bars."""
    from kaos.cli.render import BarProgress, echo, warn
    from kaos.config import kaos_home
    from kaos.pipeline.bundles import bundle_label, data_bundle_name, source_bundle_name
    from kaos.store.scan import scan_folder
    from kaos.store.state import open_stat_cache

    if not quiet:
        echo(f"Submitting {kind} bundle: {folder}")
    cache = open_stat_cache(kaos_home() / "state.db")
    progress = BarProgress(f"Compressing {kind} bundle") if not quiet else None
    if kind == "source":  # small: its shape (a Dockerfile, an executable train) checked first
        scanned = scan_folder(folder, cache)
        name = source_bundle_name(scanned.tree)
        api.push(scanned, progress)
    else:  # scanned and sent in one pass, its shape checked from the file list first
        scanned = api.push_folder(folder, cache, progress, vet=data_bundle_name).scanned
        name = data_bundle_name(scanned.paths)
    if progress:
        progress.close()
    if scanned.special:  # fifos, sockets, devices: no content to store
        count, first = len(scanned.special), scanned.special[0]
        warn(
            f"{count} special file{'s' if count > 1 else ''} (fifo, socket or device) left out "
            f"of the {kind} bundle, first: {first}"
        )
    if progress:
        echo(f" ✔ Setting {kind} bundle: {bundle_label(name, scanned.digest)}\n")
    return scanned.digest


def _check_folder(folder: Path | None, kind: str) -> None:
    from kaos.errors import BundleError

    if folder is not None and not folder.exists():
        raise BundleError(f"{kind} bundle path not found: {folder}", "check the path you passed")


def _read_grid(path: Path) -> dict[str, Any]:
    from kaos.errors import KaosError
    from kaos.pipeline.inputs import Grid

    try:
        grid = json.loads(path.read_text())
    except FileNotFoundError:
        raise KaosError(f"grid file not found: {path}") from None
    except ValueError as exc:
        raise KaosError(f"invalid JSON in grid {path}: {exc}", "fix the file") from None
    Grid.from_json(grid, max_combinations=10**9)  # shape errors early; the server checks the size
    return grid


def inputs_table(inputs: dict[str, Any]) -> str:
    """The CURRENT TRAINING INPUTS table."""
    from kaos.cli.render import BUSY, CHECK, CROSS, ascii_table

    image = inputs.get("image")
    if inputs.get("source") is None:
        image_cell = f"{CROSS}\n"
    elif image and image["state"] == "ready":
        image_cell = f"{CHECK}\n{image['name']}"
    elif image and image["state"] == "failed":
        image_cell = f"{CROSS}\n<build failed>"
    else:
        image_cell = f"{BUSY}\n<building>"
    data_cell = (
        f"{CHECK}\n/{inputs['data_name']}:{inputs['data'][:5]}"
        if inputs.get("data")
        else f"{CROSS}\n"
    )
    grid = inputs.get("grid")
    if grid:
        count = math.prod(len(v) for v in grid.values())
        grid_cell = f"{CHECK}\n{count} combination{'s' if count != 1 else ''}"
    else:
        grid_cell = f"{CROSS}\n"
    return ascii_table(["Image", "Data", "Hyperparams"], [[image_cell, data_cell, grid_cell]])


def _follow(api, workspace: str, deploy_id: int, quiet: bool, exit_on_failure: bool = True) -> bool:
    """Print each job state change of this deploy until all end, then its models' metrics.

    Returns whether everything succeeded; by default a failure exits with code 1.
    """
    from kaos.cli.render import echo

    seen: dict[str, str] = {}
    while True:
        jobs = [j for j in api.jobs(workspace) if j["deploy_id"] == deploy_id]
        for job in sorted(jobs, key=lambda j: j["created"]):
            if seen.get(job["id"]) != job["state"]:
                seen[job["id"]] = job["state"]
                if not quiet:
                    reason = f" ({job['reason']})" if job["reason"] else ""
                    echo(f"{job['kind']} {job['id']}: {job['state']}{reason}")
        if not any(j["state"] in ("JOB_STARTING", "JOB_RUNNING") for j in jobs):
            break
        time.sleep(0.5)
    for job in jobs:
        if job["kind"] == "train" and job["state"] == "JOB_SUCCESS" and not quiet:
            for model in api.job(job["id"])["models"]:
                echo(f"model {model['model_id']}: {json.dumps(model['metrics'])}")
    ok = all(j["state"] == "JOB_SUCCESS" for j in jobs)
    if not ok and exit_on_failure:
        raise typer.Exit(1)
    return ok


@app.command("list")
def list_(ws: WorkspaceOpt = None, as_json: JsonOpt = False) -> None:
    """BUILDING and TRAINING jobs, latest first."""
    from kaos.cli import context
    from kaos.cli.render import ascii_table, echo, http_date, print_json, seconds

    api = context.client()
    name = context.workspace(ws)
    builds, trains = api.jobs(name, "build"), api.jobs(name, "train")
    if as_json:
        print_json({"building": builds, "training": trains})
        return
    if builds:
        rows = [
            [seconds(j["duration"]), j["id"], http_date(j["started"] or j["created"]), j["state"]]
            for j in builds
        ]
        echo(ascii_table(["duration", "job_id", "started", "state"], rows, title="BUILDING"))
    if builds and trains:
        echo()
    if trains:
        rows = [
            [i, seconds(j["duration"]), j["hyperopt"] if j["started"] else "?", j["id"],
             http_date(j["started"] or j["created"]), j["state"]]
            for i, j in enumerate(trains)
        ]  # fmt: skip
        echo(
            ascii_table(
                ["ind", "duration", "hyperopt", "job_id", "started", "state"],
                rows,
                title="TRAINING",
            )
        )
    if not builds and not trains:
        echo(f"No jobs yet in workspace {name}: deploy with 'kaos train deploy -s SOURCE -d DATA'")


def resolve_job(
    api, workspace: str, index: int | None, job: str | None, kind: str = "train"
) -> str:
    from kaos.errors import KaosError

    if job:
        return job
    if index is None:
        raise KaosError("pass -i INDEX or -j JOB_ID", "see 'kaos train list'")
    jobs = api.jobs(workspace, kind)
    if not 0 <= index < len(jobs):
        what = "training" if kind == "train" else "build"
        raise KaosError(
            f"no {what} job at index {index} (there are {len(jobs)})", "see 'kaos train list'"
        )
    return jobs[index]["id"]


@app.command()
def info(
    index: IndexOpt = None,
    job: JobOpt = None,
    sort_by: Annotated[
        str | None, typer.Option("-s", "--sort_by", "--sort-by", help="metric to rank by")
    ] = None,
    page: Annotated[int, typer.Option("-p", "--page", min=0, help="page of the models table")] = 0,
    page_size: Annotated[
        int, typer.Option("--page-size", min=1, help="models per page")
    ] = PAGE_SIZE,
    ws: WorkspaceOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """A training job's models, their inputs and scores."""
    from kaos.cli import context
    from kaos.cli.render import ascii_table, echo, print_json, seconds
    from kaos.errors import KaosError

    api = context.client()
    detail = api.job(resolve_job(api, context.workspace(ws), index, job))
    metrics = _metric_order(detail["models"]) or detail["available_metrics"]
    if sort_by is not None and sort_by not in metrics:
        raise KaosError(f"unknown metric {sort_by!r}", f"available metrics: {metrics}")
    metric = sort_by or (metrics[0] if metrics else None)
    models = sorted(
        detail["models"], key=lambda m: _score_key(m, metric), reverse=sort_by is not None
    )
    pages = max(1, math.ceil(len(models) / page_size))
    if page >= pages:
        raise KaosError(f"no page {page} (there are {pages})")
    shown = models[page * page_size : (page + 1) * page_size]
    if as_json:
        print_json(
            {**detail, "models": shown, "sort_by": metric, "page": page, "page_count": pages}
        )
        return
    j = detail["job"]
    source_path = f"/{detail['source_name']}:{(j['source'] or '')[:5]}"
    data_path = f"/{detail['data_name']}:{(j['data'] or '')[:5]}"
    echo()
    echo(f"    Job ID: {j['id']}")
    echo(f"    Process time: {seconds(j['duration'])}s")
    echo(f"    State: {j['state']}")
    echo(f"    Available metrics: {metrics}")
    echo()
    echo(f"    Page count: {pages}")
    echo(f"    Page ID: {page}")
    rows = []
    for i, m in enumerate(shown, start=page * page_size):
        score = m["metrics"].get(metric) if metric else None
        rows.append([
            i,
            f"Author: {j['author']}\nPath: {source_path}",
            f"Author: {j['author']}\nPath: {data_path}",
            m["model_id"] or m["state"],
            _params_cell(m["params"]),
            "None" if score is None else score,
        ])  # fmt: skip
    echo(ascii_table(["ind", "Code", "Data", "Model ID", "Hyperparams", "Score"], rows))
    failed = [
        (rank, m)
        for rank, m in enumerate(shown, start=page * page_size)
        if m["state"] == "JOB_FAILURE" and m["reason"]
    ]
    for rank, m in failed[:5]:  # the row's ind, and the model's index in the grid
        echo(f"ind {rank} (model {m['index']} of the grid) failed: {m['reason']}")


def _metric_order(models: list[dict[str, Any]]) -> list[str]:
    order: list[str] = []
    for m in models:
        order += [k for k in m["metrics"] if k not in order]
    return order


def _score_key(model: dict[str, Any], metric: str | None) -> tuple[int, float, int]:
    value = model["metrics"].get(metric) if metric else None
    if isinstance(value, bool) or not isinstance(value, int | float):
        return (0, 0.0, -model["index"])
    return (1, float(value), -model["index"])


def _params_cell(params: dict[str, Any] | None) -> str:
    if not params:
        return "None"
    return "\n".join(f"{k}: {v}" for k, v in params.items())


@app.command()
def get(
    index: IndexOpt = None,
    job: JobOpt = None,
    code: Annotated[bool, typer.Option("-c", "--code", help="the source bundle")] = False,
    data: Annotated[bool, typer.Option("-d", "--data", help="the data bundle")] = False,
    model: Annotated[bool, typer.Option("-m", "--model", help="the trained models")] = False,
    output: Annotated[Path, typer.Option("-o", "--output", help="folder to write into")] = Path(
        "out"
    ),
    ws: WorkspaceOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Write a run's exact code, data and models (byte-identical to what was deployed)."""
    from kaos.cli import context
    from kaos.cli.render import BarProgress, echo, print_json

    api = context.client()
    name = context.workspace(ws)
    detail = api.job(resolve_job(api, name, index, job))
    j = detail["job"]
    everything = not (code or data or model)
    root = output / name / f"train-{j['id']}"
    written = []
    parts = []
    if code or everything:
        parts.append(("source bundle", j["source"], root / "model-train"))
        if j.get("lock"):  # the environment's lock, beside the source it was resolved for
            parts.append(("environment lock", j["lock"], root / "lock"))
    if data or everything:
        parts.append(("data bundle", j["data"], root / "data"))
    if model or everything:
        for m in detail["models"]:
            if m["output_tree"]:
                parts.append(
                    (f"model {m['model_id']}", m["output_tree"], root / "models" / m["model_id"])
                )
    for label, digest, dest in parts:
        progress = None if as_json else BarProgress(f"Extracting {label}")
        api.checkout(digest, dest, progress)
        if progress:
            progress.close()
        written.append(str(dest))
    if as_json:
        print_json({"job": j["id"], "written": written})
    else:
        echo(f"Successfully extracted job {j['id']} to {root}")


@app.command()
def logs(
    index: IndexOpt = None,
    job: JobOpt = None,
    follow: Annotated[
        bool, typer.Option("-f", "--follow", help="keep streaming until it ends")
    ] = False,
    ws: WorkspaceOpt = None,
) -> None:
    """A training job's logs (stdout and stderr of its train script)."""
    from kaos.cli import context

    api = context.client()
    _print_logs(api, resolve_job(api, context.workspace(ws), index, job), follow)


@app.command("build-logs")
def build_logs(
    job: JobOpt = None,
    index: Annotated[int | None, typer.Option("-i", "--ind", help="index in BUILDING")] = None,
    follow: Annotated[bool, typer.Option("-f", "--follow")] = False,
    ws: WorkspaceOpt = None,
) -> None:
    """A build job's logs (the environment or image build)."""
    from kaos.cli import context

    api = context.client()
    _print_logs(api, resolve_job(api, context.workspace(ws), index, job, kind="build"), follow)


def _print_logs(api, job_id: str, follow: bool, quiet: bool = False) -> None:
    """The whole log, page by page (the API answers at most 1 MiB at a time)."""
    from kaos.cli.render import write_log

    offset = 0
    while True:
        chunk = api.logs(job_id, offset)
        if not quiet:
            write_log(chunk["text"])
        offset = chunk["offset"]
        if chunk["text"]:
            continue
        if not follow or chunk["finished"]:
            return
        time.sleep(0.5)


@app.command()
def kill(
    job: Annotated[str, typer.Option("-j", "--job", help="job id (any unique prefix)")],
    as_json: JsonOpt = False,
) -> None:
    """Kill a running build or training job (and every process it started)."""
    from kaos.cli import context
    from kaos.cli.render import echo, print_json

    killed = context.client().kill(job)
    if as_json:
        print_json(killed)
    else:
        echo(f"Successfully killed job {killed['id']}")


@app.command()
def provenance(
    model: Annotated[str, typer.Option("-m", "--model", help="model id (any unique prefix)")],
    as_json: JsonOpt = False,
) -> None:
    """The full lineage of a model: source, data, hyperparameters, image, deploy."""
    from kaos.cli import context
    from kaos.cli.render import echo, http_date, print_json

    p = context.client().provenance(model)
    if as_json:
        print_json(p)
        return
    m, j = p["model"], p["job"]
    score = ", ".join(f"{k}={v}" for k, v in list(m["metrics"].items())[:3])
    echo(f"Model {m['model_id']}  ({m['state']}{', ' + score if score else ''})")
    echo(f"├── Source /{p['source_name']}:{j['source'][:5]}  {j['source']}")
    echo(f"│   └── Image {j['image']}")
    echo(f"├── Data /{p['data_name']}:{j['data'][:5]}  {j['data']}")
    env = p.get("environment")
    if env:
        echo(f"│   └── Environment: Python {env['python']}, lock {env['lock'][:12]} ({env['file']},"
             f" {env['locked']} packages)")  # fmt: skip
        for pkg, version in env["packages"].items():
            echo(f"│       └── {pkg}=={version}")
    else:
        echo("│   └── Environment: base interpreter only (the source has no requirements)")
    echo(f"├── Hyperparameters {json.dumps(m['params']) if m['params'] else 'None'}")
    echo(f"├── Output {m['output_tree']}")
    took = round((m["finished"] or 0) - (m["started"] or 0))
    echo(f"├── Job {j['id']} (model {m['index']}), trained in {took}s")
    echo(f"├── Network {'allowed (--network)' if p.get('network') else 'none'}")
    echo(f"└── Deployed by {p['deploy_author']} at {http_date(p['deploy_time'])}")


@app.command()
def reproduce(
    model: Annotated[str, typer.Option("-m", "--model", help="model id (any unique prefix)")],
    as_json: JsonOpt = False,
) -> None:
    """Retrain a model from its stored source, data, hyperparameters and lock, and compare:
    exit 0 when the output is identical, 1 with the files that differ when not."""
    from kaos.cli import context
    from kaos.cli.render import echo, print_json, reproduction_report
    from kaos.errors import KaosError

    api = context.client()
    job = api.reproduce(model)
    if not as_json:
        echo(f"Reproducing {model} (job {job['id']})")
    _print_logs(api, job["id"], follow=True, quiet=as_json)
    result = api.reproduction(job["id"])
    if as_json:
        print_json(result)
    if result["job"]["state"] != "JOB_SUCCESS":
        raise KaosError(f"the reproduction failed: {result['job']['reason']}")
    if not as_json:
        echo(reproduction_report(result))
    if not result["identical"]:
        raise typer.Exit(1)


@app.command()
def diff(
    a: Annotated[str, typer.Argument(help="model id, or job index in 'kaos train list'")],
    b: Annotated[str, typer.Argument(help="model id, or job index in 'kaos train list'")],
    ws: WorkspaceOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """What changed between two models: source (with a diff), data, hyperparameters,
    locked packages and metrics, side by side."""
    from kaos.cli import context
    from kaos.cli.render import echo, model_diff, print_json

    api = context.client()
    ids = [_model_of(api, ws, arg) for arg in (a, b)]
    result = api.diff(*ids)
    if as_json:
        print_json(result)
    else:
        echo(model_diff(result))


def _model_of(api, ws: str | None, arg: str) -> str:
    """A job index (a number of at most 4 digits) names that training job's model."""
    from kaos.cli import context
    from kaos.errors import KaosError

    if not (arg.isdigit() and len(arg) <= 4):
        return arg
    detail = api.job(resolve_job(api, context.workspace(ws), int(arg), None))
    ids = [m["model_id"] for m in detail["models"] if m["model_id"]]
    if len(ids) != 1:
        raise KaosError(
            f"training job {arg} has {len(ids)} trained models, not one",
            "name the models by id (see 'kaos train info -i " + arg + "')",
        )
    return ids[0]


@app.command()
def watch(
    source: Annotated[
        Path | None, typer.Option("-s", "--source", help="source bundle folder")
    ] = None,
    data: Annotated[Path | None, typer.Option("-d", "--data", help="data bundle folder")] = None,
    grid: Annotated[Path | None, typer.Option("-h", "--hyperparams", help="grid JSON")] = None,
    parallelism: Annotated[int, typer.Option("-p", "--parallelism", min=1)] = 1,
    settle_ms: Annotated[
        int, typer.Option("--settle-ms", help="quiet time before deploying")
    ] = 500,
    ws: WorkspaceOpt = None,
) -> None:
    """Deploy what changes in these folders once edits settle; show each job and model."""
    import watchfiles

    from kaos.cli import context
    from kaos.cli.render import echo
    from kaos.errors import KaosError

    if source is None and data is None and grid is None:
        raise KaosError("nothing to watch", "pass -s SOURCE, -d DATA and/or -h GRID")
    for kind, folder in (("source", source), ("data", data)):
        _check_folder(folder, kind)
    name = context.workspace(ws)
    api = context.client()
    watcher = _Watcher(api, name, source, data, grid, parallelism)
    watcher.deploy_changes()
    paths = [p for p in (source, data, grid) if p is not None]
    echo(f"Watching {', '.join(map(str, paths))} (Ctrl-C to stop)")
    try:
        for _changes in watchfiles.watch(
            *paths,
            watch_filter=watcher.relevant,
            step=settle_ms,
            debounce=max(5000, settle_ms),
            raise_interrupt=True,
        ):
            watcher.deploy_changes()
    except KeyboardInterrupt:
        pass
    echo("Stopped watching")


class _Watcher:
    """Remembers what was deployed, so only bundles whose hash changed are sent again."""

    def __init__(
        self,
        api,
        workspace: str,
        source: Path | None,
        data: Path | None,
        grid: Path | None,
        parallelism: int,
    ) -> None:
        import watchfiles

        from kaos.store.ignore import IgnoreRules

        self.api, self.workspace, self.parallelism = api, workspace, parallelism
        self.folders = {k: f for k, f in (("source", source), ("data", data)) if f is not None}
        self.grid = grid
        self.deployed: dict[str, str] = {}
        self._default = watchfiles.DefaultFilter()  # editors' swap, backup and lock files
        self._rules = {f.resolve(): IgnoreRules.for_folder(f) for f in self.folders.values()}

    def relevant(self, change, path: str) -> bool:
        if not self._default(change, path):
            return False
        for root, rules in self._rules.items():
            try:
                rel = Path(path).resolve().relative_to(root).as_posix()
            except ValueError:
                continue
            return not rules.skips_file(rel)
        return True

    def deploy_changes(self) -> None:
        from kaos.cli.render import echo
        from kaos.config import kaos_home
        from kaos.errors import KaosError
        from kaos.pipeline.bundles import bundle_label, data_bundle_name, source_bundle_name
        from kaos.store.hashing import hash_bytes
        from kaos.store.scan import scan_folder
        from kaos.store.state import open_stat_cache

        body: dict[str, Any] = {}
        labels = []
        try:
            for kind, folder in self.folders.items():
                scanned = scan_folder(folder, open_stat_cache(kaos_home() / "state.db"))
                if scanned.digest == self.deployed.get(kind):
                    continue
                bundle = (
                    source_bundle_name(scanned.tree)
                    if kind == "source"
                    else data_bundle_name(scanned.paths)
                )
                self.api.push(scanned)
                body[kind] = scanned.digest
                labels.append(f"{kind} {bundle_label(bundle, scanned.digest)}")
            if self.grid is not None:
                grid_json = _read_grid(self.grid)
                digest = hash_bytes(json.dumps(grid_json, sort_keys=True).encode())
                if digest != self.deployed.get("grid"):
                    body["grid"] = grid_json
                    labels.append("hyperparameters")
            if not body:
                return
            result = self.api.deploy(self.workspace, parallelism=self.parallelism, **body)
        except KaosError as exc:  # a half-saved file or a bad grid: say so, keep watching
            echo(f"Not deployed: {exc}")
            return
        self.deployed.update({k: v for k, v in body.items() if k != "grid"})
        if "grid" in body:
            self.deployed["grid"] = hash_bytes(json.dumps(body["grid"], sort_keys=True).encode())
        echo(f"Deployed {', '.join(labels)}")
        if result["reused"] and not result["train_job"] and not result["build_job"]:
            echo(f"Already trained: {', '.join(result['reused'][:5])}")
            return
        _follow(self.api, self.workspace, result["deploy_id"], quiet=False, exit_on_failure=False)
