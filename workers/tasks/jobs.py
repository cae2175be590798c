"""Thin adapter: arq delivers a job id, the runner does the work."""

from __future__ import annotations

import uuid
from typing import Any

from arq import Retry

from app.engine.runner import JobRunner
from workers.context import WorkerContext


async def run_job(ctx: WorkerContext, job_id: str) -> dict[str, Any]:
    """Jobs may be delivered more than once; the runner claims in Postgres first."""
    result = await JobRunner(ctx["services"]).execute(uuid.UUID(job_id))
    if result.status == "retry":
        raise Retry(defer=result.retry_in)
    return {"status": result.status}
