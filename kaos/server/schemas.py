"""The API's request and response bodies (pydantic), and their making from catalog records."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, Field

from kaos.pipeline.compare import ModelComparison
from kaos.pipeline.diff import TreeDiff, ValueChange
from kaos.pipeline.inputs import MAX_CPU, MAX_GPU
from kaos.pipeline.records import Image, Job, Model
from kaos.pipeline.reproduce import Reproduction
from kaos.store.hashing import is_digest


def _check_digest(value: str) -> str:
    if not is_digest(value):
        raise ValueError("must be a 32-character lowercase hex digest")
    return value


Digest = Annotated[str, AfterValidator(_check_digest)]
MAX_DIGESTS = 100_000  # per `missing` or `fetch` request


class WorkspaceIn(BaseModel):
    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


class ResourcesIn(BaseModel):
    cpu: float | None = Field(default=None, gt=0, le=MAX_CPU, allow_inf_nan=False)
    memory: str | None = Field(default=None, max_length=32)
    gpu: int = Field(default=0, ge=0, le=MAX_GPU)
    network: bool = False


class ImageOut(BaseModel):
    name: str | None
    state: str  # ready | building | failed
    job_id: str


class InputsOut(BaseModel):
    source: Digest | None
    data: Digest | None
    source_name: str | None
    data_name: str | None
    grid: dict[str, list[Any]] | None
    resources: dict[str, Any]
    image: ImageOut | None


class WorkspaceOut(BaseModel):
    name: str
    created: float
    inputs: InputsOut
    jobs: int = 0
    owner: str | None = None  # None: made before ownership (admins, and those shared with)
    shares: dict[str, str] = Field(default_factory=dict)  # user -> reader | writer


class ShareIn(BaseModel):
    member: str = Field(min_length=1, max_length=64, pattern=r"^[^\s/]+$")
    role: str = Field(default="reader", max_length=16)


class DigestsIn(BaseModel):
    """A list of digests: which are missing (`/objects/missing`), or to fetch."""

    digests: list[Digest] = Field(max_length=MAX_DIGESTS)


class FetchIn(DigestsIn):
    """Objects to download, and the tree they belong to (with tokens on, a tree the user can
    read: content is shared between workspaces, so a hash alone opens nothing)."""

    tree: Digest | None = None


class MissingOut(BaseModel):
    missing: list[Digest]


class CompleteOut(BaseModel):
    complete: bool


class InboxIn(BaseModel):
    """A pack left in the server's inbox folder, by its file name (`kaos.store.inbox`)."""

    name: str = Field(max_length=128)


class PackOut(BaseModel):
    stored: int


class DeployIn(BaseModel):
    source: Digest | None = None
    data: Digest | None = None
    manifest: str | None = Field(default=None, max_length=8 << 20)  # JSON lines: url, path
    grid: dict[str, Any] | None = None
    resources: ResourcesIn | None = None
    parallelism: int = Field(default=1, ge=1, le=256)
    force: bool = False
    refresh_env: bool = False  # resolve the requirements again (a new lock) and retrain


class JobOut(BaseModel):
    id: str
    kind: str
    workspace: str
    deploy_id: int | None
    state: str
    created: float
    started: float | None
    finished: float | None
    duration: float | None
    source: Digest | None
    data: Digest | None
    image: str | None
    author: str
    hyperopt: bool
    parallelism: int
    reason: str | None
    lock: Digest | None  # the environment's lock tree (None: base interpreter only)

    @classmethod
    def of(cls, job: Job) -> JobOut:
        return cls(**{**asdict(job), "state": job.state.value, "duration": job.duration})


class ModelOut(BaseModel):
    job_id: str
    index: int
    model_id: str | None
    params: dict[str, Any] | None
    state: str
    metrics: dict[str, Any]
    started: float | None
    finished: float | None
    reason: str | None
    output_tree: Digest | None
    node: str | None

    @classmethod
    def of(cls, model: Model) -> ModelOut:
        return cls(**{**asdict(model), "state": model.state.value})


class DeployOut(BaseModel):
    deploy_id: int
    inputs: InputsOut
    build_job: JobOut | None
    train_job: JobOut | None
    reused: list[str]  # model ids answering for identical inputs
    waiting: int  # combinations waiting for the image
    in_progress: int  # combinations already training
    notes: list[str] = []  # e.g. the environment has only the base interpreter


