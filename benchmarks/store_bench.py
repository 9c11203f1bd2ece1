"""Store benchmark: hashing, ingest, no-op rescan, S3 push, append and one-file-change costs.

Prints one `name=value unit` line per figure (medians). With --vs-dvc, runs the same data through
`dvc add`, `dvc status` and `dvc push` to the same S3 endpoint and prints the ratios ours/DVC's.

    python benchmarks/store_bench.py [--files 100000] [--runs 3] [--vs-dvc]
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import figure, local_s3, median_of, timed

from kaos.store import ContentStore, StatCache, scan_folder
from kaos.store.backends import LocalBackend
from kaos.store.backends.s3 import S3Backend
from kaos.store.hashing import hash_file


def make_small_files(root: Path, count: int, seed: int = 0) -> None:
    """`count` CSV-like files of about 5.5 KB in 100 folders (like a folder of image features)."""
    rng = random.Random(seed)
    alphabet = [",".join(str(rng.randrange(256)) for _ in range(24)) + "\n" for _ in range(4096)]
    for i in range(count):
        folder = root / f"part{i % 100:03d}"
        if i < 100:
            folder.mkdir(parents=True)
        rows = rng.choices(alphabet, k=68)
        (folder / f"sample{i:06d}.csv").write_text(f"id,{i}\n" + "".join(rows))


def make_csv(path: Path, size: int, seed: int) -> None:
    rng = random.Random(seed)
    rows = []
    written = 0
    while written < size:
        row = ",".join(str(rng.randrange(256)) for _ in range(60)) + "\n"
        rows.append(row)
        written += len(row)
    path.write_text("".join(rows))


def bench_hash(work: Path, runs: int) -> None:
    big = work / "1gib.bin"
    with big.open("wb") as f:
        block = os.urandom(64 << 20)
        for _ in range(16):
            f.write(block)
    seconds = median_of(runs, lambda: timed(lambda: hash_file(big)))
    figure("hash_1gib_mb_s", (1 << 30) / seconds / 1e6, "MB/s")
    big.unlink()


def bench_files(work: Path, files: int, runs: int, s3: str) -> dict[str, float]:
    data = work / "data"
    make_small_files(data, files)
    total = sum(p.stat().st_size for p in data.rglob("*") if p.is_file())
    figure("dataset_files", files)
    figure("dataset_mb", total / 1e6, "MB")
    out: dict[str, float] = {}

    def ingest_once() -> float:
        home = work / f"home-{uuid.uuid4().hex[:6]}"
        store = ContentStore(LocalBackend(home / "store"), home)
        seconds = timed(lambda: store.add_folder(data, StatCache(home / "state.db")))
        shutil.rmtree(home)
        return seconds

    out["ingest_100k_files_s"] = median_of(runs, ingest_once)
    figure("ingest_100k_files_s", out["ingest_100k_files_s"], "s")

    home = work / "home"
    state = StatCache(home / "state.db")
    for p in data.rglob("*"):  # files older than the racy window, as in real use
        os.utime(p, (1_700_000_000, 1_700_000_000))
    scan_folder(data, state)
    out["noop_rescan_100k_files_s"] = median_of(
        runs, lambda: timed(lambda: scan_folder(data, state))
    )
    figure("noop_rescan_100k_files_s", out["noop_rescan_100k_files_s"], "s")

    import boto3

    client = boto3.client("s3", endpoint_url=s3)

    def push_once() -> float:
        bucket = f"kaos-{uuid.uuid4().hex[:10]}"
        client.create_bucket(Bucket=bucket)
        store = ContentStore(S3Backend(bucket, "kaos", endpoint_url=s3), work / f"h-{bucket}")
        return timed(lambda: store.push(scan_folder(data, state)))

    out["push_100k_files_s3_s"] = median_of(runs, push_once)
    figure("push_100k_files_s3_s", out["push_100k_files_s3_s"], "s")

    bucket = f"kaos-{uuid.uuid4().hex[:10]}"
    client.create_bucket(Bucket=bucket)
    store = ContentStore(S3Backend(bucket, "kaos", endpoint_url=s3), work / "h-change")
    store.push(scan_folder(data, state))
    victim = next((data / "part042").iterdir())
    victim.write_text(victim.read_text().replace("id,", "ID,", 1))
    report = store.push(scan_folder(data, state))
    figure("one_file_changed_uploaded_bytes", report.bytes_uploaded, "B")
    return out


def bench_append(work: Path) -> None:
    src = work / "append"
    src.mkdir()
    csv = src / "train.csv"
    make_csv(csv, 100 << 20, seed=1)
    store = ContentStore(LocalBackend(work / "append-store"), work / "append-home")
    store.push(scan_folder(src))
    before = store.index.digests()
    extra = work / "extra.csv"
    make_csv(extra, 30 << 20, seed=2)
    with csv.open("ab") as f:
        f.write(extra.read_bytes())
    tree = store.push(scan_folder(src)).tree
    chunks = store.reader.chunk_digests(tree.get("train.csv").digest)
    new = sum(store.reader.locate(d).size for d in set(chunks) - before)
    figure("append30_new_fraction", new / csv.stat().st_size)


def bench_dvc(work: Path, files: int, runs: int, s3: str, ours: dict[str, float]) -> None:
    dvc = shutil.which("dvc")
    if dvc is None:
        print("dvc_skipped=1 (dvc is not installed in this environment: pip install 'dvc[s3]')")
        return
    import boto3

    client = boto3.client("s3", endpoint_url=s3)

    def run(args: list[str], cwd: Path) -> None:
        subprocess.run([dvc, *args], cwd=cwd, check=True, stdout=subprocess.DEVNULL)

    def fresh_repo() -> Path:
        repo = work / f"dvc-{uuid.uuid4().hex[:6]}"
        repo.mkdir()
        run(["init", "--no-scm", "-q"], repo)
        shutil.copytree(work / "data", repo / "data")
        return repo

    def add_once() -> float:
        repo = fresh_repo()
        seconds = timed(lambda: run(["add", "-q", "data"], repo))
        shutil.rmtree(repo)
        return seconds

    theirs = {"ingest_100k_files_s": median_of(runs, add_once)}
    repo = fresh_repo()
    run(["add", "-q", "data"], repo)
    theirs["noop_rescan_100k_files_s"] = median_of(
        runs, lambda: timed(lambda: run(["status", "-q"], repo))
    )

    def push_once() -> float:
        bucket = f"dvc-{uuid.uuid4().hex[:10]}"
        client.create_bucket(Bucket=bucket)
        run(["remote", "add", "-f", "-d", "bench", f"s3://{bucket}/dvc"], repo)
        run(["remote", "modify", "bench", "endpointurl", s3], repo)
        return timed(lambda: run(["push", "-q"], repo))

    theirs["push_100k_files_s3_s"] = median_of(runs, push_once)
    for name, value in theirs.items():
        figure(f"dvc_{name}", value, "s")
    for name, value in theirs.items():
        figure(f"{name.removesuffix('_s')}_vs_dvc", ours[name] / value)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--files", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--vs-dvc", action="store_true")
    parser.add_argument(
        "--workdir", default=None, help="where to generate data (default: a temp dir)"
    )
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="kaos-bench-", dir=args.workdir))
    try:
        with local_s3() as s3:
            bench_hash(work, args.runs)
            ours = bench_files(work, args.files, args.runs, s3)
            bench_append(work)
            if args.vs_dvc:
                bench_dvc(work, args.files, args.runs, s3, ours)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
