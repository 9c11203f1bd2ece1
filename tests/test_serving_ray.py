"""Serving on the ray executor through the real CLI and a `kaos server --executor ray` (its own
local Ray instance): a revision is N Ray actors, each running the runtime in the model's locked
environment made on its node; the kaos route balances over them, swaps drain them, kill ends
them. The model is tests/fixtures/serving.py (`y = scale * (a + b)`, scale = the data's rows)."""

from __future__ import annotations

import time
import uuid

import httpx
import pytest

from kaos.pipeline.leases import process_alive
from tests.cli import Cli
from tests.conftest import KaosServer
from tests.fixtures.serving import write_serve_script_source
from tests.test_serving import (
    ROW,
    Load,
    follow_takes_over,
    invoke,
    restarted,
    route,
    swap_and_roll_back,
    train,
)

pytest.importorskip("ray", reason="Ray is not installed (pip install 'kaos[ray]')")
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def ray_server(tmp_path_factory):
    root = tmp_path_factory.mktemp("serve-ray")
    (root / "home").mkdir()
    server = KaosServer(
        root / "home", ["--executor", "ray"], env={"KAOS_RAY_NODE_HOME": str(root / "node")}
    )
    yield server
    server.stop()


def replica_pids(base: str, tries: int = 8) -> set[int]:
    return {httpx.get(f"{base}/version").json()["pid"] for _ in range(tries)}


def gone(pids: set[int], timeout: float = 30) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not any(process_alive(pid) for pid in pids):
            return True
        time.sleep(0.1)
    return False


def test_ray_replicas_share_the_route_swap_without_failures_and_end_with_kill(ray_server, tmp_path):
    cli = Cli(tmp_path / "client-home", tmp_path, ray_server.url)
    cli.ok("workspace", "create", "-n", f"ray-{uuid.uuid4().hex[:8]}")
    first = train(cli, rows=3)
    assert "--port" in cli.fails("serve", "deploy", "-m", first, "-n", "x", "--port", "9").err
    cli.ok("serve", "deploy", "-m", first, "-n", "adder", "--replicas", "2")
    base = route(cli, ray_server, "adder")
    pids = replica_pids(base)
    assert len(pids) == 2  # round robin reaches both replicas
    assert (
        cli.ok("serve", "info", "-n", "adder", "--json")
        .json()["url"]
        .startswith("http://127.0.0.1:")
    )  # a local Ray instance's node address, like every server here
    assert invoke(base, ROW).json() == {"predictions": [9.0]}

    second = train(cli, rows=5, source=False)
    with Load(base) as load:  # a redeploy without --replicas keeps the endpoint's 2
        cli.ok("serve", "deploy", "-m", second, "-n", "adder")
    assert load.failures() == []
    assert set(load.answers) == {9.0, 15.0}  # the old model until the swap, the new one after
    new_pids = replica_pids(base)
    assert len(new_pids) == 2 and not new_pids & pids
    assert gone(pids)  # the old revision's replicas drained and stopped

    info = cli.ok("serve", "info", "-n", "adder", "--json").json()
    assert info["model_id"] == second and info["options"]["replicas"] == 2
    assert info["stats"]["requests"] >= 8 and info["stats"]["errors"] == 0
    assert "loaded" in cli.ok("serve", "logs", "-n", "adder").out  # relayed from the nodes

    cli.ok("serve", "kill", "-n", "adder")
    assert gone(new_pids)
    assert httpx.post(f"{base}/invocations", content=ROW).status_code == 503


def test_ray_rolls_back_follows_serves_a_kaos_1_0_source_and_survives_a_restart(
    ray_server, tmp_path
):
    """Last in this module: it restarts the module's server."""
    cli = Cli(tmp_path / "client-home", tmp_path, ray_server.url)
    cli.ok("workspace", "create", "-n", f"ray-{uuid.uuid4().hex[:8]}")
    small, large = train(cli, rows=3), train(cli, rows=5, source=False)
    swap_and_roll_back(cli, ray_server, small, large)
    follow_takes_over(cli, ray_server, large)
    write_serve_script_source(cli.cwd / "serve-src")  # its model/serve, on the replica's node
    cli.ok("serve", "deploy", "-m", small, "-n", "old", "-s", "serve-src")
    assert invoke(route(cli, ray_server, "old"), ROW).json() == {"predictions": [90]}
    assert "kaos 1.0 serve script on port" in cli.ok("serve", "logs", "-n", "old").out
    node = {"KAOS_RAY_NODE_HOME": str(ray_server.home.parent / "node")}
    server = restarted(ray_server, cli, ["--executor", "ray"], ("adder", "best", "old"), node)
    try:
        assert invoke(route(cli, server, "adder"), ROW).json() == {"predictions": [9.0]}
        assert invoke(route(cli, server, "best"), ROW).json() == {"predictions": [18.0]}
        assert invoke(route(cli, server, "old"), ROW).json() == {"predictions": [90]}
    finally:
        server.stop()
