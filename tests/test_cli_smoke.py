import os
import subprocess
import sys
from pathlib import Path

import pytest

from kaos import __version__
from tests.cli import Cli
from tests.conftest import free_port


def test_kaos_console_script_runs():
    out = subprocess.run(
        [sys.executable, "-m", "kaos", "version"], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == f"kaos {__version__}"


def test_an_unchanged_deploy_loads_only_what_it_uses(kaos_server, tmp_path):
    """Start-up is most of an unchanged deploy (0.15 of 0.35 s at 100,000 files): it loads
    no chunker (only files over 2 MiB are chunked), no server framework, no terminal toolkit."""
    (tmp_path / "data" / "features").mkdir(parents=True)
    (tmp_path / "data" / "features" / "a.csv").write_text("1,2\n")
    cli = Cli(tmp_path / "home", tmp_path, kaos_server.url)
    cli.ok("workspace", "create", "-n", "lean")
    cli.ok("train", "deploy", "-d", "data")
    out, modules = _imports(cli, tmp_path, "train", "deploy", "-d", "data")
    assert "Setting data bundle: /features" in out
    loaded = {name.split(".")[0] for name in modules}
    assert {"kaos", "typer", "http"} <= loaded  # the deploy's imports are seen
    unused = {"pyfastcdc", "fastapi", "uvicorn", "pydantic", "rich", "httpx", "boto3", "numpy"}
    assert loaded & unused == set()


def test_train_list_loads_no_deploy_parts(kaos_server, tmp_path):
    """`train list` is start-up plus one request: it loads the HTTP client, not the scan, the
    store or the parsing of deploy inputs."""
    cli = Cli(tmp_path / "home", tmp_path, kaos_server.url)
    cli.ok("workspace", "create", "-n", "lean")
    out, loaded = _imports(cli, tmp_path, "train", "list")
    assert "No jobs yet in workspace lean" in out
    assert "kaos.client.http" in loaded  # the command's imports are seen
    deploy_only = {"kaos.client.inputs", "kaos.client.bundles", "kaos.store.scan"}
    assert loaded & deploy_only == set()


def _imports(cli: Cli, cwd: Path, *argv: str) -> tuple[str, set[str]]:
    """Run `kaos ARGV` with -X importtime: its output and the modules it imported."""
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "kaos", *argv],
        cwd=cwd,
        env=cli.env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    loaded = {
        line.rsplit("|", 1)[1].strip()
        for line in proc.stderr.splitlines()
        if line.startswith("import time:") and "|" in line
    }
    return proc.stdout, loaded


