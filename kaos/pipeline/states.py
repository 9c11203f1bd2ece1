"""Every state the catalog records, as enums: jobs and models (the seed's wording), images, and
the two kinds of job. The catalog stores their values; nothing compares against string literals.
"""

from __future__ import annotations

from enum import StrEnum


class JobState(StrEnum):
    """The state of a job, and of each model a train job makes."""

    STARTING = "JOB_STARTING"
    RUNNING = "JOB_RUNNING"
    SUCCESS = "JOB_SUCCESS"
    FAILURE = "JOB_FAILURE"
    KILLED = "JOB_KILLED"

    @property
    def finished(self) -> bool:
        return self in (JobState.SUCCESS, JobState.FAILURE, JobState.KILLED)


ACTIVE_STATES = (JobState.STARTING.value, JobState.RUNNING.value)


class ImageState(StrEnum):
    """An image's state for one source and builder."""

    READY = "ready"
    BUILDING = "building"
    FAILED = "failed"  # recorded for users; the catalog's view leaves it out, so it is retried


class JobKind(StrEnum):
    BUILD = "build"
    TRAIN = "train"
    REPRODUCE = "reproduce"  # a model trained again to check it (not among the train jobs)


def overall_state(model_states: list[JobState], killed: bool) -> JobState:
    """A train job's state from its models': running while any runs; failed if any failed."""
    if killed:
        return JobState.KILLED
    if any(not s.finished for s in model_states):
        started = any(s != JobState.STARTING for s in model_states)
        return JobState.RUNNING if started else JobState.STARTING
    if any(s == JobState.FAILURE for s in model_states):
        return JobState.FAILURE
    if any(s == JobState.KILLED for s in model_states):
        return JobState.KILLED
    return JobState.SUCCESS
