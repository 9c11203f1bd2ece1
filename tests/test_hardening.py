"""Hardening against what a train script may do, through real server processes and the CLI."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import httpx
import pytest

from tests.cli import Cli
from tests.conftest import KaosServer
from tests.fixtures.bundles import write_script_source
from tests.processes import sleepers, unique_nap


def tiny_data(root: Path) -> Path:
    (root / "features").mkdir(parents=True, exist_ok=True)
    (root / "features" / "x.csv").write_text(f"{uuid.uuid4().hex}\n")
    return root


def deploy_script(cli: Cli, root: Path, script: str) -> None:
    src = write_script_source(root / f"src-{uuid.uuid4().hex[:6]}", script)
    cli.ok("workspace", "create", "-n", f"h-{uuid.uuid4().hex[:6]}")
    cli.ok("train", "deploy", "-s", str(src), "-d", str(tiny_data(root / "data")), "--wait")


@pytest.fixture
def cli(kaos_server, tmp_path) -> Cli:
    return Cli(tmp_path / "client-home", tmp_path, kaos_server.url)


def test_a_daemon_started_by_a_train_script_ends_with_its_job(cli, tmp_path):
    nap = unique_nap()  # names the daemon: inside the sandbox its pid is another
    deploy_script(
        cli,
        tmp_path,
        "#!/bin/sh\n"
        f"sleep {nap} >/dev/null 2>&1 &\n"
        "( while true; do echo tick; sleep 0.1; done ) &\n"
        'sleep 0.5; mkdir -p "$1/model" && echo ok > "$1/model/m"\n',
    )
    assert cli.ok("train", "list", "--json").json()["training"][0]["state"] == "JOB_SUCCESS"
    deadline = time.time() + 10
    while sleepers(nap) and time.time() < deadline:
        time.sleep(0.1)
    assert not sleepers(nap), "the daemon outlived its job"
    first = cli.ok("train", "logs", "-i", "0").out
    time.sleep(1)
    assert "tick" in first and cli.ok("train", "logs", "-i", "0").out == first


def test_what_a_train_script_leaves_next_to_its_folder_never_stops_the_server(tmp_path):
    home = tmp_path / "server-home"
    home.mkdir()
    server = KaosServer(home, ["--no-sandbox"])  # the sandbox would not let it (test_sandbox*)
    try:
        cli = Cli(tmp_path / "client-home", tmp_path, server.url)
        deploy_script(
            cli,
            tmp_path,
            "#!/bin/sh\n"
            'echo escaped > "$1/../../escaped.txt"\n'
            'ln -s /nonexistent "$1/../../dangling"\n'
            'ln -s "$1/../../escaped.txt" "$1/../../to-a-file"\n'
            'mkdir -p "$1/model" && echo ok > "$1/model/m"\n',
        )
        assert (home / "jobs" / "escaped.txt").exists()
    finally:
        server.stop()
    server = KaosServer(home)  # raised NotADirectoryError at start-up before
    try:
        Cli(tmp_path / "client-home", tmp_path, server.url).ok("workspace", "list")
        assert not list((home / "jobs").iterdir())
    finally:
        server.stop()


def vm_peak_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM")


def test_naming_a_large_file_as_a_tree_is_refused_without_reading_it(cli, kaos_server, tmp_path):
    big = tmp_path / "data" / "features" / "big.bin"
    big.parent.mkdir(parents=True)
    with open(big, "wb") as f:  # sparse zeros: one stored chunk, 300 MiB when joined
        f.truncate(300 << 20)
    name = f"big-{uuid.uuid4().hex[:6]}"
    cli.ok("workspace", "create", "-n", name)
    data = cli.ok("train", "deploy", "-d", str(tmp_path / "data"), "--json").json()
    (digest,) = [
        e.split()[0]
        for e in httpx.get(f"{kaos_server.url}/trees/{data['inputs']['data']}")
        .content.decode()
        .splitlines()[1:]
    ]
    before = vm_peak_kib(kaos_server.proc.pid)
    answer = httpx.get(f"{kaos_server.url}/trees/{digest}", timeout=60)
    deploy = httpx.post(f"{kaos_server.url}/workspaces/{name}/deploy", json={"data": digest})
    assert answer.status_code == 400 and "is not a tree" in answer.json()["detail"]
    assert deploy.status_code == 400 and "is not a tree" in deploy.json()["detail"]
    grown_mib = (vm_peak_kib(kaos_server.proc.pid) - before) / 1024
    assert grown_mib < 100, f"the server grew by {grown_mib:.0f} MiB reading a file as a tree"


def test_a_log_offset_at_the_64_bit_limit_reads_nothing(cli, kaos_server, tmp_path):
    deploy_script(cli, tmp_path, '#!/bin/sh\nmkdir -p "$1/model" && echo ok > "$1/model/m"\n')
    job = cli.ok("train", "list", "--json").json()["training"][0]["id"]
    answer = httpx.get(f"{kaos_server.url}/jobs/{job}/logs", params={"offset": 2**63 - 1})
    assert answer.status_code == 200 and answer.json()["text"] == ""


LONG_LOG = r"""#!/bin/sh
i=0
pad=".........................................................................."
while [ $i -lt 30000 ]; do echo "line $i of a long log $pad"; i=$((i+1)); done
head -c 10485760 /dev/zero | tr '\0' a
echo
printf 'evil \033]0;pwned\007\033[2Jtitle\n'
echo THE END
mkdir -p "$1/model" && echo ok > "$1/model/m"
"""


def test_train_logs_prints_the_whole_log_and_strips_control_sequences_on_a_terminal(cli, tmp_path):
    deploy_script(cli, tmp_path, LONG_LOG)
    logs = cli.ok("train", "logs", "-i", "0").out
    assert "line 0 of" in logs and "line 29999 of" in logs and "\nTHE END\n" in logs
    assert logs.count("a" * 1000) >= 10_000  # the 10 MB line, all of it (in bounded pieces)
    assert "\x1b]0;pwned" in logs  # to a pipe: the bytes as written
    on_tty = run_on_tty(cli, "train", "logs", "-i", "0")
    assert "THE END" in on_tty and "evil title" in on_tty and "\x1b" not in on_tty


def run_on_tty(cli: Cli, *args: str) -> str:
    """The CLI's output with its stdout on a pseudo-terminal, as a user's shell has it."""
    import os
    import pty
    import subprocess
    import sys

    leader, follower = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "kaos", *args],
        cwd=cli.cwd,
        env=cli.env,
        stdout=follower,
        stderr=subprocess.DEVNULL,
    )
    os.close(follower)
    out = bytearray()
    while True:
        try:
            data = os.read(leader, 1 << 16)
        except OSError:  # EIO: the terminal closed
            break
        if not data:
            break
        out += data
    os.close(leader)
    assert proc.wait(timeout=60) == 0
    return out.decode("utf-8", errors="replace").replace("\r\n", "\n")


GRID_SCRIPT = r"""#!/bin/sh
x=$(tr -dc 0-9 < "$KAOS_HYPERPARAMS")
if [ "$x" = 1 ]; then echo "x=1 is broken" >&2; exit 3; fi
mkdir -p "$1/model" "$1/metrics" && echo ok > "$1/model/m"
echo "{\"acc\": $x}" > "$1/metrics/metrics.json"
"""


def test_train_info_names_a_failed_model_by_its_row_and_its_grid_index(cli, tmp_path):
    (tmp_path / "grid.json").write_text('{"x": [1, 2, 3]}')
    src = write_script_source(tmp_path / "src", GRID_SCRIPT)
    cli.ok("workspace", "create", "-n", f"g-{uuid.uuid4().hex[:6]}")
    cli.run("train", "deploy", "-s", str(src), "-d", str(tiny_data(tmp_path / "d")), "-h",
            "grid.json", "--wait")  # fmt: skip
    info = cli.ok("train", "info", "-i", "0", "-s", "acc").out
    # ranked by acc: x=3 (ind 0), x=2 (ind 1), then the failed x=1 (ind 2, model 0 of the grid)
    assert "ind 2 (model 0 of the grid) failed" in info and "exited with code 3" in info


def test_init_warns_when_a_token_would_travel_in_clear_text(tmp_path):
    cli = Cli(tmp_path / "home", tmp_path)
    result = cli.fails("init", "-e", "http://kaos.invalid:8585", "-t", "a" * 40)
    assert "Warning: the token is sent in clear text to http://kaos.invalid:8585" in result.err
    local = cli.fails("init", "-e", "http://127.0.0.1:9", "-t", "a" * 40)
    assert "Warning" not in local.err


def test_the_server_refuses_a_non_loopback_address_without_tokens(tmp_path):
    import subprocess
    import sys

    from tests.conftest import free_port

    cmd = [sys.executable, "-m", "kaos", "server", "start", "--host", "0.0.0.0"]
    proc = subprocess.run(
        [*cmd, "--port", str(free_port())], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "refusing to listen on 0.0.0.0 without tokens" in proc.stderr
    assert "--insecure" in proc.stderr


@pytest.fixture
def own_server(tmp_path):
    """A server of this test's own, for tests that damage or collect its store."""
    home = tmp_path / "own-home"
    home.mkdir()
    server = KaosServer(home, env={"KAOS_CACHE_MAX": str(1 << 20)})
    yield server
    server.stop()


