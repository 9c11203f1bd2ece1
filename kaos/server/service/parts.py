"""The server's long-lived parts (store, catalog, logs, executor, engine, serving manager),
made once at start-up. Only the service modules hold them; routes see services."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass

from kaos.errors import ConfigError, KaosError
from kaos.executors.local import BuildSettings, LocalExecutor
from kaos.pipeline.bundles import data_bundle_name
from kaos.pipeline.catalog import SqlCatalog, open_catalog
from kaos.pipeline.engine import Pipeline
from kaos.pipeline.executor import Executor
from kaos.pipeline.leases import Leases, Replica
from kaos.pipeline.logs import JobLogs
from kaos.server.auth import TokenTable
from kaos.server.guard import Guard
from kaos.server.settings import Settings
from kaos.serving.manager import ServingManager
from kaos.store import ContentStore
from kaos.store.backends.local import LocalBackend
from kaos.store.inbox import open_inbox


@dataclass
class Parts:
    settings: Settings
    tokens: TokenTable
    store: ContentStore
    catalog: SqlCatalog
    logs: JobLogs
    executor: Executor
    pipeline: Pipeline
    serving: ServingManager
    guard: Guard  # who may read or change what (kaos.server.access)

    @classmethod
    def start(cls, settings: Settings, tokens: TokenTable) -> Parts:
        home = settings.home
        home.mkdir(parents=True, exist_ok=True)
        store = ContentStore.from_url(
            settings.store_url, home, settings.s3_endpoint_url, settings.cache_max
        )
        if settings.inbox and isinstance(store.backend, LocalBackend):
            try:
                open_inbox(store.backend.root)  # and sweep what killed clients left in it
            except OSError as exc:  # a file in its place, a read-only store: HTTP only
                print(
                    f"kaos: no inbox ({exc.strerror}: {exc.filename}); packs come over HTTP",
                    file=sys.stderr,
                    flush=True,
                )
        catalog = open_catalog(settings.catalog_location)
        logs = JobLogs(home / "logs", catalog)  # shipped to the catalog: every replica reads
        executor = make_executor(settings, store)
        try:
            leases = Leases(settings.lease_s, settings.heartbeat_s)
        except ValueError as exc:
            raise ConfigError(str(exc), "set KAOS_LEASE_S to a few heartbeats or more") from None
        pipeline = Pipeline(
            catalog, store, executor, logs, settings.max_parallel, home / "tmp", leases,
            Replica.here(str(home.resolve()), time.time()), settings.lock_wait_s,
        )  # fmt: skip
        serving = ServingManager(
            catalog, store, executor, home, pipeline.live_peers, settings.lock_wait_s
        )
        guard = Guard(catalog, store, tokens)
        return cls(settings, tokens, store, catalog, logs, executor, pipeline, serving, guard)

    def bundle_name(self, digest: str | None) -> str | None:
        """A deployed bundle's folder name, as recorded at deploy time. A catalog made before
        names were recorded has none: the tree's top folder is the name, recorded once read."""
        if not digest:
            return None
        name = self.catalog.bundle_name(digest)
        if name is not None:
            return name
        try:
            # its one top folder, read as a stream (a data tree may list a million files)
            name = data_bundle_name(self.store.top_level(digest))
        except KaosError:  # the tree is gone, or not one folder: shown by its digest
            return None
        self.catalog.name_bundles({digest: name})
        return name


def check_catalog(settings: Settings) -> None:
    """Fail before serving when the catalog cannot be opened (an unknown scheme, an
    unreachable PostgreSQL, a schema newer than this kaos): one clear error."""
    open_catalog(settings.catalog_location).close()


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
