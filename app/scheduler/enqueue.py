"""Hand thousands of new jobs to arq in two Redis round trips instead of four per job.

``app.jobs.queue.enqueue`` (arq's ``enqueue_job``) costs about 0.3 ms of client time per job
(WATCH, EXISTS, MULTI/EXEC): 3 s for a tick of 10,000 pods. This writes the same thing arq
writes — the pickled job under ``arq:job:<id>`` with arq's expiry, and the id in the queue's
sorted set scored by its enqueue time — pipelined: first ``SET NX`` every job key, then
``ZADD`` the ids whose key this call created. A job arq already holds (a reconciler got
there first) is left alone, as ``enqueue_job`` would. Failures are logged, never raised:
the reconciler enqueues whatever Postgres says is queued and Redis does not hold.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence

from arq.connections import ArqRedis
from arq.constants import job_key_prefix
from arq.jobs import serialize_job
from arq.utils import timestamp_ms

from app.jobs.queue import TASK_NAME

log = logging.getLogger(__name__)

CHUNK = 2000


async def enqueue_many(redis: ArqRedis, queue_name: str, job_ids: Sequence[uuid.UUID]) -> int:
    """Enqueue ``run_job(<id>)`` for each id; returns how many were added."""
    added = 0
    for start in range(0, len(job_ids), CHUNK):
        try:
            added += await _chunk(redis, queue_name, job_ids[start : start + CHUNK])
        except Exception as exc:
            log.warning(
                "could not enqueue %d scheduled job(s) (%s); the reconciler will",
                len(job_ids) - start,
                type(exc).__name__,
            )
            break
    return added


async def _chunk(redis: ArqRedis, queue_name: str, job_ids: Sequence[uuid.UUID]) -> int:
    now_ms = timestamp_ms()
    expires_ms = redis.expires_extra_ms
    pipe = redis.pipeline(transaction=False)
    for job_id in job_ids:
        jid = str(job_id)
        body = serialize_job(TASK_NAME, (jid,), {}, None, now_ms, serializer=redis.job_serializer)
        pipe.set(job_key_prefix + jid, body, px=expires_ms, nx=True)
    created = await pipe.execute()
    fresh = {str(j): now_ms for j, ok in zip(job_ids, created, strict=True) if ok}
    if fresh:
        await redis.zadd(queue_name, fresh)
    return len(fresh)