def random_data(root: Path, sizes: dict[str, int]) -> Path:
    import os

    for name, size in sizes.items():
        (root / "features" / name).parent.mkdir(parents=True, exist_ok=True)
        (root / "features" / name).write_bytes(os.urandom(size))
    return root


def test_verify_finds_a_deleted_pack_and_after_repair_a_redeploy_heals_it(own_server, tmp_path):
    cli = Cli(tmp_path / "client-home", tmp_path, own_server.url)
    cli.ok("workspace", "create", "-n", "heal")
    data = random_data(tmp_path / "data", {"a.bin": 50_000, "b.bin": 60_000})
    cli.ok("train", "deploy", "-d", str(data))
    assert cli.ok("store", "verify").out.strip().endswith("Store is healthy")
    for pack in (own_server.home / "store" / "packs").rglob("*"):
        if pack.is_file():
            pack.unlink()  # the packs go, their indexes stay
    damaged = cli.run("store", "verify")
    assert damaged.code == 1 and "missing pack:" in damaged.out
    repaired = cli.run("store", "verify", "--repair")
    assert repaired.code == 1 and "Repaired" in repaired.out
    cli.ok("train", "deploy", "-d", str(data), "--force")  # uploads what the store lost
    assert cli.ok("store", "verify").out.strip().endswith("Store is healthy")
    assert fetched(own_server, data) == {"a.bin", "b.bin"}


