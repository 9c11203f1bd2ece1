"""`kaos train`: deploy, list, info, get, logs, build-logs, kill (the seed's commands), diff."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from kaos.cli.common import JsonOpt, WorkspaceOpt

if TYPE_CHECKING:
    from kaos.client import Client
    from kaos.client.watch import WatchRound

app = typer.Typer(no_args_is_help=True)  # its help line: kaos.cli.main.GROUPS
PAGE_SIZE = 20

IndexOpt = Annotated[int | None, typer.Option("-i", "--ind", help="index in 'kaos train list'")]
JobOpt = Annotated[str | None, typer.Option("-j", "--job", help="job id (any unique prefix)")]
# The inputs both `deploy` and `watch` take.
SourceOpt = Annotated[Path | None, typer.Option("-s", "--source", help="source bundle folder")]
DataOpt = Annotated[Path | None, typer.Option("-d", "--data", help="data bundle folder")]
GridOpt = Annotated[
    Path | None, typer.Option("-h", "--hyperparams", help="hyperparameter grid JSON")
]
ParallelismOpt = Annotated[int, typer.Option("-p", "--parallelism", min=1, help="models at once")]


@app.command()
def deploy(
    source: SourceOpt = None,
    data: DataOpt = None,
    manifest: Annotated[
        Path | None, typer.Option("-m", "--manifest", help="remote data manifest")
    ] = None,
    grid: GridOpt = None,
    parallelism: ParallelismOpt = 1,
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

    client = context.uploader(quiet=as_json)
    deployment = client.deploy(
        source,
        data,
        manifest=manifest,
        grid=grid,
        parallelism=parallelism,
        cpu=cpu,
        memory=memory,
        gpu=gpu,
        network=network,
        force=force,
        refresh_env=refresh_env,
        workspace=ws,
    )
    result = deployment.result
    if as_json:
        print_json(result)
    else:
        if manifest is not None:
            inputs = result["inputs"]
            echo(f" ✔ Setting data bundle: /{inputs['data_name']}:{inputs['data'][:5]}\n")
        show_deploy(result)
    if wait and not client.wait(deployment).ok:
        raise typer.Exit(1)


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


@app.command("list")
def list_(ws: WorkspaceOpt = None, as_json: JsonOpt = False) -> None:
    """BUILDING and TRAINING jobs, latest first."""
    from kaos.cli import context
    from kaos.cli.render import ascii_table, echo, http_date, print_json, seconds

    client = context.api()
    name = client.workspace_name(ws)
    jobs = client.jobs(workspace=name)  # one request: start-up is most of this command's time
    builds = [j for j in jobs if j["kind"] == "build"]
    trains = [j for j in jobs if j["kind"] == "train"]
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

    client = context.api()
    page_of = client.info(client.job_id(index, job, workspace=ws), sort_by, page, page_size)
    metrics, metric = page_of.pop("metrics_order"), page_of["sort_by"]
    shown, pages = page_of["models"], page_of["page_count"]
    if as_json:
        print_json(page_of)
        return
    j = page_of["job"]
    source_path = f"/{page_of['source_name']}:{(j['source'] or '')[:5]}"
    data_path = f"/{page_of['data_name']}:{(j['data'] or '')[:5]}"
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
    from kaos.cli.render import echo, print_json

    client = context.api(quiet=as_json)
    job_id = client.job_id(index, job, workspace=ws)
    got = client.get(job_id, output, code=code, data=data, model=model, workspace=ws)
    if as_json:
        print_json({"job": got["job"], "written": got["written"]})
    else:
        echo(f"Successfully extracted job {got['job']} to {got['root']}")


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

    client = context.api()
    _print_logs(client, client.job_id(index, job, workspace=ws), follow)


@app.command("build-logs")
def build_logs(
    job: JobOpt = None,
    index: Annotated[int | None, typer.Option("-i", "--ind", help="index in BUILDING")] = None,
    follow: Annotated[bool, typer.Option("-f", "--follow")] = False,
    ws: WorkspaceOpt = None,
) -> None:
    """A build job's logs (the environment or image build)."""
    from kaos.cli import context

    client = context.api()
    _print_logs(client, client.job_id(index, job, kind="build", workspace=ws), follow)


def _print_logs(client: Client, job_id: str, follow: bool, quiet: bool = False) -> None:
    from kaos.cli.render import write_log

    for text in client.logs(job_id, follow):
        if not quiet:
            write_log(text)


