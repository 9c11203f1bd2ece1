"""Serving through the real CLI and server (local executor): deploy, every request format,
swaps under load, rollback, follow, restarts, bad input. The model is tests/fixtures/serving.py:
`y = scale * (a + b)` where scale is the data's row count, so answers tell models apart."""

from __future__ import annotations

import json
import os
import resource
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TypeVar

import httpx
import pytest

from tests.cli import Cli
from tests.conftest import KaosServer, free_port
from tests.docker_env import BASE_IMAGE, requires_docker
from tests.fixtures.serving import (
    write_serve_data,
    write_serve_script_source,
    write_serve_source,
)

pytestmark = pytest.mark.slow
ROW = json.dumps({"instances": [[1, 2]]})
T = TypeVar("T")


@pytest.fixture
def cli(kaos_server, tmp_path) -> Cli:
    cli = Cli(tmp_path / "client-home", tmp_path, kaos_server.url)
    cli.ok("workspace", "create", "-n", f"sv-{uuid.uuid4().hex[:8]}")
    return cli


def train(cli: Cli, rows: int, source: bool = True, predict: bool = True) -> str:
    """Deploy (source and) data with `rows` rows; the new model's id."""
    write_serve_data(cli.cwd / "data", rows)
    args = ["-d", "data"]
    if source:
        write_serve_source(cli.cwd / "src", predict=predict, tag=uuid.uuid4().hex)
        args += ["-s", "src"]
    cli.ok("train", "deploy", *args, "--wait")
    return cli.ok("train", "info", "-i", "0", "--json").json()["models"][0]["model_id"]


def route(cli: Cli, server: KaosServer, name: str) -> str:
    """The endpoint's address through the kaos server."""
    return server.url + cli.ok("serve", "info", "-n", name, "--json").json()["route"]


def invoke(url: str, body: str | bytes, content_type: str = "application/json") -> httpx.Response:
    return httpx.post(f"{url}/invocations", content=body, headers={"content-type": content_type})


def strict_json(text: str) -> object:
    """Parse as a strict client does: NaN and Infinity are no JSON."""

    def refuse(constant: str) -> None:
        raise AssertionError(f"{constant} in an answer is no JSON")

    return json.loads(text, parse_constant=refuse)


def eventually(check: Callable[[], T], timeout: float = 30) -> T:
    """Poll `check` until it returns something true; that value (or the last false one)."""
    deadline = time.time() + timeout
    while not (value := check()) and time.time() < deadline:
        time.sleep(0.3)
    return value


class Load:
    """Clients sending ROW to `url` until the block ends; `answers` holds every prediction,
    or what failed instead (a status and body, or the transport error)."""

    def __init__(self, url: str, clients: int = 4) -> None:
        self.url = url
        self.answers: list[object] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._send) for _ in range(clients)]

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        time.sleep(0.3)
        return self

    def __exit__(self, *_exc: object) -> None:
        time.sleep(0.3)
        self._stop.set()
        for thread in self._threads:
            thread.join()

    def _send(self) -> None:
        with httpx.Client(timeout=30) as http:
            while not self._stop.is_set():
                try:
                    r = http.post(f"{self.url}/invocations", content=ROW,
                                  headers={"content-type": "application/json"})  # fmt: skip
                    ok = r.status_code == 200
                    answer = r.json()["predictions"][0] if ok else f"{r.status_code} {r.text}"
                    self.answers.append(answer)
                except httpx.HTTPError as exc:
                    self.answers.append(repr(exc))

    def failures(self) -> list[object]:
        return [a for a in self.answers if not isinstance(a, float)]


