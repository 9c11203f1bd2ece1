"""`Client`: what a kaos user does, as Python calls. The CLI is this plus rendering.

    from kaos import Client

    client = Client()  # the server `kaos init` saved, else the local one (started if needed)
    deployment = client.deploy(source="templates/mnist/model-train",
                               data="templates/mnist/data", wait=True)
    for model in deployment.models:
        print(model["model_id"], model["metrics"])

Every call raises a `KaosError` (message plus fix) for anything a user can mend.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kaos.client.events import Reporter, Silent
from kaos.client.follow import follow_jobs
from kaos.client.http import KaosClient
from kaos.client.local import connect
from kaos.config import ClientConfig, kaos_home, stat_cache_path
from kaos.errors import KaosError, NoWorkspace
from kaos.pipeline.states import JobState

if TYPE_CHECKING:  # scanning and input parts load with the first deploy, not `train list`
    from kaos.client.bundles import Bundle
    from kaos.client.inputs import DeployChange, GridArg
    from kaos.client.watch import Watcher
    from kaos.store.state import HashCache

LOG_POLL_S = 0.5


@dataclass(frozen=True)
class Deployment:
    """One deploy: the server's answer, its jobs and, once waited for, its models."""

    workspace: str
    result: dict[str, Any]  # the server's DeployOut
    jobs: list[dict[str, Any]] = field(default_factory=list)
    models: list[dict[str, Any]] = field(default_factory=list)  # trained or reused (after wait)

    @property
    def deploy_id(self) -> int:
        return int(self.result["deploy_id"])

    @property
    def reused(self) -> list[str]:
        """Model ids that already answer for these inputs (nothing retrains for them)."""
        return list(self.result["reused"])

    @property
    def trains_nothing(self) -> bool:
        return not self.result["train_job"] and not self.result["build_job"]

    @property
    def ok(self) -> bool:
        return all(j["state"] == JobState.SUCCESS for j in self.jobs)


