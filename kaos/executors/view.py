"""What a train script sees, the same under every executor that contains it (docker, bwrap).

    /kaos/source/<name>/model   the source, read-only; the working directory
    /kaos/data                  KAOS_DATA_DIR, read-only
    /kaos/hyperparams.json      KAOS_HYPERPARAMS, read-only (only with a grid)
    /kaos/output                KAOS_OUTPUT_DIR = argv[1], the only writable folder (and /tmp)
    /pfs/data/<top folder>      the data again, where kaos 1.0 scripts read it
    /pfs/hyper/params.json      the combination again, where kaos 1.0 scripts read it

Pure: the host's job folders in, mounts out.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from kaos.executors.workdir import TrainDirs

INSIDE = Path("/kaos")
PFS_DATA = Path("/pfs/data")
PFS_HYPER = Path("/pfs/hyper/params.json")


@dataclass(frozen=True)
class Mount:
    """A host path shown at `inside`; read-only unless `writable`."""

    host: Path
    inside: Path
    writable: bool = False


def inside_dirs(dirs: TrainDirs) -> TrainDirs:
    """The job's folders as the train script sees them."""
    return TrainDirs(
        root=INSIDE,
        source=INSIDE / "source",
        data=INSIDE / "data",
        output=INSIDE / "output",
        hyperparams=INSIDE / "hyperparams.json" if dirs.hyperparams else None,
        bundle_name=dirs.bundle_name,
        seed=dirs.seed,
    )


def job_mounts(dirs: TrainDirs) -> tuple[Mount, ...]:
    """Every mount of the view: the contract's folders, then the kaos 1.0 (/pfs) paths."""
    inside = inside_dirs(dirs)
    mounts = [
        Mount(dirs.source, inside.source),
        Mount(dirs.data, inside.data),
        Mount(dirs.output, inside.output, writable=True),
        Mount(dirs.data, PFS_DATA),  # the bundle's one top folder appears as /pfs/data/<top>
    ]
    if dirs.hyperparams is not None and inside.hyperparams is not None:
        mounts.append(Mount(dirs.hyperparams, inside.hyperparams))
        mounts.append(Mount(dirs.hyperparams, PFS_HYPER))
    return tuple(mounts)
