"""emit_for_job queues deliveries only for the job's account's subscribed, active webhooks."""

from __future__ import annotations

import uuid
from collections import Counter

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import Account, Job, Pod, Webhook, WebhookDelivery
from app.models.encrypted import WEBHOOK_SECRET
from app.models.shapes import JobError, JobParams
from app.webhooks.events import emit_for_job
from tests.webhooks.conftest import Svc


async def _hook(session: AsyncSession, services: Svc, account: Account, **over: object) -> Webhook:
    hook = Webhook(id=uuid.uuid4(), account_id=account.id, url="https://h.example.com/x")
    hook.secret = services.keyring.encrypt("s" * 20, WEBHOOK_SECRET.context(hook.id))
    for key, value in {"events": [], "active": True, **over}.items():
        setattr(hook, key, value)
    session.add(hook)
    return hook


async def _sent(session: AsyncSession) -> Counter[tuple[uuid.UUID, str]]:
    rows = await session.scalars(select(WebhookDelivery))
    return Counter((d.webhook_id, d.event) for d in rows)


async def test_emit_for_job_fans_out_by_account_subscription_and_state(services: Svc) -> None:
    async with services.sessionmaker() as session:
        mine, theirs = Account(name="a"), Account(name="b")
        session.add_all([mine, theirs])
        await session.flush()
        every = await _hook(session, services, mine)
        failures = await _hook(session, services, mine, events=["job.failed", "check.failed"])
        await _hook(session, services, mine, active=False)
        await _hook(session, services, theirs)
        pod = Pod(account_id=mine.id, name="p", app="x")
        session.add(pod)
        await session.flush()

        def job(kind: str, plan: str = "owner") -> Job:
            return Job(
                id=uuid.uuid4(), pod_id=pod.id, account_id=mine.id, kind=kind, plan=plan,
                trigger="manual", attempt=1,
            )  # fmt: skip

        backup = job("backup")
        await emit_for_job(session, backup, "succeeded", {"snapshot_id": "abc"}, None)
        assert await _sent(session) == Counter({(every.id, "job.succeeded"): 1})

        error = JobError(code="storage_unreachable", message="no", hint=None)
        await emit_for_job(session, backup, "failed", None, error)
        await emit_for_job(session, job("restore"), "succeeded", {}, None)
        preview = job("restore")
        preview.params = JobParams(dry_run=True)  # restored nothing: no restore.finished
        await emit_for_job(session, preview, "succeeded", {"dry_run": True}, None)
        await emit_for_job(session, job("check"), "succeeded", {"ok": False}, None)
        await emit_for_job(session, job("backup", plan="platform"), "failed", None, error)
        await emit_for_job(session, backup, "running", None, None)
        assert await _sent(session) == Counter(
            {
                (every.id, "job.succeeded"): 4,  # backup, restore, preview, check
                (every.id, "job.failed"): 1,
                (failures.id, "job.failed"): 1,
                (every.id, "restore.finished"): 1,
                (every.id, "check.failed"): 1,
                (failures.id, "check.failed"): 1,
            }
        )
        failed = (
            await session.scalars(
                select(WebhookDelivery).where(
                    WebhookDelivery.webhook_id == failures.id,
                    WebhookDelivery.event == "job.failed",
                )
            )
        ).one()
        assert failed.payload["id"] == str(failed.id)
        assert failed.payload["data"]["job_id"] == str(backup.id)
        assert failed.payload["data"]["error"] == {
            "code": "storage_unreachable",
            "message": "no",
            "hint": None,
        }
        assert failed.status == "pending"
        assert failed.next_attempt_at is not None
        # queued in the caller's transaction: a rollback leaves nothing to deliver
        await session.rollback()
    async with services.sessionmaker() as session:
        assert await _sent(session) == Counter()