def test_docker_executor_without_an_engine_is_one_clear_error(tmp_path):
    env = {**os.environ, "KAOS_HOME": str(tmp_path), "DOCKER_HOST": "unix:///nonexistent.sock"}
    result = subprocess.run(
        [sys.executable, "-m", "kaos", "server", "start", "--executor", "docker", "--port", "9"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert result.returncode != 0
    assert result.stderr.strip().splitlines() == [
        "Error: cannot reach the Docker engine (DockerException) "
        "(start dockerd (or set DOCKER_HOST), or use --executor local)"
    ]


@pytest.mark.parametrize(
    ("catalog", "error"),
    [
        (
            "mysql://kaos@127.0.0.1/kaos",
            "Error: unknown catalog mysql://... "
            "(use a file path (SQLite) or postgresql://USER:PASSWORD@HOST:PORT/DB)",
        ),
        (
            "postgresql://kaos:secret@127.0.0.1:{port}/kaos",
            "Error: cannot reach the PostgreSQL catalog: connection failed: connection to server"
            ' at "127.0.0.1", port {port} failed: Connection refused '
            "(check KAOS_CATALOG (postgresql://USER:PASSWORD@HOST:PORT/DB))",
        ),
        (
            "{home}/folder",
            "Error: cannot open the SQLite catalog {home}/folder: unable to open database file "
            "(pass --catalog (KAOS_CATALOG) a file kaos may create and write, "
            "or postgresql://USER:PASSWORD@HOST:PORT/DB)",
        ),
        (
            "{home}/notes.txt",
            "Error: cannot open the SQLite catalog {home}/notes.txt: file is not a database "
            "(pass --catalog (KAOS_CATALOG) a file kaos may create and write, "
            "or postgresql://USER:PASSWORD@HOST:PORT/DB)",
        ),
    ],
)
def test_a_catalog_that_cannot_be_opened_is_one_clear_error(tmp_path, catalog, error):
    port = free_port()  # nothing listens there
    (tmp_path / "folder").mkdir()
    (tmp_path / "notes.txt").write_text("not a database\n" * 100)
    shown = {"port": port, "home": tmp_path}
    env = {**os.environ, "KAOS_HOME": str(tmp_path), "KAOS_CATALOG": catalog.format(**shown)}
    result = subprocess.run(
        [sys.executable, "-m", "kaos", "server", "start", "--port", str(free_port())],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert result.returncode != 0
    assert result.stderr.strip().splitlines() == [error.format(**shown)]
    assert "secret" not in result.stdout + result.stderr
    assert not (tmp_path / "catalog.db").exists()
    assert (tmp_path / "notes.txt").read_text() == "not a database\n" * 100


def test_a_background_server_failing_at_start_up_tells_why(tmp_path):
    """--background waits for the server: the reason it stopped is the one line, not a log."""
    env = {**os.environ, "KAOS_HOME": str(tmp_path), "KAOS_CATALOG": "mysql://kaos@127.0.0.1/db"}
    port = str(free_port())
    result = subprocess.run(
        [sys.executable, "-m", "kaos", "server", "start", "--background", "--port", port],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert result.returncode != 0
    assert result.stderr.strip().splitlines() == [
        "Error: the local kaos server stopped at start-up: unknown catalog mysql://... "
        "(use a file path (SQLite) or postgresql://USER:PASSWORD@HOST:PORT/DB) "
        f"(full log: {tmp_path / 'server.log'})"
    ]


def test_a_server_whose_postgresql_goes_away_answers_in_one_line_and_recovers(tmp_path):
    """The catalog's PostgreSQL stopping is a 503 naming it (not a 500), and the server carries
    on once it is back."""
    from tests.cli import Cli
    from tests.conftest import KaosServer
    from tests.postgres import PostgresServer, postgres_bin

    bin_dir = postgres_bin()
    if bin_dir is None:
        pytest.skip("PostgreSQL is not installed (Debian package postgresql: initdb, pg_ctl)")
    postgres = PostgresServer(bin_dir, free_port())
    (tmp_path / "home").mkdir()
    server = KaosServer(tmp_path / "home", env={"KAOS_CATALOG": postgres.new_database()})
    try:
        cli = Cli(tmp_path / "client", tmp_path)
        cli.ok("init", "-e", server.url)
        cli.ok("workspace", "create", "-n", "kept")
        postgres.halt()
        down = cli.fails("workspace", "list")
        assert down.err.startswith("Error: the catalog's PostgreSQL failed: ")
        assert len(down.err.strip().splitlines()) == 1
        assert "(check that it runs and KAOS_CATALOG names it" in down.err
        postgres.start()
        assert [w["name"] for w in cli.ok("workspace", "list", "--json").json()] == ["kept"]
    finally:
        server.stop()
        postgres.stop()


def test_a_background_server_listens_on_the_host_asked_for(tmp_path):
    """A team's server started with --background --host 0.0.0.0 must answer beyond
    127.0.0.1 (127.0.0.2 is reached only by a server bound to every address)."""
    import httpx

    env = {**os.environ, "KAOS_HOME": str(tmp_path)}
    env.pop("KAOS_TOKEN", None)
    port = free_port()
    start = [sys.executable, "-m", "kaos", "server", "start", "--background", "--port", str(port)]
    token = "alice:" + "t" * 32
    try:
        result = subprocess.run(
            [*start, "--host", "0.0.0.0", "--token", token, "--no-sandbox"],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
        )
        assert result.returncode == 0, result.stderr
        assert f"kaos server running at http://0.0.0.0:{port}" in result.stdout
        assert httpx.get(f"http://127.0.0.2:{port}/health", timeout=10).json()["auth"] is True
    finally:
        subprocess.run([sys.executable, "-m", "kaos", "server", "stop"], env=env, timeout=60)


def test_a_second_server_on_the_same_home_is_refused_and_the_first_stays_stoppable(tmp_path):
    """A second `kaos server start` from the same KAOS_HOME used to overwrite the pid file and,
    failing at start-up, delete it: `kaos server stop` then said no server was running while
    the first one still was."""
    env = {**os.environ, "KAOS_HOME": str(tmp_path)}
    env.pop("KAOS_TOKEN", None)
    port = str(free_port())
    kaos = [sys.executable, "-m", "kaos"]

    def run(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*kaos, *argv], capture_output=True, text=True, env=env, timeout=120)

    started = run("server", "start", "--background", "--port", port, "--no-sandbox")
    assert started.returncode == 0, started.stderr
    pid = int(started.stdout.rsplit("pid ", 1)[1].rstrip(")\n"))
    try:
        for extra in ([], ["--background"]):
            second = run("server", "start", "--port", str(free_port()), *extra)
            assert second.returncode != 0
            assert second.stderr.strip().splitlines() == [
                f"Error: a kaos server already runs from this KAOS_HOME (pid {pid}, "
                f"http://127.0.0.1:{port}) (stop it with 'kaos server stop', or give this "
                "server its own KAOS_HOME)"
            ]
    finally:
        stopped = run("server", "stop")
    assert stopped.returncode == 0, stopped.stderr
    assert stopped.stdout.strip() == f"kaos server stopped (pid {pid})"


def test_a_server_started_ignoring_sigint_keeps_ignoring_it_and_stops_on_sigterm(tmp_path):
    """A shell script's `kaos server start &` starts with SIGINT ignored, and a Ctrl-C meant for
    the script's foreground command reaches it too: uvicorn used to replace the ignore with
    its own handler, so that Ctrl-C stopped the server as well."""
    import signal
    import time

    import httpx

    env = {**os.environ, "KAOS_HOME": str(tmp_path)}
    env.pop("KAOS_TOKEN", None)
    port = free_port()
    start = [sys.executable, "-m", "kaos", "server", "start", "--port", str(port), "--no-sandbox"]
    server = subprocess.Popen(  # as a shell starts a background job: SIGINT ignored
        ["sh", "-c", 'trap "" INT; exec "$@"', "sh", *start], env=env, stdout=subprocess.DEVNULL
    )
    try:
        deadline = time.time() + 60
        while True:
            assert server.poll() is None and time.time() < deadline, "the server did not start"
            try:
                httpx.get(f"http://127.0.0.1:{port}/health", timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.1)
        server.send_signal(signal.SIGINT)
        time.sleep(1)
        assert server.poll() is None
        assert httpx.get(f"http://127.0.0.1:{port}/health", timeout=10).status_code == 200
        assert (tmp_path / "server.pid").exists()
        server.send_signal(signal.SIGTERM)  # what `kaos server stop` sends
        assert server.wait(timeout=30) == -signal.SIGTERM  # uvicorn's graceful stop re-raises it
        assert not (tmp_path / "server.pid").exists()  # it was left behind, naming a dead pid
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
