"""Redis (arq) is only the transport: enqueue a job id after commit; forget arq's copy."""

from __future__ import annotations

import logging
import uuid
from datetime import datetime

from arq.connections import ArqRedis
from arq.constants import (
    in_progress_key_prefix,
    job_key_prefix,
    result_key_prefix,
    retry_key_prefix,
)

log = logging.getLogger(__name__)

TASK_NAME = "run_job"


async def enqueue(
    redis: ArqRedis, queue_name: str, job_id: uuid.UUID, run_after: datetime | None = None
) -> bool:
    """Hand the job to a worker. False when arq already holds it (a duplicate enqueue).

    Never raises on a Redis outage: the reconciler enqueues whatever Postgres says is
    queued but Redis does not hold.
    """
    try:
        job = await redis.enqueue_job(
            TASK_NAME,
            str(job_id),
            _job_id=str(job_id),
            _queue_name=queue_name,
            _defer_until=run_after,
        )
    except Exception as exc:
        log.warning(
            "could not enqueue job %s (%s); the reconciler will", job_id, type(exc).__name__
        )
        return False
    return job is not None


async def held(redis: ArqRedis, job_id: uuid.UUID) -> bool:
    """Whether arq has this job (queued, deferred or in progress)."""
    jid = str(job_id)
    count: int = await redis.exists(job_key_prefix + jid, in_progress_key_prefix + jid)
    return count > 0


async def forget(redis: ArqRedis, queue_name: str, job_id: uuid.UUID) -> None:
    """Drop arq's copy (e.g. of a job whose worker died), so it can be enqueued afresh."""
    jid = str(job_id)
    pipe = redis.pipeline(transaction=True)
    pipe.delete(
        job_key_prefix + jid,
        in_progress_key_prefix + jid,
        retry_key_prefix + jid,
        result_key_prefix + jid,
    )
    pipe.zrem(queue_name, jid)
    await pipe.execute()
