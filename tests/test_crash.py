"""Crash safety: 20 SIGKILLs of the server at random points of upload, build and train."""

import pytest

from tests.crash_harness import run_crashes

pytestmark = pytest.mark.slow


def test_twenty_random_kills_lose_nothing(tmp_path):
    report = run_crashes(tmp_path, runs=20, seed=20261127)
    assert report.runs == 20
    assert report.losses == []