class JobDetailOut(BaseModel):
    job: JobOut
    models: list[ModelOut]
    available_metrics: list[str]
    source_name: str | None
    data_name: str | None


class LogsOut(BaseModel):
    text: str
    offset: int
    finished: bool


class EnvironmentOut(BaseModel):
    lock: Digest  # the lock tree (the lock file and python-version)
    file: str  # requirements.lock | pylock.toml
    python: str
    packages: dict[str, str]  # the requirements' top-level packages -> locked version
    locked: int  # how many packages the lock installs


class ProvenanceOut(BaseModel):
    model: ModelOut
    job: JobOut
    source_name: str | None
    data_name: str | None
    deploy_author: str
    deploy_time: float
    environment: EnvironmentOut | None  # None: no requirements, the base interpreter only
    network: bool = False  # the deploy let the train use the network (--network)


def image_out(image: Image | None, name: str | None) -> ImageOut | None:
    if image is None:
        return None
    return ImageOut(name=name, state=image.state, job_id=image.job_id)


class VerifyOut(BaseModel):
    ok: bool
    packs: int
    objects: int
    trees: int
    corrupt: list[str]
    missing: list[str]
    missing_packs: list[str] = []  # indexed, but the pack file is gone
    catalog_problems: list[str]
    dropped: list[str] = []  # with repair: objects removed from the index (re-upload heals)


class GcIn(BaseModel):
    dry_run: bool = False


class GcOut(BaseModel):
    dry_run: bool
    packs_deleted: int
    packs_rewritten: int
    objects_removed: int
    temp_files_removed: int
    bytes_freed: int


class FileChangeOut(BaseModel):
    path: str
    change: str  # added | removed | changed
    size_a: int | None
    size_b: int | None
    diff: str | None  # unified diff of a changed text file of the source
    rows_appended: int | None  # a CSV (or .csv.gz) file where B only appends rows to A


class TreeDiffOut(BaseModel):
    a: Digest | None
    b: Digest | None
    same: bool
    files: list[FileChangeOut]


class ValueChangeOut(BaseModel):
    name: str
    a: Any
    b: Any


class ModelSideOut(BaseModel):
    model_id: str
    job_id: str
    index: int
    source: Digest
    data: Digest
    lock: Digest | None
    output_tree: Digest


class ModelDiff(BaseModel):
    """What changed from model `a` (the `against` model) to model `b`, from stored trees."""

    a: ModelSideOut
    b: ModelSideOut
    source: TreeDiffOut
    data: TreeDiffOut
    hyperparams: list[ValueChangeOut]  # combination values that differ
    packages: list[ValueChangeOut]  # locked package versions that differ
    metrics: list[ValueChangeOut]  # every metric of either model, side by side

    @classmethod
    def of(cls, comparison: ModelComparison) -> ModelDiff:
        def tree(d: TreeDiff) -> TreeDiffOut:
            files = [FileChangeOut(**asdict(f)) for f in d.files]
            return TreeDiffOut(a=d.a, b=d.b, same=d.same, files=files)

        def values(changes: list[ValueChange]) -> list[ValueChangeOut]:
            return [ValueChangeOut(name=c.name, a=c.a, b=c.b) for c in changes]

        return cls(
            a=ModelSideOut(**asdict(comparison.a)),
            b=ModelSideOut(**asdict(comparison.b)),
            source=tree(comparison.source),
            data=tree(comparison.data),
            hyperparams=values(comparison.hyperparams),
            packages=values(comparison.packages),
            metrics=values(comparison.metrics),
        )


# -- serving --------------------------------------------------------------------------------------
class ServeDeployIn(BaseModel):
    model_id: str | None = Field(default=None, min_length=1, max_length=128)
    name: str | None = Field(default=None, min_length=1, max_length=64)
    follow: str | None = Field(default=None, min_length=1, max_length=128)
    port: int | None = None
    # left out (None): a redeploy keeps the endpoint's, a new endpoint takes the default
    replicas: int | None = Field(default=None, ge=1, le=64)
    max_batch_size: int | None = Field(default=None, ge=0, le=100_000)
    max_latency_ms: float | None = Field(default=None, ge=0, le=60_000)
    resources: ResourcesIn | None = None
    serve_source: Digest | None = None  # kaos 1.0: a bundle whose model/serve listens on $PORT