def test_a_model_serves_every_mlflow_format_directly_and_through_the_kaos_route(
    cli, kaos_server, tmp_path
):
    model = train(cli, rows=3)
    out = cli.ok("serve", "deploy", "-m", model[:8], "-n", "adder").out
    assert "Serving " + model in out
    endpoint = cli.ok("serve", "info", "-n", "adder", "--json").json()
    direct, routed = endpoint["url"], route(cli, kaos_server, "adder")
    assert endpoint["state"] == "RUNNING" and endpoint["model_id"] == model
    bodies = {
        "instances.json": {"instances": [[1, 2], [3, 4]]},
        "inputs.json": {"inputs": {"b": [2, 4], "a": [1, 3]}},
        "split.json": {"dataframe_split": {"columns": ["b", "a"], "data": [[2, 1], [4, 3]]}},
        "records.json": {"dataframe_records": [{"a": 1, "b": 2}, {"b": 4, "a": 3}]},
    }
    for file, body in bodies.items():
        (tmp_path / file).write_text(json.dumps(body))
        assert cli.ok("serve", "predict", "-n", "adder", file).out.split() == ["9.0", "21.0"]
        for base in (direct, routed):
            assert invoke(base, json.dumps(body)).json() == {"predictions": [9.0, 21.0]}
    (tmp_path / "rows.csv").write_text("b,a\n2,1\n4,3\n")
    assert cli.ok("serve", "predict", "-n", "adder", "rows.csv", "--json").json() == {
        "predictions": [9.0, 21.0]
    }
    for base in (direct, routed):
        for path in ("ping", "health"):
            assert httpx.get(f"{base}/{path}").status_code == 200
        assert httpx.get(f"{base}/version").json()["model_id"] == model
    table = cli.ok("serve", "list").out
    assert "adder" in table and model in table and "RUNNING" in table and direct in table
    info = cli.ok("serve", "info", "-n", "adder", "--json").json()
    assert info["stats"]["requests"] >= 11 and info["stats"]["p50_ms"] is not None
    assert "environment" in cli.ok("serve", "build-logs", "-n", "adder").out
    assert model in cli.ok("serve", "provenance", "-n", "adder").out
    assert "loaded in" in cli.ok("serve", "logs", "-n", "adder").out


