"""The sandbox: the pure argv builder (table-like cases), the host layout, and real bwrap runs
that show what a script inside can and cannot do."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kaos.executors.host import SandboxStatus, host_layout, probe, python_folders
from kaos.executors.sandbox import HostLayout, Sandbox, bwrap_argv
from kaos.executors.view import PFS_DATA, PFS_HYPER, Mount, job_mounts
from kaos.executors.workdir import TrainDirs
from tests.processes import sleepers, unique_nap

LAYOUT = HostLayout(("/usr", "/etc"), (("/bin", "usr/bin"), ("/lib", "usr/lib")))


def _pairs(argv: list[str], flag: str) -> list[tuple[str, str]]:
    return [(argv[i + 1], argv[i + 2]) for i, a in enumerate(argv) if a == flag]


def _dirs(tmp: Path, grid: bool = True) -> TrainDirs:
    return TrainDirs(
        root=tmp,
        source=tmp / "source",
        data=tmp / "data",
        output=tmp / "output",
        hyperparams=tmp / "hyperparams.json" if grid else None,
        bundle_name="tiny",
    )


# -- the argv, pure ------------------------------------------------------------------------------


def test_argv_shows_system_read_only_and_only_the_output_writable(tmp_path: Path) -> None:
    argv = bwrap_argv(
        Sandbox(LAYOUT, job_mounts(_dirs(tmp_path)), "/kaos/source/tiny/model"),
        ["./train", "/kaos/output"],
    )
    assert ("/usr", "/usr") in _pairs(argv, "--ro-bind")
    assert ("/etc", "/etc") in _pairs(argv, "--ro-bind")
    assert _pairs(argv, "--symlink") == [("usr/bin", "/bin"), ("usr/lib", "/lib")]
    assert _pairs(argv, "--bind") == [(str(tmp_path / "output"), "/kaos/output")]
    ro = dict((inside, host) for host, inside in _pairs(argv, "--ro-bind"))
    assert ro["/kaos/source"] == str(tmp_path / "source")
    assert ro["/kaos/data"] == ro[str(PFS_DATA)] == str(tmp_path / "data")
    assert ro["/kaos/hyperparams.json"] == ro[str(PFS_HYPER)] == str(tmp_path / "hyperparams.json")
    assert argv[argv.index("--chdir") + 1] == "/kaos/source/tiny/model"
    assert argv[argv.index("--") + 1 :] == ["./train", "/kaos/output"]


def test_argv_isolates_processes_and_network_and_drops_capabilities(tmp_path: Path) -> None:
    argv = bwrap_argv(Sandbox(LAYOUT, job_mounts(_dirs(tmp_path)), "/"), ["true"])
    head = argv[: argv.index("--")]
    for flag in (
        "--die-with-parent",
        "--unshare-pid",
        "--as-pid-1",
        "--unshare-net",
        "--unshare-ipc",
    ):
        assert flag in head
    assert head[head.index("--cap-drop") + 1] == "ALL"
    assert (
        head[head.index("--remount-ro") + 1],
        head[head.index("--remount-ro") + 2],
    ) == ("/", "--chdir")
    assert tuple(head[i + 1] for i, a in enumerate(head) if a == "--tmpfs") == ("/tmp",)


def test_network_only_when_the_deploy_asks() -> None:
    assert "--unshare-net" not in bwrap_argv(Sandbox(LAYOUT, (), "/", network=True), ["true"])


def test_no_grid_means_no_hyperparameter_file(tmp_path: Path) -> None:
    argv = bwrap_argv(Sandbox(LAYOUT, job_mounts(_dirs(tmp_path, grid=False)), "/"), ["true"])
    insides = [inside for _, inside in _pairs(argv, "--ro-bind")]
    assert "/kaos/hyperparams.json" not in insides and str(PFS_HYPER) not in insides


@pytest.mark.parametrize(
    "mounts, message",
    [
        ((Mount(Path("/x"), Path("relative")),), "absolute"),
        ((Mount(Path("/x"), Path("/")),), "absolute path below /"),
        ((Mount(Path("/x"), Path("/a/../etc")),), "absolute path below /"),
        ((Mount(Path("/x"), Path("/usr/lib/x")),), "shadow"),
        ((Mount(Path("/x"), Path("/tmp/y")),), "shadow"),
        ((Mount(Path("/x"), Path("/a")), Mount(Path("/y"), Path("/a"))), "two mounts"),
    ],
)
def test_a_view_that_would_show_the_wrong_things_is_refused(mounts, message) -> None:
    with pytest.raises(ValueError, match=message):
        bwrap_argv(Sandbox(LAYOUT, mounts, "/"), ["true"])


def test_extra_folders_inside_system_ones_are_not_bound_twice() -> None:
    layout = LAYOUT.with_folders(["/usr/local", "/opt/python", "/opt/python", "/etc"])
    assert layout.folders == ("/usr", "/etc", "/opt/python")


# -- the host ------------------------------------------------------------------------------------


def test_layout_recreates_top_links_and_binds_real_folders(tmp_path: Path) -> None:
    for name in ("usr/bin", "usr/lib", "etc", "lib64"):
        (tmp_path / name).mkdir(parents=True)
    (tmp_path / "bin").symlink_to("usr/bin")
    (tmp_path / "lib").symlink_to("usr/lib")
    (tmp_path / "etc" / "shadow").write_text("root:$6$hash:1::::::\n")
    layout = host_layout(tmp_path)
    assert layout.links == (("/bin", "usr/bin"), ("/lib", "usr/lib"))
    assert layout.folders == ("/usr", "/etc", "/lib64")
    assert layout.hidden == ("/etc/shadow",)  # shown empty inside; absent ones are not named
    argv = bwrap_argv(Sandbox(layout.with_folders(["/opt/py"]), (), "/"), ["true"])
    assert "/dev/null /etc/shadow" in " ".join(argv)


def test_python_folders_follow_the_chain_from_environment_to_base(tmp_path: Path) -> None:
    base = tmp_path / "pythons" / "3.11" / "bin"
    base.mkdir(parents=True)
    (base / "python3.11").write_text("")
    (base / "python3").symlink_to("python3.11")
    env = tmp_path / "envs" / "abc" / "bin"
    env.mkdir(parents=True)
    (env / "python3").symlink_to(base / "python3")
    (env / "python").symlink_to("python3")
    assert python_folders(env / "python") == [
        str(tmp_path / "envs" / "abc"),
        str(tmp_path / "pythons" / "3.11"),
    ]


def test_status_says_why_trains_are_refused() -> None:
    refused = SandboxStatus(True, "bwrap is not installed")
    assert not refused.usable and "--no-sandbox" in refused.message()
    assert "sandbox off" in SandboxStatus(False).message() and not SandboxStatus(False).usable
    assert SandboxStatus(True).usable


# -- real bwrap ----------------------------------------------------------------------------------

needs_bwrap = pytest.mark.skipif(probe() is not None, reason=f"bubblewrap cannot run: {probe()}")

SCRIPT = """
import os, socket, subprocess, sys
home, other, port, nap = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
def tried(what, fn):
    try:
        fn()
        print(what, "ok")
    except OSError as exc:
        print(what, "failed", type(exc).__name__)