@app.command()
def kill(
    job: Annotated[str, typer.Option("-j", "--job", help="job id (any unique prefix)")],
    as_json: JsonOpt = False,
) -> None:
    """Kill a running build or training job (and every process it started)."""
    from kaos.cli import context
    from kaos.cli.render import echo, print_json

    killed = context.api().kill(job)
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

    p = context.api().provenance(model)
    if as_json:
        print_json(p)
        return
    m, j = p["model"], p["job"]
    score = ", ".join(f"{k}={v}" for k, v in list(m["metrics"].items())[:3])
    echo(f"Model {m['model_id']}  ({m['state']}{', ' + score if score else ''})")
    echo(f"├── Source {_bundle_label(p['source_name'], j['source'])}  {j['source']}")
    echo(f"│   └── Image {j['image']}")
    env = p.get("environment")  # the image's environment, so drawn under it
    if env:
        echo(f"│       └── Environment: Python {env['python']}, lock {env['lock'][:12]} "
             f"({env['file']}, {env['locked']} packages)")  # fmt: skip
        packages = list(env["packages"].items())
        for n, (pkg, version) in enumerate(packages, start=1):
            echo(f"│           {'└' if n == len(packages) else '├'}── {pkg}=={version}")
    else:
        echo("│       └── Environment: base interpreter only (the source has no requirements)")
    echo(f"├── Data {_bundle_label(p['data_name'], j['data'])}  {j['data']}")
    echo(f"├── Hyperparameters {json.dumps(m['params']) if m['params'] else 'None'}")
    echo(f"├── Output {m['output_tree']}")
    took = round((m["finished"] or 0) - (m["started"] or 0))
    echo(f"├── Job {j['id']} (model {m['index']}), trained in {took}s")
    echo(f"├── Network {'allowed (--network)' if p.get('network') else 'none'}")
    echo(f"└── Deployed by {p['deploy_author']} at {http_date(p['deploy_time'])}")


def _bundle_label(name: str | None, digest: str) -> str:
    """`/features:e8817` as deploy shows it; the short digest alone where no name was recorded."""
    return f"/{name}:{digest[:5]}" if name else digest[:5]


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

    client = context.api()
    job = client.reproduce(model)
    if not as_json:
        echo(f"Reproducing {model} (job {job['id']})")
    _print_logs(client, job["id"], follow=True, quiet=as_json)
    result = client.reproduction(job["id"])
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

    client = context.api()
    ids = [_model_of(client, ws, arg) for arg in (a, b)]
    result = client.diff(*ids)
    if as_json:
        print_json(result)
    else:
        echo(model_diff(result))


def _model_of(client: Client, ws: str | None, arg: str) -> str:
    """A job index (a number of at most 4 digits) names that training job's model."""
    from kaos.errors import KaosError

    if not (arg.isdigit() and len(arg) <= 4):
        return arg
    detail = client.job(client.job_id(int(arg), workspace=ws))
    ids = [m["model_id"] for m in detail["models"] if m["model_id"]]
    if len(ids) != 1:
        raise KaosError(
            f"training job {arg} has {len(ids)} trained models, not one",
            "name the models by id (see 'kaos train info -i " + arg + "')",
        )
    return str(ids[0])


@app.command()
def watch(
    source: SourceOpt = None,
    data: DataOpt = None,
    grid: GridOpt = None,
    parallelism: ParallelismOpt = 1,
    settle_ms: Annotated[
        int, typer.Option("--settle-ms", help="quiet time before deploying")
    ] = 500,
    ws: WorkspaceOpt = None,
) -> None:
    """Deploy what changes in these folders once edits settle; show each job and model."""
    from kaos.cli import context
    from kaos.cli.render import echo

    client = context.uploader()
    watcher = client.watcher(source, data, grid, parallelism, workspace=ws)
    try:
        _show_round(client, watcher.deploy_changes())
        echo(f"Watching {', '.join(map(str, watcher.paths))} (Ctrl-C to stop)")
        for round_ in watcher.rounds(settle_ms):
            _show_round(client, round_)
    except KeyboardInterrupt:  # also while the first round's jobs are followed
        pass
    echo("Stopped watching")


def _show_round(client: Client, round_: WatchRound | None) -> None:
    from kaos.cli.render import echo

    if round_ is None:
        return
    if round_.error is not None or round_.deployment is None:
        echo(f"Not deployed: {round_.error}")
        return
    echo(f"Deployed {', '.join(round_.changed)}")
    deployment = round_.deployment
    if deployment.reused and deployment.trains_nothing:
        echo(f"Already trained: {', '.join(deployment.reused[:5])}")
        return
    client.wait(deployment)
