"""End-to-end benchmark: the commands users type, timed as subprocesses against a real server.

    python benchmarks/e2e_bench.py [--files 100000] [--runs 5] [--vs-dvc] [--scale]
                                   [--workdir DIR]

Every figure is the median over `--runs` runs of a real `kaos` process (the installed entry
point) talking to a real `kaos server start` process on 127.0.0.1, on the store bench's files
(about 5.5 KB each, 100 folders, mtimes in the past as in real use):

- `e2e_first_deploy_s`: `kaos train deploy -d DATA` to a fresh server from a fresh KAOS_HOME
  (every file read, hashed, packed, uploaded, verified and stored).
- `e2e_noop_deploy_s`: the same command again, nothing changed (once every deploy's writes
  are on disk: the kernel's write-back of ~600 MB, left to run during the noop, doubled the
  noop's wall time on this machine's disk). The unchanged commands (the bare walk below, this
  and `dvc status`) are timed in rounds, one of each per round, so a machine that slows down
  for a minute (this one does, by up to 30%) slows all three alike.
- `e2e_push_s`: the same command to a fresh server from a KAOS_HOME that has hashed the files
  before (the upload alone).
- `bare_walk_s`: a minimal Python process doing `scandir` + `stat` over the folder (the floor
  of any "has anything changed?"); `read_hash_floor_s`: one that also reads and xxh3-hashes
  every file, page cache warm (the floor of a first deploy). The files stay in the page cache
  while a size is timed (`page_cache_held`): helper processes map them, as this VM takes back
  page cache that no process maps and none touched for a minute.
- `cli_help_s`, `train_list_s`: start-up of `kaos --help` and `kaos train list`.
- `peak_rss_mb_cli`, `peak_rss_mb_server`: the largest resident set of any CLI process and of
  the server (the kernel's high-water marks).

kaos' modules are compiled to bytecode first, as `pip install` does (an editable install
run with PYTHONDONTWRITEBYTECODE would compile them from source on every command, about 40 ms).

Every time is also given as CPU time (`*_cpu_s`: user + system seconds of the command, plus the
server's while it ran), with the ratios of those (`*_cpu`): on a shared, loaded machine the
clock measures the queue for the cores as much as the work.

Ratios are kaos over the other, measured in the same run (machine noise cancels):
`noop_vs_walk` (goal <= 1.5), `first_vs_floor` (goal <= 3). With `--vs-dvc` DVC is installed
into its own venv (made once under the work folder, with pip as configured on this machine) and
run on a copy of the same files: `dvc_add_s`, `dvc_status_s`, `dvc_help_s`, and
`first_vs_dvc`, `noop_vs_dvc` (goal <= 0.1: ten times faster), `help_vs_dvc` (goal <= 1).
`--scale` runs 10k, 100k and 1M files (one run each at 1M) and prints `noop_growth`,
`first_growth` and `push_growth`: 1M over 100k (goal <= 11, linear), beside `walk_growth` and
`floor_growth`, the machine's own (reading a million small files can cost more than ten times
reading 100,000 here). Every timed figure has a `*_disk_read_mb` too: what the machine's disks
gave meanwhile; a command whose files had left the page cache shows it there.
"""

from __future__ import annotations

import argparse
import compileall
import contextlib
import functools
import importlib.util
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NamedTuple

sys.path.insert(0, str(Path(__file__).parent))
from _common import figure, free_port
from store_bench import make_small_files

KAOS = str(Path(sys.executable).parent / "kaos")
_OLD_MTIME = 1_700_000_000  # files older than kaos' racy window, as a user's data is

_WALK = """
import os, sys
def walk(path):
    with os.scandir(path) as it:
        for entry in it:
            if entry.is_dir(follow_symlinks=False):
                walk(entry.path)
            else:
                entry.stat(follow_symlinks=False)
walk(sys.argv[1])
"""

_READ_HASH = """
import os, sys, xxhash
def walk(path):
    with os.scandir(path) as it:
        for entry in it:
            if entry.is_dir(follow_symlinks=False):
                walk(entry.path)
            else:
                entry.stat(follow_symlinks=False)
                with open(entry.path, "rb") as f:
                    xxhash.xxh3_128_hexdigest(f.read())
walk(sys.argv[1])
"""

