"""The bubblewrap sandbox a train script runs in on the local and Ray executors: one argv.

What the script sees is exactly: the host's system read-only (`HostLayout`: /usr, /etc, the
Python prefixes its environment needs, /bin-style links as on the host), the job's view
(`kaos.executors.view`: source and data read-only, the output folder writable), a private /tmp,
/proc and /dev; the host's password hashes (`SECRET_FILES`) cannot be read. Nothing else of
the host exists inside: not KAOS_HOME, not other jobs, not the server's files. Around that:

- a private PID namespace whose init is the script itself (`--as-pid-1`): when it ends, the
  kernel ends every process it started, `setsid` daemons included, and bwrap returns only
  then (with bwrap's own init there, its exit lingered for seconds after the script's); a
  kill or the server's death (`--die-with-parent`) ends it the same way;
- no network (an empty network namespace) unless the deploy asks for it;
- no capabilities, even when the server runs as root;
- the root of the sandbox read-only, so nothing can be written outside the output and /tmp.

The environment is passed to bwrap as its own (already an allow-list, see the executors), not
as `--setenv` arguments, so no value shows in the process table.

Pure: no I/O here; `kaos.executors.host` finds the layout and probes whether bwrap runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath

from kaos.executors.view import Mount

BWRAP = "bwrap"
SYSTEM_FOLDERS = ("/usr", "/etc")
TOP_LINKS = ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
PRIVATE = ("/proc", "/dev", "/tmp")  # made fresh inside; nothing may be mounted over them
# The host's password hashes: /etc is shown, and a server running as root could read them (uid 0
# inside, even without capabilities), so where they exist /dev/null is bound over them (bwrap
# binds without device access, so opening one fails).
SECRET_FILES = ("/etc/shadow", "/etc/shadow-", "/etc/gshadow", "/etc/gshadow-")


@dataclass(frozen=True)
class HostLayout:
    """The host's system as the sandbox shows it, read-only at the same paths."""

    folders: tuple[str, ...] = SYSTEM_FOLDERS  # bound read-only at their own path
    links: tuple[tuple[str, str], ...] = ()  # (path, target): /bin -> usr/bin, as on the host
    hidden: tuple[str, ...] = ()  # host files in those folders made unreadable

    def with_folders(self, extra: Sequence[str]) -> HostLayout:
        """The layout plus more read-only folders (a Python prefix, an environment)."""
        folders = list(self.folders)
        for folder in extra:
            if not _covered(folder, folders):
                folders.append(folder)
        return HostLayout(tuple(folders), self.links, self.hidden)


@dataclass(frozen=True)
class Sandbox:
    """One train's sandbox: the layout, the job's mounts, where it starts, network or not."""

    layout: HostLayout
    mounts: tuple[Mount, ...]
    cwd: str
    network: bool = False


def bwrap_argv(sandbox: Sandbox, command: Sequence[str], bwrap: str = BWRAP) -> list[str]:
    """The bwrap command line running `command` inside `sandbox`."""
    _check(sandbox)
    argv = [
        bwrap,
        "--die-with-parent",
        "--unshare-pid",
        "--as-pid-1",
        "--unshare-ipc",
        "--unshare-uts",
        "--unshare-cgroup-try",
        "--cap-drop",
        "ALL",
    ]
    if not sandbox.network:
        argv.append("--unshare-net")
    argv += ["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"]
    for path, target in sandbox.layout.links:
        argv += ["--symlink", target, path]
    # A system folder below /tmp (an environment kept there) is bound into the private /tmp,
    # inside a read-only tmpfs at its first folder there: the path leads to it and nothing
    # along the way can be written (a KAOS_HOME below /tmp stays unwritable).
    shelters = sorted({_shelter(f) for f in sandbox.layout.folders if _shelter(f)})
    for shelter in shelters:
        argv += ["--tmpfs", shelter]
    for folder in sandbox.layout.folders:
        argv += ["--ro-bind", folder, folder]
    for shelter in shelters:
        argv += ["--remount-ro", shelter]
    for secret in sandbox.layout.hidden:
        argv += ["--ro-bind", "/dev/null", secret]
    # Parents before children: a mount inside another (none today) must come after it.
    for mount in sorted(sandbox.mounts, key=lambda m: len(PurePosixPath(m.inside).parts)):
        argv += ["--bind" if mount.writable else "--ro-bind", str(mount.host), str(mount.inside)]
    argv += ["--remount-ro", "/", "--chdir", sandbox.cwd, "--", *command]
    return argv


def _shelter(folder: str) -> str:
    """`/tmp/<first>` for a folder below /tmp, else ""."""
    parts = PurePosixPath(folder).parts
    return f"/tmp/{parts[2]}" if len(parts) > 2 and parts[1] == "tmp" else ""


def _check(sandbox: Sandbox) -> None:
    """Refuse a sandbox that would show or hide the wrong things (a bug, never user input)."""
    for folder in sandbox.layout.folders:
        path = PurePosixPath(folder)
        if not path.is_absolute() or ".." in path.parts or str(path) in ("/", *PRIVATE):
            raise ValueError(f"sandbox: system folder {folder!r} must be absolute and not /")
    seen: set[PurePosixPath] = set()
    for mount in sandbox.mounts:
        inside = PurePosixPath(mount.inside)
        if not inside.is_absolute() or ".." in inside.parts or inside == PurePosixPath("/"):
            raise ValueError(f"sandbox: mount point {inside} must be an absolute path below /")
        if inside in seen:
            raise ValueError(f"sandbox: two mounts at {inside}")
        seen.add(inside)
        if _covered(str(inside), [*sandbox.layout.folders, *PRIVATE]):
            raise ValueError(f"sandbox: {inside} would shadow a system or private folder")
    if not PurePosixPath(sandbox.cwd).is_absolute():
        raise ValueError(f"sandbox: working directory {sandbox.cwd!r} must be absolute")


def _covered(path: str, folders: Sequence[str]) -> bool:
    """Whether `path` is one of `folders` or inside one."""
    candidate = PurePosixPath(path)
    return any(
        candidate == PurePosixPath(f) or PurePosixPath(f) in candidate.parents for f in folders
    )
