"""Follow one deploy's jobs until they end, telling a reporter each state change."""

from __future__ import annotations

import time
from typing import Any

from kaos.client.events import Reporter
from kaos.client.http import KaosClient
from kaos.pipeline.states import ACTIVE_STATES

POLL_S = 0.5


def follow_jobs(
    http: KaosClient, workspace: str, deploy_id: int, reporter: Reporter, poll: float = POLL_S
) -> list[dict[str, Any]]:
    """The deploy's jobs once none is starting or running (as the server last showed them)."""
    seen: dict[str, str] = {}
    while True:
        jobs = [j for j in http.jobs(workspace) if j["deploy_id"] == deploy_id]
        for job in sorted(jobs, key=lambda j: j["created"]):
            if seen.get(job["id"]) != job["state"]:
                seen[job["id"]] = job["state"]
                reporter.job_changed(job)
        if not any(j["state"] in ACTIVE_STATES for j in jobs):
            return jobs
        time.sleep(poll)