def fetched(server: KaosServer, data: Path) -> set[str]:
    """The files of a data folder the server serves back intact, by name."""
    from kaos.store.hashing import hash_bytes

    by_digest = {hash_bytes(p.read_bytes()): p for p in (data / "features").iterdir()}
    answer = httpx.post(server.url + "/objects/fetch", json={"digests": list(by_digest)})
    assert answer.is_success, answer.text
    return {p.name for p in by_digest.values() if p.read_bytes() in answer.content}


def test_gc_removes_unreachable_content_and_stale_temporary_files(own_server, tmp_path):
    import os

    from kaos.store.hashing import hash_bytes
    from kaos.store.pack import KIND_BLOB, PackBuilder

    cli = Cli(tmp_path / "client-home", tmp_path, own_server.url)
    cli.ok("workspace", "create", "-n", "gc")
    data = random_data(tmp_path / "data", {"kept.bin": 40_000})
    cli.ok("train", "deploy", "-d", str(data))
    orphan = os.urandom(30_000)  # uploaded, never part of any bundle
    builder = PackBuilder()
    builder.add(hash_bytes(orphan), KIND_BLOB, orphan)
    httpx.post(own_server.url + "/objects/packs", content=builder.seal().encode()[1])
    packs = own_server.home / "store" / "packs"
    stale, fresh = packs / ".tmp-crashed", packs / ".tmp-in-flight"
    stale.write_bytes(b"x" * 1000)
    fresh.write_bytes(b"y" * 1000)
    hours_ago = time.time() - 7200
    for path in [stale, *packs.rglob("*")]:
        if path != fresh:
            os.utime(path, (hours_ago, hours_ago))

    dry = cli.ok("store", "gc", "--dry-run", "--json").json()
    assert dry["dry_run"] and dry["objects_removed"] >= 1 and dry["temp_files_removed"] == 1
    assert stale.exists() and hash_bytes(orphan) not in missing(own_server, [])
    report = cli.ok("store", "gc", "--json").json()
    assert report["objects_removed"] == dry["objects_removed"] and report["temp_files_removed"]
    assert not stale.exists() and fresh.exists()
    assert missing(own_server, [hash_bytes(orphan)]) == [hash_bytes(orphan)]
    assert cli.ok("store", "verify").out.strip().endswith("Store is healthy")
    assert fetched(own_server, data) == {"kept.bin"}


def missing(server: KaosServer, digests: list[str]) -> list[str]:
    return httpx.post(server.url + "/objects/missing", json={"digests": digests}).json()["missing"]


