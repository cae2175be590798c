"""Events for webhooks: recorded as pending deliveries in the same transaction as the
change they describe; the worker delivers them (signed, retried, idempotent by id)."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.models import Job, Webhook, WebhookDelivery
from app.models.base import utcnow
from app.models.kinds import Plan
from app.models.shapes import JobError
from app.webhooks import repository

EVENTS = (
    "job.succeeded",
    "job.partial",
    "job.failed",
    "backup.stale",
    "copy.lagging",
    "check.failed",
    "restore.finished",
    "target.unavailable",
    "target.recovered",
)
# Sent only by `POST /v1/webhooks/{id}/test`, to that one webhook whatever it subscribes to.
TEST_EVENT = "webhook.test"


def queue(
    session: AsyncSession, hook: Webhook, event: str, data: dict[str, Any]
) -> WebhookDelivery:
    """Add one pending delivery of ``event`` to ``hook`` (the caller flushes). The payload is
    fixed now, so every retry sends the same body with the same event id."""
    delivery_id = uuid.uuid4()
    payload = {
        "id": str(delivery_id),
        "event": event,
        "created_at": utcnow().isoformat(),
        "data": data,
    }
    delivery = WebhookDelivery(id=delivery_id, webhook_id=hook.id, event=event, payload=payload)
    session.add(delivery)
    return delivery


async def emit(
    session: AsyncSession, account_id: uuid.UUID | None, event: str, data: dict[str, Any]
) -> int:
    """Queue ``event`` for every active webhook of the account subscribed to it."""
    if account_id is None:
        return 0
    hooks = await repository.active_for_account(session, account_id)
    count = 0
    for hook in hooks:
        if hook.events and event not in hook.events:
            continue
        queue(session, hook, event, data)
        count += 1
    if count:
        await session.flush()
    return count


def _job_data(
    job: Job, status: str, result: dict[str, Any] | None, error: JobError | None
) -> dict[str, Any]:
    return {
        "job_id": str(job.id),
        "pod_id": str(job.pod_id) if job.pod_id else None,
        "kind": job.kind,
        "status": status,
        "trigger": job.trigger,
        "attempt": job.attempt,
        "result": result,
        "error": error.stored() if error is not None else None,
    }


async def emit_for_job(
    session: AsyncSession,
    job: Job,
    status: str,
    result: dict[str, Any] | None,
    error: JobError | None,
) -> None:
    if job.plan == Plan.PLATFORM:
        return  # platform jobs are the operator's, not the account's (copy jobs: the owner's)
    data = _job_data(job, status, result, error)
    if status in ("succeeded", "partial", "failed"):
        await emit(session, job.account_id, f"job.{status}", data)
    # A preview (dry_run) restored nothing: only its job.* event.
    if (
        job.kind == "restore"
        and status in ("succeeded", "partial", "failed")
        and not (job.params and job.params.dry_run)
    ):
        await emit(session, job.account_id, "restore.finished", data)
    if job.kind == "check" and (status == "failed" or (result or {}).get("ok") is False):
        await emit(session, job.account_id, "check.failed", data)