_HOLD = """
import ctypes, mmap, os, sys, time
libc = ctypes.CDLL(None, use_errno=True)
libc.mmap.restype = ctypes.c_void_p
libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int,
                      ctypes.c_long]
failed = ctypes.c_void_p(-1).value
held = 0
for path in sys.stdin.buffer.read().split(b"\\0"):
    fd = os.open(path, os.O_RDONLY)
    size = os.fstat(fd).st_size
    flags = mmap.MAP_SHARED | mmap.MAP_POPULATE  # read in now; never unmapped until exit
    if size and libc.mmap(None, size, mmap.PROT_READ, flags, fd, 0) != failed:
        held += size
    os.close(fd)
print(held, flush=True)
time.sleep(1e9)
"""


class Timing(NamedTuple):
    wall: float  # seconds on the clock
    cpu: float  # user + system seconds of the command (and of the server while it ran)
    disk_mb: float  # read from the machine's block devices meanwhile, by any process


def medians(timings: list[Timing], name: str) -> dict[str, float]:
    """`name_s` and `name_cpu_s`: CPU time is what a shared machine's load disturbs least;
    `name_disk_read_mb` says whether the files came from the page cache, as the floor's do."""
    return {
        f"{name}_s": statistics.median(t.wall for t in timings),
        f"{name}_cpu_s": statistics.median(t.cpu for t in timings),
        f"{name}_disk_read_mb": statistics.median(t.disk_mb for t in timings),
    }


def disk_read_mb() -> float:
    """MB read from block devices (disks, and zram swap) since boot, by every process (Linux:
    /proc/diskstats counts 512-byte sectors; 0 where it cannot be read). A device built on
    others (LVM, md) is left out: its reads are counted on the disks beneath."""
    try:
        disks = {d for d in os.listdir("/sys/block") if not os.listdir(f"/sys/block/{d}/slaves")}
        rows = [line.split() for line in Path("/proc/diskstats").read_text().splitlines()]
    except OSError:
        return 0.0
    return sum(int(row[5]) for row in rows if len(row) > 5 and row[2] in disks) * 512 / 1e6


class Proc:
    """One command run to completion: wall and CPU time and the kernel's peak RSS for it."""

    def __init__(self, argv: list[str], env: dict[str, str], cwd: Path) -> None:
        with tempfile.TemporaryFile() as err:
            read_before = disk_read_mb()
            start = time.perf_counter()
            proc = subprocess.Popen(argv, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=err)
            _, status, usage = os.wait4(proc.pid, 0)
            self.seconds = time.perf_counter() - start
            self.disk_mb = disk_read_mb() - read_before
            self.cpu = usage.ru_utime + usage.ru_stime
            proc.returncode = os.waitstatus_to_exitcode(status)
            self.rss_mb = usage.ru_maxrss / 1024
            if proc.returncode != 0:
                err.seek(0)
                message = err.read().decode(errors="replace")
                raise SystemExit(f"{' '.join(argv)} failed:\n{message}")


def listens(pid: int, port: int) -> bool:
    """Whether process `pid` holds the socket listening on 127.0.0.1:`port` (Linux). A port
    from `free_port` can be taken by another process (tests and benches share this machine)
    before the server binds it; /health would then be answered by that other server."""
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return True  # no /proc: cannot tell
    sockets = set()
    for fd in fds:
        with contextlib.suppress(OSError):
            sockets.add(os.readlink(f"/proc/{pid}/fd/{fd}"))
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, state, inode = fields[1], fields[3], fields[9]
        if state == "0A" and int(local.rsplit(":", 1)[1], 16) == port:  # 0A: LISTEN
            return f"socket:[{inode}]" in sockets
    return False