tried("write-home", lambda: open(os.path.join(home, "escaped.txt"), "w").write("x"))
tried("read-other", lambda: open(other).read())
tried("write-data", lambda: open("/pfs/data/features/new.csv", "w").write("x"))
tried("write-root", lambda: open("/escaped.txt", "w").write("x"))
tried("socket", lambda: socket.create_connection(("127.0.0.1", port), timeout=2).close())
tried("write-output", lambda: open("/kaos/output/ok.txt", "w").write("x"))
tried("write-tmp", lambda: open("/tmp/ok.txt", "w").write("x"))
tried("read-shadow", lambda: open("/etc/shadow").read() and None)
print("pfs-data", sorted(os.listdir("/pfs/data")))
print("hyper", open("/pfs/hyper/params.json").read())
daemon = subprocess.Popen(["sleep", nap], start_new_session=True)
open("/kaos/output/daemon.pid", "w").write(str(daemon.pid))
print("pid", os.getpid())
"""


@needs_bwrap
def test_a_script_in_the_sandbox_sees_only_its_view(tmp_path: Path) -> None:
    home = tmp_path / "kaos-home"
    other = tmp_path / "other-job" / "secret.txt"
    other.parent.mkdir(parents=True)
    other.write_text("secret")
    home.mkdir()
    dirs = _dirs(tmp_path / "job")
    (dirs.source / "tiny" / "model").mkdir(parents=True)
    (dirs.data / "features").mkdir(parents=True)
    dirs.output.mkdir()
    assert dirs.hyperparams is not None
    dirs.hyperparams.write_text('{"alpha": 1}')
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    (home / "envs" / "abc").mkdir(parents=True)  # an environment kept in KAOS_HOME is shown
    layout = host_layout().with_folders(
        [*python_folders(Path(sys.executable)), str(home / "envs" / "abc")]
    )
    sandbox = Sandbox(layout, job_mounts(dirs), "/kaos/source/tiny/model")
    nap = unique_nap()  # names this test's daemon
    argv = bwrap_argv(
        sandbox, [sys.executable, "-c", SCRIPT, str(home), str(other), str(port), nap]
    )
    started = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, start_new_session=True)
    out, _ = started.communicate(timeout=60)
    listener.close()
    assert started.returncode == 0, out
    lines = set(out.splitlines())
    for denied in ("write-home", "read-other", "write-data", "write-root", "socket"):
        assert f"{denied} ok" not in lines, out
    assert {"write-output ok", "write-tmp ok", "pfs-data ['features']"} <= lines, out
    assert 'hyper {"alpha": 1}' in lines
    assert "read-shadow ok" not in lines, out  # the host's password hashes are not readable
    assert "pid 2" in lines or "pid 1" in lines  # its own PID namespace
    assert not (home / "escaped.txt").exists() and [p.name for p in home.iterdir()] == ["envs"]
    assert (dirs.output / "ok.txt").read_text() == "x"
    # the setsid daemon died with the sandbox: its `sleep` is nowhere on the host
    deadline = time.time() + 5
    while time.time() < deadline and sleepers(nap):
        time.sleep(0.1)
    assert not sleepers(nap)


def test_an_environment_below_tmp_is_shown_in_a_read_only_shelter() -> None:
    env = "/tmp/kaos-ray-node/envs/abc"
    argv = bwrap_argv(Sandbox(LAYOUT.with_folders([env]), (), "/"), ["true"])
    steps = [
        (a, argv[i + 1]) for i, a in enumerate(argv) if a.startswith("--") and i + 1 < len(argv)
    ]
    order = [
        ("--tmpfs", "/tmp"),
        ("--tmpfs", "/tmp/kaos-ray-node"),
        ("--ro-bind", env),
        ("--remount-ro", "/tmp/kaos-ray-node"),
    ]
    assert [steps.index(step) for step in order] == sorted(steps.index(step) for step in order)


@pytest.mark.parametrize("folder", ["/tmp", "/proc", "/", "usr", "/usr/../home"])
def test_system_folders_never_cover_private_ones_or_everything(folder: str) -> None:
    with pytest.raises(ValueError, match="must be absolute"):
        bwrap_argv(Sandbox(HostLayout((folder,)), (), "/"), ["true"])