class ServeStatsOut(BaseModel):
    requests: int = 0
    errors: int = 0
    p50_ms: float | None = None
    p99_ms: float | None = None


class RevisionOut(BaseModel):
    id: int  # numbered per endpoint: 1, 2, 3, ...
    model_id: str
    state: str
    cause: str  # deploy | rollback | follow
    created: float
    parent: int | None  # the revision a rollback from this one goes back to (its number)
    started: float | None
    stopped: float | None
    port: int | None
    previous_model: str | None  # follow swaps: the model served before, and both values
    metric: str | None
    value: float | None
    previous_value: float | None
    reason: str | None
    stats: ServeStatsOut


class EndpointOut(BaseModel):
    workspace: str
    name: str
    state: str  # STARTING | RUNNING | FAILED | KILLED
    model_id: str | None
    revision: int | None  # the serving revision's number on this endpoint
    follow: str | None
    url: str | None  # the serving revision's own port
    route: str  # through the kaos server, with its auth: <server>/serve/<workspace>/<name>
    created: float
    started: float | None  # when the serving revision first answered
    reason: str | None
    options: dict[str, Any]
    stats: ServeStatsOut  # requests and errors of every revision; latency of the serving one


class EndpointDetailOut(EndpointOut):
    revisions: list[RevisionOut]  # oldest first
    build_job: str | None  # the job that built the model's environment


class ServeLogsOut(BaseModel):
    text: str
    offset: int
    revision: int | None


# -- browsing a workspace's history (the dashboard's API) -------------------------------------
class ModelRowOut(ModelOut):
    """A model with what it came from: its job's inputs and the deploy that started it."""

    workspace: str
    deploy_id: int | None
    created: float  # its job's creation time: deploy order
    source: Digest | None
    data: Digest | None
    source_name: str | None
    data_name: str | None
    author: str


class ColumnOut(BaseModel):
    group: str  # metrics | params
    name: str
    differs: bool  # not the same value on every model
    numeric: bool
    low: float | None
    high: float | None


class ModelPageOut(BaseModel):
    total: int  # models matching the filters, over every page
    offset: int
    limit: int
    items: list[ModelRowOut]
    columns: list[ColumnOut]  # every metric and hyperparameter of the workspace's models


class ChangeOut(BaseModel):
    what: str  # source | data | params.NAME
    before: Any
    after: Any
    label: str  # for people: "source /mnist:0b8c5 -> /mnist:7a1e2"


class ProgressPointOut(BaseModel):
    model_id: str
    job_id: str
    index: int
    deploy_id: int | None
    created: float
    author: str
    value: float | None
    best: bool  # better than every model before it
    params: dict[str, Any] | None
    changes: list[ChangeOut]  # from the previous point


class ProgressOut(BaseModel):
    metric: str | None
    goal: str  # max | min: which way is better
    metrics: list[str]  # every metric the workspace's models report
    points: list[ProgressPointOut]  # successful models in deploy order


class TimelineEntryOut(BaseModel):
    id: int
    workspace: str
    author: str
    time: float
    force: bool
    source: Digest | None  # what this deploy changed (None: kept)
    source_name: str | None
    data: Digest | None
    data_name: str | None
    grid: dict[str, Any] | None
    resources: dict[str, Any] | None
    parallelism: int
    jobs: list[JobOut]  # what it started


class TimelineOut(BaseModel):
    total: int
    offset: int
    limit: int
    items: list[TimelineEntryOut]  # newest first


class ReproductionOut(BaseModel):
    """A retrain of `original` from its stored inputs and lock, and how its output compares."""

    job: JobOut  # kind "reproduce"
    original: str  # the model id reproduced
    original_tree: Digest | None
    reproduced_tree: Digest | None  # None until it trained (or when it failed)
    reproduced_id: str | None
    identical: bool
    files: list[FileChangeOut]  # output files that differ, with sizes

    @classmethod
    def of(cls, r: Reproduction) -> ReproductionOut:
        return cls(
            job=JobOut.of(r.job),
            original=r.original.model_id or "",
            original_tree=r.original.output_tree,
            reproduced_tree=r.reproduced_tree,
            reproduced_id=r.reproduced_id,
            identical=r.identical,
            files=[FileChangeOut(**asdict(f)) for f in r.files],
        )
