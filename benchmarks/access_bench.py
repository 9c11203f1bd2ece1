"""What access checks cost on a team's catalog: 200 workspaces of 20 users, 50 train jobs each
(10,000 jobs and models), every workspace shared with two other users.

    python benchmarks/access_bench.py [--workspaces 200] [--jobs 50] [--runs 50]

Prints medians, in-process against a real SQLite catalog (no HTTP, so only the check counts):
access_workspace_ms (a route's check of one workspace: the record and its shares),
access_tree_ms (reading a tree by hash: which workspaces name it, and may the user read one),
access_list_ms (which of all the workspaces, already read for the listing, a user may read).
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parent.parent))
from _common import figure, median_of, timed

from kaos.pipeline.catalog import SqliteCatalog
from kaos.pipeline.inputs import TrainingInputs
from kaos.pipeline.records import Job, Model
from kaos.pipeline.states import JobState
from kaos.server.access import Action
from kaos.server.auth import TokenTable
from kaos.server.guard import Guard
from kaos.store import ContentStore

USERS = [f"user{i:02d}" for i in range(20)]


def seed(catalog: SqliteCatalog, workspaces: int, jobs: int) -> list[tuple[str, str, str]]:
    """(workspace, owner, one of its data trees) for every workspace."""
    rng = random.Random(3)
    made = []
    for w in range(workspaces):
        name, owner = f"ws{w:04d}", USERS[w % len(USERS)]
        catalog.create_workspace(name, owner=owner)
        for other in (USERS[(w + 1) % len(USERS)], USERS[(w + 2) % len(USERS)]):
            catalog.share(name, other, "reader")
        data = ""
        for _ in range(jobs):
            source, data, output = (f"{rng.getrandbits(128):032x}" for _i in range(3))
            deploy = catalog.record_deploy(name, owner, TrainingInputs(source, data), {}, False)
            job_id = f"{rng.getrandbits(128):032x}"
            now = time.time()
            model = Model(
                job_id, 0, job_id, {}, JobState.SUCCESS, f"{source[:5]}_{data[:5]}:{output[:6]}",
                output, {"accuracy": 0.5}, now, now,
            )  # fmt: skip
            job = Job(
                job_id, "train", name, deploy.id, JobState.SUCCESS, now, now, now, source, data,
                "image", owner, False, 1,
            )  # fmt: skip
            catalog.add_job(job, [model])
        made.append((name, owner, data))
    return made


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--workspaces", type=int, default=200)
    parser.add_argument("--jobs", type=int, default=50)
    parser.add_argument("--runs", type=int, default=50)
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="kaos-access-bench-"))
    catalog = SqliteCatalog(home / "catalog.db")
    made = seed(catalog, args.workspaces, args.jobs)
    tokens = TokenTable({f"token-of-{u}-0123456789": u for u in USERS}, {"root"})
    guard = Guard(catalog, ContentStore.from_url(str(home / "store"), home), tokens)
    rng = random.Random(5)

    def one_workspace() -> float:
        name, _owner, _data = rng.choice(made)
        return timed(lambda: guard.workspace(USERS[int(name[2:]) % 20], name, Action.READ))

    def one_tree() -> float:
        name, _owner, data = rng.choice(made)
        reader = USERS[(int(name[2:]) + 2) % len(USERS)]  # shared with them, not their own
        return timed(lambda: guard.tree(reader, data))

    spaces = catalog.workspaces()

    def listing() -> float:  # the check alone: the listing reads the workspaces anyway
        return timed(lambda: guard.readable(rng.choice(USERS), spaces))

    figure("access_workspace_ms", 1000 * median_of(args.runs, one_workspace), "ms")
    figure("access_tree_ms", 1000 * median_of(args.runs, one_tree), "ms")
    figure("access_list_ms", 1000 * median_of(args.runs, listing), "ms")


if __name__ == "__main__":
    main()
