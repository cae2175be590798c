"""Starting a job for a pod from an endpoint: create it (idempotently), audit it when it is
new, point `Location` at it, answer with it."""

from __future__ import annotations

from typing import Any

from arq.connections import ArqRedis
from fastapi import Request, Response
from sqlalchemy.ext.asyncio import AsyncSession

from app.audit import service as audit
from app.auth.dependencies import Principal, client_address
from app.config import Settings
from app.errors import Conflict
from app.jobs import service as jobs
from app.jobs.schemas import JobRead
from app.models import BackupSettings, Pod
from app.models.kinds import JobKind
from app.models.shapes import JobParams


class NotConfigured(Conflict):
    message = "The pod has no backup settings"


async def require_settings(session: AsyncSession, pod: Pod, then: str) -> BackupSettings:
    row = await session.get(BackupSettings, pod.id)
    if row is None:
        raise NotConfigured(
            "the pod has no backup settings yet",
            hint=f"set a target with PUT /v1/pods/{{pod_id}}/backup-settings, then {then}",
        )
    return row


async def start_pod_job(
    session: AsyncSession,
    redis: ArqRedis,
    settings: Settings,
    principal: Principal,
    pod: Pod,
    *,
    kind: JobKind,
    action: str,
    request: Request,
    response: Response,
    trigger: str = "manual",
    plan: str = "owner",
    params: JobParams | None = None,
    detail: dict[str, Any] | None = None,
    idempotent: bool = True,
) -> JobRead:
    job, created = await jobs.create(
        session,
        redis,
        settings,
        kind=kind,
        pod_id=pod.id,
        account_id=pod.account_id,
        trigger=trigger,
        plan=plan,
        params=params,
        idempotent=idempotent,
    )
    if created:
        await audit.record(
            session,
            action,
            principal=principal,
            account_id=pod.account_id,
            pod_id=pod.id,
            detail={"job_id": str(job.id), **(detail or {})},
            client=client_address(request),
        )
    response.headers["Location"] = f"/v1/jobs/{job.id}"
    return jobs.to_read(job)