def test_bad_requests_and_a_failing_predict_get_one_line_and_the_endpoint_stays_up(
    cli, kaos_server, tmp_path
):
    model = train(cli, rows=3)
    cli.ok("serve", "deploy", "-m", model, "-n", "adder")
    url = route(cli, kaos_server, "adder")
    cases = [
        (b"{not json", "application/json", 400, "malformed JSON"),
        (b'{"rows": [[1, 2]]}', "application/json", 400, "expected exactly one of instances"),
        (b'{"instances": [[1, 2, 3]]}', "application/json", 400, "expected rows of 2 features"),
        (b"<rows/>", "application/xml", 415, "unsupported content type"),
        (b'{"instances": [[666, 1]]}', "application/json", 500, "ValueError: the number of"),
    ]
    follower = subprocess.Popen(
        [sys.executable, "-m", "kaos", "serve", "logs", "-n", "adder", "-f"],
        cwd=cli.cwd, env=cli.env, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        for body, content_type, status, says in cases:
            answer = invoke(url, body, content_type)
            assert answer.status_code == status and says in answer.json()["message"]
        wrong_method = httpx.get(f"{url}/invocations"), httpx.post(f"{url}/ping")
        assert [a.status_code for a in wrong_method] == [405, 405]
        assert "POST /invocations" in wrong_method[0].json()["message"]
        assert invoke(url, ROW).json() == {"predictions": [9.0]}
        non_finite = invoke(url, json.dumps({"instances": [[555, 0], [555, 1], [555, -1], [1, 2]]}))
        assert non_finite.status_code == 200
        assert strict_json(non_finite.text) == {"predictions": [None, None, None, 9.0]}
        assert "ValueError: the number of the beast" in cli.ok("serve", "logs", "-n", "adder").out
        assert follower.stdout is not None
        deadline = time.time() + 30
        while time.time() < deadline:  # -f prints the traceback as it is written
            if "the number of the beast" in follower.stdout.readline():
                break
        assert time.time() < deadline
    finally:
        follower.terminate()
        follower.wait()
    (tmp_path / "rows.txt").write_text("a,b\n1,2\n")  # CSV, whatever its name
    assert cli.ok("serve", "predict", "-n", "adder", "rows.txt").out.split() == ["9.0"]
    (tmp_path / "bad.json").write_text('{"instances": [[1]]}')
    failed = cli.fails("serve", "predict", "-n", "adder", "bad.json")
    assert "expected rows of 2 features" in failed.err and len(failed.err.splitlines()) == 1
    info = cli.ok("serve", "info", "-n", "adder", "--json").json()
    assert info["stats"]["errors"] == 6 and info["state"] == "RUNNING"


def test_deploys_that_cannot_serve_fail_with_one_line_and_change_nothing(cli, kaos_server):
    model = train(cli, rows=3)
    bare = train(cli, rows=4, predict=False)
    taken = free_port()
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", taken))
        holder.listen()
        for args, says in [
            (["-m", "ffffff", "-n", "x"], "no model matches 'ffffff'"),
            (["-m", bare, "-n", "x"], "source has no adder/model/predict.py"),
            (["-m", model, "-n", "x", "--port", str(taken)], f"port {taken} is taken"),
            (["-m", model, "-n", "bad name"], "invalid endpoint name"),
            (["-m", model, "-n", "x", "--replicas", "2"], "one process per revision"),
            (["-n", "x"], "which model?"),
            (["-m", model, "-n", "x", "--memory", "lots"], "bad memory size 'lots'"),
            (["-m", model, "-n", "x", "--follow", "-sorce"], "reports no metric 'sorce'"),
        ]:
            failed = cli.fails("serve", "deploy", *args)
            assert says in failed.err and len(failed.err.strip().splitlines()) == 1, failed.err
    assert cli.ok("serve", "list", "--json").json() == []
    for command in (["info", "-n", "nope"], ["rollback", "-n", "nope"], ["kill", "-n", "nope"]):
        assert "no endpoint 'nope'" in cli.fails("serve", *command).err
    cli.ok("serve", "deploy", "-m", model, "-n", "one", "--cpu", "1", "--memory", "300m")
    refused = cli.fails("serve", "rollback", "-n", "one").err
    assert f"nothing to roll back to: revision 1 serves {model}, the first model it" in refused
    pid = httpx.get(cli.ok("serve", "info", "-n", "one", "--json").json()["url"] + "/version")
    pid = pid.json()["pid"]  # --cpu and --memory hold for the local process: the kernel's view
    assert len(os.sched_getaffinity(pid)) == min(1, len(os.sched_getaffinity(0)))
    assert resource.prlimit(pid, resource.RLIMIT_DATA) == (300 << 20, 300 << 20)
    workspace = cli.ok("workspace", "current", "--json").json()["workspace"]
    refused = cli.fails("workspace", "kill", "-n", workspace, "--yes").err
    assert "still serves 1 endpoint(s)" in refused and "kaos serve kill" in refused
    cli.ok("serve", "kill", "-n", "one")
    assert "kaos-serve: stopped" in cli.ok("serve", "logs", "-n", "one", "-f", timeout=60).out
    answer = invoke(route(cli, kaos_server, "one"), ROW)
    assert answer.status_code == 503 and "killed" in answer.json()["detail"]
    assert "endpoint 'one' is stopped" in cli.fails("serve", "rollback", "-n", "one").err


def test_a_serve_deploy_records_into_the_workspace_it_checked_or_finds_it_gone(cli, kaos_server):
    """A serve deploy checks its caller's access first and records the endpoint later: a
    workspace deleted in between (and perhaps made anew by someone else) got the endpoint
    anyway. It records under the workspace's lock now, asking again, as a train deploy does."""
    from kaos.pipeline.catalog import SqliteCatalog

    model = train(cli, rows=3)
    workspace = cli.ok("workspace", "current", "--json").json()["workspace"]
    catalog = SqliteCatalog(kaos_server.home / "catalog.db")
    try:
        with catalog.workspace_lock(workspace):  # held as `kaos workspace kill` holds it
            deploying = cli.start("serve", "deploy", "-m", model, "-n", "late")
            time.sleep(3)  # its checks pass; it waits for the lock to record the endpoint
            catalog.delete_workspace(workspace)  # refused had the endpoint been recorded
        late = deploying.finish(timeout=120)
        assert late.code != 0 and "Traceback" not in late.err
        assert workspace in late.err and len(late.err.strip().splitlines()) == 1, late.err
        assert all(e.name != "late" for e in catalog.endpoints())
    finally:
        catalog.close()


def test_a_deploy_or_kill_behind_a_held_workspace_fails_as_busy_and_changes_nothing(tmp_path):
    """Held past the server's KAOS_LOCK_WAIT_S (by another replica, a stuck request), a
    workspace's train deploy, serve deploy or deletion fails in one line as busy and records
    nothing, instead of waiting past its client's patience and happening unseen later."""
    from kaos.pipeline.catalog import SqliteCatalog

    (tmp_path / "home").mkdir()
    server = KaosServer(tmp_path / "home", env={"KAOS_LOCK_WAIT_S": "1"})
    catalog = SqliteCatalog(tmp_path / "home" / "catalog.db")
    try:
        cli = Cli(tmp_path / "client", tmp_path, server.url)
        cli.ok("workspace", "create", "-n", "held")
        model = train(cli, rows=3)
        write_serve_data(tmp_path / "data", 4)
        with catalog.workspace_lock("held"):  # as another replica's deploy would hold it
            for command in (
                ["train", "deploy", "-d", "data"],
                ["serve", "deploy", "-m", model, "-n", "busy"],
                ["workspace", "kill", "-n", "held", "--yes"],
            ):
                busy = cli.fails(*command).err.strip().splitlines()[-1]  # after any progress
                assert busy.startswith("Error: workspace 'held' is busy"), busy
                assert busy.endswith("(try again in a moment)"), busy
        assert len(catalog.deploys("held")) == 1 and catalog.endpoints() == []
        cli.ok("train", "deploy", "-d", "data")  # let go of: deploys go through again
        assert len(catalog.deploys("held")) == 2
    finally:
        catalog.close()
        server.stop()


def test_swaps_and_rollback_under_load_fail_no_request(cli, kaos_server):
    small, large = train(cli, rows=3), train(cli, rows=5, source=False)
    cli.ok("serve", "deploy", "-m", small, "-n", "other")  # revisions are numbered per endpoint
    url = swap_and_roll_back(cli, kaos_server, small, large, "--max-batch-size", "4")
    info = cli.ok("serve", "info", "-n", "adder", "--json").json()
    assert info["options"]["max_batch_size"] == 4  # kept by the redeploy that left it out
    rows = [line.split("|") for line in cli.ok("serve", "info", "-n", "adder").out.splitlines()]
    assert info["revision"] == 3
    assert [r[1].strip() for r in rows if len(r) > 2 and r[2].strip() in (small, large)] == [
        "3", "2", "1"
    ]  # fmt: skip
    revisions = info["revisions"]
    assert [(r["id"], r["parent"], r["cause"], r["state"]) for r in revisions] == [
        (1, None, "deploy", "STOPPED"), (2, 1, "deploy", "STOPPED"),
        (3, None, "rollback", "SERVING"),
    ]  # fmt: skip
    assert invoke(url, ROW).json() == {"predictions": [9.0]}


def swap_and_roll_back(cli: Cli, server: KaosServer, small: str, large: str, *options: str) -> str:
    """Deploy `small` to 'adder' (with `options`), swap to `large` and roll back, under load:
    no request fails; a second rollback has nothing to go back to. The route."""
    cli.ok("serve", "deploy", "-m", small, "-n", "adder", *options)
    url = route(cli, server, "adder")
    with Load(url) as load:
        assert "(revision 2)" in cli.ok("serve", "deploy", "-m", large, "-n", "adder").out
        assert invoke(url, ROW).json() == {"predictions": [15.0]}
        out = cli.ok("serve", "rollback", "-n", "adder").out
        assert small in out and "(revision 3)" in out
    assert load.failures() == [] and set(load.answers) == {9.0, 15.0}
    assert invoke(url, ROW).json() == {"predictions": [9.0]}
    again = cli.fails("serve", "rollback", "-n", "adder").err  # back at the first model
    assert f"nothing to roll back to: revision 3 serves {small}, the first model it" in again
    return url


def test_a_followed_endpoint_swaps_to_a_better_model_trained_by_a_data_deploy(cli, kaos_server):
    first = train(cli, rows=3)
    cli.ok("serve", "deploy", "-n", "best", "--follow", "score")  # the best so far: `first`
    cli.ok("serve", "deploy", "-m", first, "-n", "lowloss", "--follow", "-loss")
    better = train(cli, rows=6, source=False)
    deadline = time.time() + 30
    while time.time() < deadline:
        info = cli.ok("serve", "info", "-n", "best", "--json").json()
        if info["model_id"] == better:
            break
        time.sleep(0.5)
    assert info["model_id"] == better
    swap = info["revisions"][-1]
    assert (swap["cause"], swap["previous_model"], swap["metric"]) == ("follow", first, "score")
    assert (swap["previous_value"], swap["value"]) == (0.03, 0.06)
    assert "follow score" in cli.ok("serve", "info", "-n", "best").out
    assert invoke(route(cli, kaos_server, "best"), ROW).json() == {"predictions": [18.0]}
    worse = train(cli, rows=2, source=False)  # a worse model never takes over
    time.sleep(2.5)
    assert cli.ok("serve", "info", "-n", "best", "--json").json()["model_id"] == better
    lowloss = cli.ok("serve", "info", "-n", "lowloss", "--json").json()
    assert lowloss["model_id"] == better and worse != better


def test_endpoints_survive_a_server_restart_and_a_crashing_process_is_restarted_then_failed(
    tmp_path,
):
    home = tmp_path / "home"
    home.mkdir()
    server = KaosServer(home)
    try:
        cli = Cli(tmp_path / "client-home", tmp_path, server.url)
        cli.ok("workspace", "create", "-n", "restart")
        model = train(cli, rows=3)
        cli.ok("serve", "deploy", "-m", model, "-n", "adder")
        cli.ok("serve", "deploy", "-m", model, "-n", "crashy")
        direct = cli.ok("serve", "info", "-n", "adder", "--json").json()["url"]
        server.stop()
        with pytest.raises(httpx.TransportError):
            invoke(direct, ROW)  # the endpoint stopped with its server
        server = KaosServer(home)  # on another port: the client follows it
        cli.ok("init", "-e", server.url)
        url = route(cli, server, "adder")
        deadline = time.time() + 30
        while invoke(url, ROW).status_code != 200 and time.time() < deadline:
            time.sleep(0.2)
        assert invoke(url, ROW).json() == {"predictions": [9.0]}
        assert cli.ok("serve", "info", "-n", "adder", "--json").json()["url"] == direct

        def crash(times: int) -> None:
            url = cli.ok("serve", "info", "-n", "crashy", "--json").json()["url"]
            for _crash in range(times):
                deadline = time.time() + 30
                while time.time() < deadline:
                    try:
                        if invoke(url, ROW).status_code == 200:
                            break
                    except httpx.TransportError:
                        time.sleep(0.1)
                with pytest.raises(httpx.TransportError):
                    invoke(url, json.dumps({"instances": [[999, 0]]}))

        # a revision put in by rollback (or follow) gets the restarts of its own
        cli.ok("serve", "deploy", "-m", model, "-n", "crashy")
        crash(3)
        assert eventually(lambda: invoke(route(cli, server, "crashy"), ROW).status_code == 200)
        cli.ok("serve", "rollback", "-n", "crashy")
        crash(1)
        assert eventually(lambda: invoke(route(cli, server, "crashy"), ROW).status_code == 200)
        crash(3)
        deadline = time.time() + 30
        while time.time() < deadline:
            info = cli.ok("serve", "info", "-n", "crashy", "--json").json()
            if info["state"] == "FAILED":
                break
            time.sleep(0.2)
        assert info["state"] == "FAILED" and "exited with code 3" in info["reason"]
        assert "restarted 3 times" in info["reason"]
        assert "restart 3 of 3" in cli.ok("serve", "logs", "-n", "crashy").out
        assert cli.ok("serve", "info", "-n", "adder", "--json").json()["state"] == "RUNNING"
    finally:
        server.stop()


def test_the_kaos_1_0_path_serves_with_a_serve_source_whose_model_serve_listens_on_port(
    cli, kaos_server
):
    model = train(cli, rows=3)
    write_serve_script_source(cli.cwd / "bad", executable=False)
    failed = cli.fails("serve", "deploy", "-m", model, "-n", "old", "-s", "bad")
    assert "oldserve/model/serve is not executable" in failed.err
    write_serve_script_source(cli.cwd / "serve-src")
    cli.ok("serve", "deploy", "-m", model, "-n", "old", "-s", "serve-src")
    assert invoke(route(cli, kaos_server, "old"), ROW).json() == {"predictions": [90]}
    assert httpx.get(route(cli, kaos_server, "old") + "/ping").status_code == 200
    assert "kaos 1.0 serve script on port" in cli.ok("serve", "logs", "-n", "old").out
    assert "environment" in cli.ok("serve", "build-logs", "-n", "old").out


def follow_takes_over(cli: Cli, server: KaosServer, first: str) -> None:
    """An endpoint following `score` swaps by itself to the better model a data deploy trains."""
    cli.ok("serve", "deploy", "-n", "best", "--follow", "score")
    assert cli.ok("serve", "info", "-n", "best", "--json").json()["model_id"] == first
    better = train(cli, rows=6, source=False)
    info = eventually(
        lambda: (
            (i := cli.ok("serve", "info", "-n", "best", "--json").json())["model_id"] == better
            and i
        )
    )
    assert info, "the better model never took over"
    swap = info["revisions"][-1]
    assert (swap["cause"], swap["previous_model"], swap["value"]) == ("follow", first, 0.06)
    assert invoke(route(cli, server, "best"), ROW).json() == {"predictions": [18.0]}


def restarted(server: KaosServer, cli: Cli, args: list[str], names: tuple[str, ...],
              env: dict[str, str] | None = None) -> KaosServer:  # fmt: skip
    """Stop the server and start it again on the same home: the endpoints `names` answer again
    (the client follows it to its new port)."""
    server.stop()
    server = KaosServer(server.home, args, env=env)
    cli.ok("init", "-e", server.url)
    for name in names:
        url = route(cli, server, name)
        assert eventually(partial(answers, url), timeout=60), f"{name} did not come back"
    return server


def answers(url: str) -> bool:
    try:
        return invoke(url, ROW).status_code == 200
    except httpx.TransportError:
        return False


@requires_docker
def test_a_docker_server_serves_swaps_rolls_back_follows_and_restarts(tmp_path):
    """The docker executor: the model's image on the host network; a swap and a rollback under
    load fail nothing; a followed endpoint takes a better model; endpoints survive a restart;
    kill removes the containers."""
    home = tmp_path / "home"
    home.mkdir()
    args = ["--executor", "docker", "--base-image", BASE_IMAGE]
    server = KaosServer(home, args)
    try:
        cli = Cli(tmp_path / "client-home", tmp_path, server.url)
        cli.ok("workspace", "create", "-n", "docker")
        small, large = train(cli, rows=3), train(cli, rows=5, source=False)
        swap_and_roll_back(cli, server, small, large)
        direct = cli.ok("serve", "info", "-n", "adder", "--json").json()["url"]
        assert invoke(direct, ROW).json() == {"predictions": [9.0]}
        (tmp_path / "rows.csv").write_text("a,b\n1,2\n")
        assert cli.ok("serve", "predict", "-n", "adder", "rows.csv").out.split() == ["9.0"]
        follow_takes_over(cli, server, large)
        assert eventually(lambda: len(_serving_containers(home)) == 2)  # adder and best
        server = restarted(server, cli, args, ("adder", "best"))
        assert invoke(route(cli, server, "adder"), ROW).json() == {"predictions": [9.0]}
        assert len(_serving_containers(home)) == 2  # the old ones removed, new ones started
        cli.ok("serve", "kill", "-n", "adder")
        cli.ok("serve", "kill", "-n", "best")
        assert eventually(lambda: _serving_containers(home) == [])  # drained, stopped, removed
    finally:
        server.stop()


def _serving_containers(home: Path) -> list[str]:
    out = subprocess.run(
        ["docker", "ps", "-q", "--filter", f"label=kaos.serve={home / 'serving'}"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return out.stdout.split()
