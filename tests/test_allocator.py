"""kaos's own processes keep freed memory for their next large buffer (kaos/allocator.py)."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest

FAULTS = """
import resource, sys
if sys.argv[1] == "reuse":
    from kaos.allocator import reuse_freed_memory
    reuse_freed_memory()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(40):  # a pack-sized buffer, filled and freed, again and again
    buffer = bytearray(48 << 20)
    del buffer
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def faults(mode: str) -> int:
    done = subprocess.run(
        [sys.executable, "-c", FAULTS, mode], capture_output=True, text=True, check=True
    )
    return int(done.stdout)


@pytest.mark.skipif(
    platform.libc_ver()[0] != "glibc", reason="tunes glibc's allocator; a no-op elsewhere"
)
def test_a_large_buffer_freed_is_reused_not_mapped_afresh():
    pages = (48 << 20) // 4096
    assert faults("default") > 20 * pages  # glibc maps each one anew (over its 32 MiB limit)
    assert faults("reuse") < 3 * pages  # the first one's pages, then the same ones again