class Server:
    """A real `kaos server start` on 127.0.0.1 with its own KAOS_HOME."""

    def __init__(self, home: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        shutil.rmtree(home, ignore_errors=True)  # a failed run's, its log's tail printed then
        home.mkdir(parents=True)
        self.log_path = home / "server.log"
        self.log = open(self.log_path, "wb")  # noqa: SIM115 (closed in stop)
        self.proc = subprocess.Popen(
            [KAOS, "server", "start", "--port", str(self.port)],
            env={**os.environ, "KAOS_HOME": str(home)},
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        try:
            self._wait_until_up()
        except BaseException:  # not left running when it fails to start or the bench stops
            self.stop()
            raise

    def _wait_until_up(self) -> None:
        deadline = time.time() + 60
        while True:
            try:
                urllib.request.urlopen(self.url + "/health", timeout=1)
                if listens(self.proc.pid, self.port):
                    return
                raise OSError("another process answers on the port")  # ours may yet fail to bind
            except OSError:
                if self.proc.poll() is not None or time.time() > deadline:
                    raise SystemExit(f"server did not start\n{self.log_tail()}") from None
                time.sleep(0.1)

    def cpu(self) -> float:
        """The server's user + system seconds so far."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def peak_rss_mb(self) -> float:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return 0.0

    def log_tail(self, lines: int = 80) -> str:
        """The end of the server's log (a failed command's traceback is there, not in the
        command's output, which says only "Internal Server Error")."""
        self.log.flush()
        tail = self.log_path.read_bytes().decode(errors="replace").splitlines()[-lines:]
        return f"server log ({self.log_path}, kept), last {len(tail)} lines:\n" + "\n".join(tail)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=60)
        self.log.close()


class Peaks:
    """The largest resident sets seen in one size's run: of any CLI command, of any server."""

    def __init__(self) -> None:
        self.cli_mb = 0.0
        self.server_mb = 0.0

    def server(self, server: Server) -> None:
        self.server_mb = max(self.server_mb, server.peak_rss_mb())


class Client:
    """The `kaos` command with its own KAOS_HOME, pointed at one server."""

    def __init__(self, home: Path, cwd: Path, peaks: Peaks) -> None:
        self.home = home
        self.cwd = cwd
        self.env = {**os.environ, "KAOS_HOME": str(home), "NO_COLOR": "1"}
        self.env.pop("KAOS_WORKSPACE", None)
        self.peaks = peaks

    def use(self, server: Server) -> None:
        self.server = server
        self.run("init", "-e", server.url)
        self.run("workspace", "create", "-n", "bench")

    def run(self, *argv: str) -> Timing:
        """Run `kaos ARGV`; its CPU time includes the server's during the command."""
        before = self.server.cpu()
        try:
            proc = Proc([KAOS, *argv], self.env, self.cwd)
        except SystemExit as exc:  # the server's side of the failure, before it is stopped
            raise SystemExit(f"{exc}\n{self.server.log_tail()}") from None
        self.peaks.cli_mb = max(self.peaks.cli_mb, proc.rss_mb)
        return Timing(proc.seconds, proc.cpu + self.server.cpu() - before, proc.disk_mb)


def dataset(root: Path, files: int) -> Path:
    """The store bench's files in a data bundle (one top-level folder), made once per size and
    kept under the work folder."""
    data = root / f"data-{files}"
    done = root / f"data-{files}.done"
    if not done.exists():
        shutil.rmtree(data, ignore_errors=True)
        make_small_files(data / "samples", files)
        for folder in (data / "samples").iterdir():
            for path in folder.iterdir():
                os.utime(path, (_OLD_MTIME, _OLD_MTIME))
        done.touch()
    return data


@contextlib.contextmanager
def page_cache_held(*folders: Path) -> Iterator[None]:
    """Hold every file of `folders` in the page cache while the block runs, as a user's files
    stay in it on a machine with memory to spare. This VM runs a DAMON pageout scheme that takes
    back page cache untouched for a minute, but only pages no process has mapped: helper
    processes map every file (a read-only shared mapping, read in at once), so the commands
    timed find them cached however long they take (a million-file first deploy takes longer
    than that minute, and its last files had left the cache). The commands read them as they
    would anyway; `*_disk_read_mb` shows whether the files stayed."""
    paths = [
        os.path.join(top, name).encode()
        for folder in folders
        for top, _dirs, names in os.walk(folder)
        for name in names
    ]
    per_process = 60_000  # a process may hold at most vm.max_map_count (65,530) mappings
    holders = []
    try:
        for i in range(0, len(paths), per_process):
            holder = subprocess.Popen(
                [sys.executable, "-c", _HOLD],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
            )
            holders.append(holder)
            assert holder.stdin is not None
            holder.stdin.write(b"\0".join(paths[i : i + per_process]))
            holder.stdin.close()
        paths.clear()  # not kept through the timed commands
        held = sum(int(holder.stdout.readline() or 0) for holder in holders if holder.stdout)
        figure("page_cache_held_mb", held / 1e6, "MB")
        yield
    finally:
        for holder in holders:
            holder.kill()
            holder.wait()


def floor(script: str, data: Path) -> Timing:
    """A minimal Python process running `script` over the folder."""
    proc = Proc([sys.executable, "-c", script, str(data)], dict(os.environ), data.parent)
    return Timing(proc.seconds, proc.cpu, proc.disk_mb)


def read_hash_floor(data: Path, runs: int) -> dict[str, float]:
    return medians([floor(_READ_HASH, data) for _ in range(runs)], "read_hash_floor")


def compile_kaos() -> None:
    """Bytecode for the kaos being timed, as an installed one has (pip compiles at install)."""
    spec = importlib.util.find_spec("kaos")
    assert spec is not None and spec.submodule_search_locations is not None
    for folder in spec.submodule_search_locations:
        compileall.compile_dir(folder, quiet=1)


def bench_kaos(
    work: Path, data: Path, runs: int, peaks: Peaks, live: contextlib.ExitStack
) -> tuple[dict[str, float], Client]:
    """First deploys and pushes of already hashed files, each to a fresh server; then CLI
    start-up against the last one, which is left running (stopped by `live`) with the client
    that deployed to it, for the unchanged deploys."""
    compile_kaos()
    out: dict[str, float] = {}
    firsts: list[Timing] = []
    pushes: list[Timing] = []
    cli = None
    for run in range(runs):
        server = Server(work / f"server-{run}")
        try:
            cli = Client(work / f"client-{run}", work, peaks)
            cli.use(server)
            firsts.append(cli.run("train", "deploy", "-d", str(data)))
            peaks.server(server)
        finally:
            server.stop()
        shutil.rmtree(work / f"server-{run}")
    assert cli is not None
    for run in range(runs):
        last = run == runs - 1
        server = Server(work / f"push-server-{run}")
        if last:
            live.callback(server.stop)
        try:
            cli.use(server)
            pushes.append(cli.run("train", "deploy", "-d", str(data)))
            peaks.server(server)
        finally:
            if not last:
                server.stop()
        if not last:
            shutil.rmtree(work / f"push-server-{run}")
    out.update(medians([cli.run("--help") for _ in range(5)], "cli_help"))
    out.update(medians([cli.run("train", "list") for _ in range(5)], "train_list"))
    out.update(medians(firsts, "e2e_first_deploy"))
    out.update(medians(pushes, "e2e_push"))
    return out, cli


def bench_unchanged(
    data: Path, cli: Client, dvc_repo: Path | None, dvc: DvcRunner | None, rounds: int
) -> dict[str, float]:
    """The unchanged commands in rounds: the bare walk, `kaos train deploy -d DATA` with
    nothing changed, and `dvc status`, one of each per round, each once untimed first."""
    os.sync()  # every deploy's and add's writes reach the disk before, not during, the rounds
    timed: dict[str, list[Timing]] = {"bare_walk": [], "e2e_noop_deploy": []}
    commands: dict[str, Callable[[], Timing]] = {
        "bare_walk": lambda: floor(_WALK, data),
        "e2e_noop_deploy": lambda: cli.run("train", "deploy", "-d", str(data)),
    }
    if dvc is not None and dvc_repo is not None:
        timed["dvc_status"] = []
        commands["dvc_status"] = functools.partial(dvc, [dvc.path, "status", "-q"], dvc_repo)
    for command in commands.values():
        command()
    for _ in range(rounds):
        for name, command in commands.items():
            timed[name].append(command())
    out: dict[str, float] = {}
    for name, timings in timed.items():
        out.update(medians(timings, name))
    cli.peaks.server(cli.server)
    out["peak_rss_mb_cli"] = cli.peaks.cli_mb
    out["peak_rss_mb_server"] = cli.peaks.server_mb
    return out


def dvc_env(root: Path) -> Path:
    """DVC in a venv of its own (kept under the work folder), so it never touches kaos' deps."""
    venv = root / "dvc-venv"
    dvc = venv / "bin" / "dvc"
    if not dvc.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run(
            [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "dvc"], check=True
        )
    return dvc


class DvcRunner:
    """DVC's command (from its own venv), with its state kept under the work folder."""

    def __init__(self, root: Path, work: Path) -> None:
        self.path = str(dvc_env(root))
        # DVC's per-repo state (about 70 MB of hashes at 100k files) goes under the work
        # folder, removed with it, not left behind in /var/tmp/dvc by every run.
        self.env = {
            **os.environ,
            "DVC_NO_ANALYTICS": "1",
            "DVC_SITE_CACHE_DIR": str(work / "dvc-site"),
        }

    def __call__(self, argv: list[str], cwd: Path) -> Timing:
        proc = Proc(argv, self.env, cwd)
        return Timing(proc.seconds, proc.cpu, proc.disk_mb)


def bench_dvc(
    work: Path, data: Path, runs: int, dvc: DvcRunner, live: contextlib.ExitStack
) -> tuple[dict[str, float], Path]:
    """`dvc add` of a copy of the files, each in a fresh repository, and `dvc --help`; the
    last repository is kept (under the work folder) for `dvc status`."""
    copy = work / "dvc-data"
    shutil.copytree(data, copy)
    live.enter_context(page_cache_held(copy))  # held through the renames below

    def fresh_repo(i: int) -> Path:
        repo = work / f"dvc-{i}"
        repo.mkdir()
        dvc([dvc.path, "init", "--no-scm", "-q"], repo)
        os.rename(copy if i == 0 else work / f"dvc-{i - 1}" / "data", repo / "data")
        if i:
            shutil.rmtree(work / f"dvc-{i - 1}")
        return repo

    adds: list[Timing] = []
    repo = work
    for i in range(runs):
        repo = fresh_repo(i)
        adds.append(dvc([dvc.path, "add", "-q", "data"], repo))
    out = {
        **medians(adds, "dvc_add"),
        **medians([dvc([dvc.path, "--help"], repo) for _ in range(5)], "dvc_help"),
    }
    return out, repo


def bench_size(root: Path, files: int, runs: int, vs_dvc: bool) -> dict[str, float]:
    figure("files", files)
    data = dataset(root, files)
    with scratch(root, f"run-{files}") as work, contextlib.ExitStack() as live:
        live.enter_context(page_cache_held(data))
        out = read_hash_floor(data, runs)
        kaos, cli = bench_kaos(work, data, runs, Peaks(), live)
        out.update(kaos)
        dvc, repo = None, None
        if vs_dvc:
            dvc = DvcRunner(root, work)
            dvc_figures, repo = bench_dvc(work, data, runs, dvc, live)
            out.update(dvc_figures)
        out.update(bench_unchanged(data, cli, repo, dvc, runs))
    ratios = {
        "noop_vs_walk": ("e2e_noop_deploy", "bare_walk"),
        "first_vs_floor": ("e2e_first_deploy", "read_hash_floor"),
    }
    if vs_dvc:
        ratios["first_vs_dvc"] = ("e2e_first_deploy", "dvc_add")
        ratios["noop_vs_dvc"] = ("e2e_noop_deploy", "dvc_status")
        ratios["help_vs_dvc"] = ("cli_help", "dvc_help")
    for name, (ours, theirs) in ratios.items():
        out[name] = out[f"{ours}_s"] / out[f"{theirs}_s"]
        out[f"{name}_cpu"] = out[f"{ours}_cpu_s"] / max(out[f"{theirs}_cpu_s"], 1e-3)
    for name, value in out.items():
        figure(name, value, "s" if name.endswith("_s") else "MB" if name.endswith("_mb") else "")
    return out


@contextlib.contextmanager
def scratch(root: Path, name: str) -> Iterator[Path]:
    work = root / name
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    try:
        yield work
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--files", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--vs-dvc", action="store_true", help="also time DVC on the same files")
    parser.add_argument("--scale", action="store_true", help="10k, 100k and 1M files")
    parser.add_argument(
        "--workdir",
        default=None,
        help="keep generated files (and DVC's venv) here between runs (default: a temp dir)",
    )
    args = parser.parse_args()
    root = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="kaos-e2e-"))
    root.mkdir(parents=True, exist_ok=True)
    try:
        if not args.scale:
            bench_size(root, args.files, args.runs, args.vs_dvc)
            return
        by_size = {
            n: bench_size(root, n, 1 if n >= 1_000_000 else args.runs, args.vs_dvc)
            for n in (10_000, 100_000, 1_000_000)
        }
        big, mid = by_size[1_000_000], by_size[100_000]
        for name, what in (
            ("noop", "e2e_noop_deploy"),
            ("first", "e2e_first_deploy"),
            ("push", "e2e_push"),
            ("walk", "bare_walk"),  # the machine's own growth, for comparison
            ("floor", "read_hash_floor"),
        ):
            figure(f"{name}_growth", big[f"{what}_s"] / mid[f"{what}_s"])
            figure(f"{name}_growth_cpu", big[f"{what}_cpu_s"] / mid[f"{what}_cpu_s"])
    finally:
        if not args.workdir:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