def test_the_file_cache_stays_within_kaos_cache_max(own_server, tmp_path):
    cli = Cli(tmp_path / "client-home", tmp_path, own_server.url)
    cli.ok("workspace", "create", "-n", "cache")
    src = write_script_source(
        tmp_path / "src", '#!/bin/sh\nmkdir -p "$1/model" && echo ok > "$1/model/m"\n'
    )
    data = random_data(tmp_path / "data", {"big.bin": 3 << 20, "small.bin": 1000})
    cli.ok("train", "deploy", "-s", str(src), "-d", str(data), "--wait")
    cached = [p for p in (own_server.home / "cache" / "files").rglob("*") if p.is_file()]
    assert sum(p.stat().st_size for p in cached) <= 1 << 20  # the 3 MiB file was let go


def test_special_files_are_left_out_and_said_so_in_one_line(cli, tmp_path):
    import os

    data = random_data(tmp_path / "data", {"x.bin": 100})
    os.mkfifo(data / "features" / "a-pipe")
    os.mkfifo(data / "features" / "b-pipe")
    cli.ok("workspace", "create", "-n", f"fifo-{uuid.uuid4().hex[:6]}")
    result = cli.ok("train", "deploy", "-d", str(data))
    warnings = [line for line in result.err.splitlines() if line.startswith("Warning")]
    assert warnings == [
        "Warning: 2 special files (fifo, socket or device) left out of the data bundle, "
        "first: features/a-pipe"
    ]


@pytest.fixture
def tmpfs(tmp_path):
    """Mount small RAM disks (a real full disk, without filling the machine's)."""
    import subprocess

    mounted: list[Path] = []

    def mount(name: str, size: str) -> Path:
        path = tmp_path / name
        path.mkdir()
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
            capture_output=True,
        )
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here (needs root): {done.stderr.decode().strip()}")
        mounted.append(path)
        return path

    yield mount
    for path in reversed(mounted):
        subprocess.run(["umount", "-l", str(path)], check=False)


def fill(folder: Path) -> None:
    """Fill a file system to the last byte."""
    with open(folder / "filler", "wb", buffering=0) as f:
        for size in (1 << 16, 512, 1):
            try:
                while True:
                    f.write(b"\0" * size)
            except OSError:
                continue


def test_a_full_disk_answers_507_with_the_free_bytes_and_keeps_the_store_whole(tmpfs, tmp_path):
    home = tmpfs("server-home", "24m")
    server = KaosServer(home)
    try:
        cli = Cli(tmp_path / "client-home", tmp_path, server.url)
        cli.ok("workspace", "create", "-n", "full")
        small = random_data(tmp_path / "small", {"a.bin": 10_000})
        cli.ok("train", "deploy", "-d", str(small))
        big = random_data(tmp_path / "big", {"b.bin": 40 << 20})
        failed = cli.fails("train", "deploy", "-d", str(big))
        lines = failed.err.strip().splitlines()
        assert len(lines) == 1 and "the store's disk is full (" in lines[0], failed.err
        assert "bytes free)" in lines[0]
        assert cli.ok("store", "verify").out.strip().endswith("Store is healthy")
    finally:
        server.stop()


def test_the_cli_runs_without_its_stat_cache_when_its_disk_is_full(tmpfs, kaos_server, tmp_path):
    home = tmpfs("client-home", "2m")
    cli = Cli(home, tmp_path, kaos_server.url)  # its config is written while there is room
    cli.ok("workspace", "create", "-n", f"nocache-{uuid.uuid4().hex[:6]}")
    fill(home)
    data = random_data(tmp_path / "data", {"a.bin": 5000})
    result = cli.ok("train", "deploy", "-d", str(data))
    assert "Traceback" not in result.err and "Setting data bundle" in result.out


def test_an_object_found_corrupt_on_read_is_uploaded_again_by_the_next_deploy(own_server, tmp_path):
    cli = Cli(tmp_path / "client-home", tmp_path, own_server.url)
    cli.ok("workspace", "create", "-n", "flip")
    data = random_data(tmp_path / "data", {"a.bin": 200_000})
    cli.ok("train", "deploy", "-d", str(data))
    (pack,) = [p for p in (own_server.home / "store" / "packs").rglob("*") if p.is_file()]
    raw = bytearray(pack.read_bytes())
    middle = raw.find((data / "features" / "a.bin").read_bytes()[100_000:100_064])
    raw[middle] ^= 0xFF  # one flipped byte inside the stored file
    pack.write_bytes(bytes(raw))
    assert fetched(own_server, data) == set()  # refused, never served
    cli.ok("train", "deploy", "-d", str(data), "--force")
    assert fetched(own_server, data) == {"a.bin"}