class Client:
    def __init__(
        self,
        endpoint: str | None = None,
        token: str | None = None,
        workspace: str | None = None,
        reporter: Reporter | None = None,
        stat_cache: Path | None = None,
    ) -> None:
        """`endpoint` None: the saved server, else the local one; `workspace` None: the
        current one (KAOS_WORKSPACE or `kaos workspace set`)."""
        self.reporter: Reporter = reporter or Silent()
        self._endpoint, self._token = endpoint, token
        self._http: KaosClient | None = None
        self._workspace = workspace
        self._stat_cache_path = stat_cache or stat_cache_path()
        self._stat_cache: HashCache | None = None

    @property
    def http(self) -> KaosClient:
        """The HTTP API, connected on first use (so bad arguments fail before any server)."""
        if self._http is None:
            self._http, started = connect(self._endpoint, self._token)
            if started:
                self.reporter.server_started(self._http.endpoint, kaos_home() / "store")
        return self._http

    @staticmethod
    def init(endpoint: str, token: str | None = None) -> dict[str, Any]:
        """Check a server (and the token) and save it as the one to use from now on."""
        http = KaosClient(endpoint, token)
        health = http.health()
        http.workspaces()  # proves the token too
        config = ClientConfig.load()
        config.endpoint, config.token = endpoint.rstrip("/"), token
        config.save()
        return {"endpoint": config.endpoint, "server_version": health.get("version")}

    def close(self) -> None:
        """Close the connection to the server and the stat cache (its rows written first)."""
        if self._http is not None:
            self._http.close()
        if self._stat_cache is not None:
            self._stat_cache.close()
            self._stat_cache = None

    # -- workspaces -------------------------------------------------------------------------
    def workspace_name(self, explicit: str | None = None) -> str:
        return current_workspace(explicit or self._workspace)

    def workspaces(self) -> list[dict[str, Any]]:
        return self.http.workspaces()

    def create_workspace(self, name: str) -> dict[str, Any]:
        """Create a workspace and make it the current one."""
        created = self.http.create_workspace(name)
        _save_current(name)
        return created

    def use_workspace(self, name: str | None = None, index: int | None = None) -> str:
        """Make a workspace (by name, or index in `workspaces()`) the current one."""
        if index is not None:
            spaces = self.workspaces()
            if not 0 <= index < len(spaces):
                raise KaosError(
                    f"no workspace at index {index} (there are {len(spaces)})",
                    "see 'kaos workspace list'",
                )
            name = spaces[index]["name"]
        if not name:
            raise KaosError("pass -n NAME or -i INDEX")
        self.http.workspace(name)  # must exist
        _save_current(name)
        return name

    def workspace(self, name: str | None = None) -> dict[str, Any]:
        """A workspace's current training inputs."""
        return self.http.workspace(self.workspace_name(name))

    def delete_workspace(self, name: str) -> None:
        """Forget a workspace and its job history (stored bundles and models stay until gc)."""
        self.http.delete_workspace(name)
        config = ClientConfig.load()
        if config.workspace == name:
            config.workspace = None
            config.save()

    def share(
        self, member: str, role: str = "reader", workspace: str | None = None
    ) -> dict[str, Any]:
        """Let another user read (`reader`) or also change (`writer`) a workspace you own;
        returns the workspace with its owner and shares."""
        return self.http.share(self.workspace_name(workspace), member, role)

    def unshare(self, member: str, workspace: str | None = None) -> dict[str, Any]:
        """Take a user's role on a workspace you own away."""
        return self.http.unshare(self.workspace_name(workspace), member)

    # -- bundles ----------------------------------------------------------------------------
    def scan(self, kind: str, folder: str | Path) -> Bundle:
        """Hash a bundle folder with the stat cache and check its shape (nothing is sent)."""
        from kaos.client.bundles import KINDS, scan_bundle

        if kind not in KINDS:
            raise KaosError(f"unknown bundle kind {kind!r}", "use 'source' or 'data'")
        return scan_bundle(kind, Path(folder), self._cache())

    def push(self, bundle: Bundle, label: str | None = None) -> Bundle:
        """Send what the server lacks of a scanned bundle (with a bar when `label` is given)."""
        bar = self.reporter.bar(label) if label else None
        self.http.push(bundle.scanned, bar)
        if bar is not None:
            bar.close()
        return bundle

    def upload(self, kind: str, folder: str | Path) -> Bundle:
        """Scan, check and push one bundle folder, telling the reporter as it goes.

        A source bundle is small: scanned and checked (a Dockerfile, an executable train)
        first. A data bundle is scanned and sent in one pass (each new file read once), its
        shape checked from the file list before anything is read.
        """
        from kaos.client.bundles import Bundle, check_folder
        from kaos.pipeline.bundles import data_bundle_name_of_walk

        self.reporter.uploading(kind, Path(folder))
        if kind != "data":
            bundle = self.push(self.scan(kind, folder), f"Compressing {kind} bundle")
        else:
            check_folder(kind, Path(folder))
            bar = self.reporter.bar(f"Compressing {kind} bundle")
            named: list[str] = []  # the name, found once from the file list before any read
            pushed = self.http.push_folder(
                folder,
                self._cache(),
                bar,
                vet=lambda names: named.append(data_bundle_name_of_walk(names)),
            )
            bar.close()
            bundle = Bundle(kind, Path(folder), pushed.scanned, named[0])
        self.reporter.uploaded(bundle)
        return bundle

    def upload_folder(self, folder: str | Path, label: str) -> str:
        """Scan (with the stat cache) and push any folder, e.g. a serve source, whose shape the
        server checks; returns its digest."""
        from kaos.store.scan import scan_folder

        bar = self.reporter.bar(f"Compressing {label}")
        report = self.http.push(scan_folder(Path(folder), self._cache()), bar)
        bar.close()
        return report.scanned.digest

    # -- deploy -----------------------------------------------------------------------------
    def deploy(
        self,
        source: str | Path | None = None,
        data: str | Path | None = None,
        *,
        manifest: str | Path | None = None,
        grid: GridArg | None = None,
        parallelism: int = 1,
        cpu: float | None = None,
        memory: str | None = None,
        gpu: int | None = None,
        network: bool = False,
        force: bool = False,
        refresh_env: bool = False,
        wait: bool = False,
        workspace: str | None = None,
    ) -> Deployment:
        """Change any training input; the server reruns only what the change invalidates.

        Folders are hashed and only what the server lacks is sent. With `wait`, returns once
        every job ended, with the models (trained now or reused from identical inputs).
        `refresh_env` resolves the requirements again (a new lock), rebuilds and retrains;
        `network` lets the train script use the network (it has none by default).
        """
        named = (source, data, manifest, grid, cpu, memory, gpu)
        force = force or refresh_env
        if all(v is None for v in named) and not (force or network):
            raise KaosError("nothing to deploy", "pass -s SOURCE, -d DATA, -m MANIFEST or -h GRID")
        if data is not None and manifest is not None:
            raise KaosError("deploy either a data folder (-d) or a manifest (-m), not both")
        if parallelism < 1:  # the server's rule, checked before anything is uploaded
            raise KaosError("parallelism (-p) must be at least 1")
        from kaos.client.bundles import check_folder
        from kaos.client.inputs import (
            DeployChange,
            check_grid_size,
            read_grid,
            read_manifest,
            resources_json,
        )

        grid_json = read_grid(grid) if grid is not None else None
        manifest_text = read_manifest(manifest) if manifest is not None else None
        name = self.workspace_name(workspace)
        check_folder("source", Path(source) if source is not None else None)
        check_folder("data", Path(data) if data is not None else None)
        if grid_json is not None:  # the server's limit, checked before anything is uploaded
            check_grid_size(grid_json, int(self.http.health().get("max_combinations") or 1000))
        resources = resources_json(cpu, memory, gpu, network)
        digests = {
            kind: self.upload(kind, folder).digest
            for kind, folder in (("source", source), ("data", data))
            if folder is not None
        }
        if manifest is not None:
            self.reporter.sending_manifest(Path(manifest))
        change = DeployChange(
            grid=grid_json,
            manifest=manifest_text,
            resources=resources,
            parallelism=parallelism,
            force=force,
            refresh_env=refresh_env,
            **digests,
        )
        deployment = self.submit(change, name)
        return self.wait(deployment) if wait else deployment

    def submit(self, change: DeployChange, workspace: str | None = None) -> Deployment:
        """Deploy inputs already on the server (bundles by digest)."""
        name = self.workspace_name(workspace)
        result = self.http.deploy(name, **change.body())
        jobs = [j for j in (result["build_job"], result["train_job"]) if j]
        return Deployment(name, result, jobs)

    def wait(self, deployment: Deployment) -> Deployment:
        """Follow the deploy's jobs until they end; then its models, trained or reused."""
        jobs = follow_jobs(self.http, deployment.workspace, deployment.deploy_id, self.reporter)
        models = []
        for job in jobs:
            if job["kind"] != "train":
                continue
            for model in self.http.job(job["id"])["models"]:
                models.append(model)
                if job["state"] == JobState.SUCCESS:
                    self.reporter.model_trained(model)
        models += [self.http.provenance(m)["model"] for m in deployment.reused]
        return replace(deployment, jobs=jobs, models=models)

    def watcher(
        self,
        source: str | Path | None = None,
        data: str | Path | None = None,
        grid: str | Path | None = None,
        parallelism: int = 1,
        workspace: str | None = None,
    ) -> Watcher:
        """A `Watcher` deploying what changes in these folders (see `Watcher.rounds`); its
        uploads are silent, its deploys are yours to `wait` for."""
        from kaos.client.watch import Watcher

        return Watcher(
            self,
            Path(source) if source is not None else None,
            Path(data) if data is not None else None,
            Path(grid) if grid is not None else None,
            parallelism,
            workspace,
        )

    # -- jobs and models --------------------------------------------------------------------
    def jobs(self, kind: str | None = None, workspace: str | None = None) -> list[dict[str, Any]]:
        """A workspace's jobs, latest first."""
        return self.http.jobs(self.workspace_name(workspace), kind)

    def job_id(
        self,
        index: int | None = None,
        job: str | None = None,
        kind: str = "train",
        workspace: str | None = None,
    ) -> str:
        """A job named by id (any unique prefix) or by its index in `jobs(kind)`."""
        if job:
            return job
        if index is None:
            raise KaosError("pass -i INDEX or -j JOB_ID", "see 'kaos train list'")
        jobs = self.jobs(kind, workspace)
        if not 0 <= index < len(jobs):
            what = "training" if kind == "train" else "build"
            raise KaosError(
                f"no {what} job at index {index} (there are {len(jobs)})", "see 'kaos train list'"
            )
        return str(jobs[index]["id"])

    def job(self, job_id: str) -> dict[str, Any]:
        """A job with its models, available metrics and bundle names."""
        return self.http.job(job_id)

    def info(
        self, job_id: str, sort_by: str | None = None, page: int = 0, page_size: int = 20
    ) -> dict[str, Any]:
        """One page of a training job's models, ranked by `sort_by` (best first) if given."""
        detail = self.job(job_id)
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
        return {
            **detail,
            "models": shown,
            "metrics_order": metrics,
            "sort_by": metric,
            "page": page,
            "page_count": pages,
        }

    def logs(self, job_id: str, follow: bool = False) -> Iterator[str]:
        """A job's whole log, page by page (the server answers at most 1 MiB at a time); with
        `follow`, until the job ends."""
        offset = 0
        while True:
            chunk = self.http.logs(job_id, offset)
            offset = chunk["offset"]
            if chunk["text"]:
                yield chunk["text"]
                continue
            if not follow or chunk["finished"]:
                return
            time.sleep(LOG_POLL_S)

    def serve_logs(
        self, name: str, follow: bool = False, workspace: str | None = None
    ) -> Iterator[str]:
        """An endpoint's serving log (its last revision's, once stopped); with `follow`, new
        lines as they come, after a swap the new revision's log from its start, until the
        endpoint is killed or failed."""
        from kaos.serving.records import EndpointState  # not at start-up: 3 ms of every command

        ended = (EndpointState.KILLED, EndpointState.FAILED)  # no more log to come
        ws = self.workspace_name(workspace)
        page = self.http.serve_logs(ws, name)
        while True:
            if page["text"]:
                yield page["text"]
            if not follow:
                return
            time.sleep(LOG_POLL_S)
            detail = self.http.endpoint_detail(ws, name)
            if detail["revision"] != page["revision"]:
                page = self.http.serve_logs(ws, name)  # a swap: the new revision's log
            else:
                page = self.http.serve_logs(ws, name, page["offset"])
                if not page["text"] and detail["state"] in ended:
                    return  # stopped before this read: its log has nothing more to come

    def get(
        self,
        job_id: str,
        output: str | Path = "out",
        code: bool = False,
        data: bool = False,
        model: bool = False,
        workspace: str | None = None,
    ) -> dict[str, Any]:
        """Write a run's exact code, data and models (all three unless some are chosen)."""
        detail = self.job(job_id)
        j = detail["job"]
        everything = not (code or data or model)
        root = Path(output) / self.workspace_name(workspace) / f"train-{j['id']}"
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
                    dest = root / "models" / m["model_id"]
                    parts.append((f"model {m['model_id']}", m["output_tree"], dest))
        written = []
        for label, digest, dest in parts:
            bar = self.reporter.bar(f"Extracting {label}")
            self.http.checkout(digest, dest, bar)
            bar.close()
            written.append(str(dest))
        return {"job": j["id"], "root": str(root), "written": written}

    def provenance(self, model_id: str) -> dict[str, Any]:
        """A model's lineage: source, data, hyperparameters, image, deploy."""
        return self.http.provenance(model_id)

    def reproduce(self, model_id: str) -> dict[str, Any]:
        """Start retraining a model from its stored inputs and lock; returns the job."""
        return self.http.reproduce(model_id)

    def reproduction(self, job_id: str) -> dict[str, Any]:
        """How a reproduction ended: identical, or which output files differ."""
        return self.http.reproduction(job_id)

    def diff(self, a: str, b: str) -> dict[str, Any]:
        """What changed from model `a` to model `b`."""
        return self.http.diff(a, b)

    def kill(self, job_id: str) -> dict[str, Any]:
        """Kill a running build or training job (and every process it started)."""
        return self.http.kill(job_id)

    def verify_store(self, repair: bool = False) -> dict[str, Any]:
        """Have the server re-hash every stored object and check every tree it names."""
        return self.http.verify_store(repair)

    # -- helpers ----------------------------------------------------------------------------
    def _cache(self) -> HashCache:
        """The stat cache (or none, when it cannot be written: scans then read every file)."""
        if self._stat_cache is None:
            from kaos.store.state import open_stat_cache

            self._stat_cache = open_stat_cache(self._stat_cache_path)
        return self._stat_cache


def current_workspace(explicit: str | None = None) -> str:
    """The workspace a call acts on: the one named, else KAOS_WORKSPACE, else the saved one."""
    name = explicit or os.environ.get("KAOS_WORKSPACE") or ClientConfig.load().workspace
    if not name:
        raise NoWorkspace()
    return name


def _save_current(name: str) -> None:
    config = ClientConfig.load()
    config.workspace = name
    config.save()


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
