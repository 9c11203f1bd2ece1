"""Pack bodies are received into buffers used again, never while anything still reads one."""

import asyncio

import pytest

from kaos.server.bodies import BufferPool, TooLarge


async def _chunks(*parts: bytes):
    for part in parts:
        yield part


def receive(pool: BufferPool, *parts: bytes, limit: int = 1 << 20) -> bytearray:
    return asyncio.run(pool.receive(_chunks(*parts), limit))


def test_a_buffer_is_used_again_and_holds_exactly_the_new_body():
    pool = BufferPool()
    first = receive(pool, b"a" * 3000, b"b" * 3000)
    assert first == b"a" * 3000 + b"b" * 3000
    pool.release(first)
    second = receive(pool, b"c" * 1000, b"d" * 2000)  # shorter: nothing of the first stays
    assert second is first
    assert second == b"c" * 1000 + b"d" * 2000
    pool.release(second)
    third = receive(pool, b"e" * 5000, b"f" * 5000)  # longer: grows in place
    assert third is first
    assert third == b"e" * 5000 + b"f" * 5000


def test_a_buffer_something_still_reads_is_never_used_again():
    pool = BufferPool()
    body = receive(pool, b"pack one")
    view = memoryview(body)[:4]  # e.g. a payload a verification error still holds
    pool.release(body)
    other = receive(pool, b"pack two")
    assert other is not body
    assert bytes(view) == b"pack"


def test_a_body_over_the_limit_is_refused_and_its_buffer_kept():
    pool = BufferPool()
    with pytest.raises(TooLarge):
        receive(pool, b"x" * 600, b"y" * 600, limit=1000)
    assert receive(pool, b"small", limit=1000) == b"small"


def test_the_pool_keeps_a_few_buffers_only():
    pool = BufferPool(keep=2)
    bodies = [receive(pool, bytes([i]) * 10) for i in range(3)]
    for body in bodies:
        pool.release(body)
    again = [receive(pool, b"z") for _ in range(3)]
    assert sum(any(a is b for b in bodies) for a in again) == 2
