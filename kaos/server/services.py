"""The server's long-lived parts, made once at start-up and handed to routes as a dependency."""

from __future__ import annotations

from kaos.errors import ConfigError
from kaos.executors.local import BuildSettings, LocalExecutor
from kaos.pipeline.catalog import SqliteCatalog
from kaos.pipeline.engine import Pipeline
from kaos.pipeline.executor import Executor
from kaos.pipeline.logs import JobLogs
from kaos.server.settings import Settings
from kaos.serving.manager import ServingManager
from kaos.store import ContentStore


class Services:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        home = settings.home
        home.mkdir(parents=True, exist_ok=True)
        self.store = ContentStore.from_url(
            settings.store_url, home, settings.s3_endpoint_url, settings.cache_max
        )
        self.catalog = SqliteCatalog(home / "catalog.db")
        self.logs = JobLogs(home / "logs")
        self.executor = make_executor(settings, self.store)
        self.pipeline = Pipeline(
            self.catalog, self.store, self.executor, self.logs, settings.max_parallel, home / "tmp"
        )
        self.recovered = self.pipeline.recover()  # told at start-up (see app.lifespan)
        self.serving = ServingManager(self.catalog, self.store, self.executor, home)
        self.serving.start()  # endpoints that served before a restart come back

    def close(self) -> None:
        """Stop running jobs (recorded as killed), then let the executor let go of its engine.
        Endpoint processes stop too, but stay RUNNING in the catalog, to come back at start."""
        self.serving.close()
        self.pipeline.shutdown()
        self.executor.close()

    def bundle_name(self, digest: str | None) -> str | None:
        """A deployed bundle's folder name, as recorded at deploy time (None if never named)."""
        return self.catalog.bundle_name(digest) if digest else None


def check_executor(settings: Settings) -> None:
    """Fail before serving when the chosen executor cannot work here (one clear error)."""
    if settings.executor == "docker":
        from kaos.executors.docker import connect

        connect()


def make_executor(settings: Settings, store: ContentStore) -> Executor:
    if settings.executor == "local":
        build = BuildSettings(settings.index_url, settings.extra_index_url, settings.ca_bundle)
        return LocalExecutor(store, settings.home, build, settings.sandbox)
    if settings.executor == "docker":
        from kaos.executors.docker import DockerExecutor, DockerSettings

        docker_settings = DockerSettings(
            base_image=settings.base_image,
            build_args=settings.build_args,
            ca_bundle=settings.ca_bundle,
            index_url=settings.index_url,
            extra_index_url=settings.extra_index_url,
        )
        return DockerExecutor(store, settings.home, docker_settings)
    if settings.executor == "ray":
        from kaos.executors.ray import RayExecutor, RaySettings

        build = BuildSettings(settings.index_url, settings.extra_index_url, settings.ca_bundle)
        ray_settings = RaySettings(address=settings.ray_address, node_home=settings.ray_node_home)
        return RayExecutor(
            store,
            settings.home,
            settings.store_url,
            settings.s3_endpoint_url,
            ray_settings,
            build,
            settings.sandbox,
        )
    raise ConfigError(
        f"the {settings.executor} executor is not available yet", "use --executor local"
    )
