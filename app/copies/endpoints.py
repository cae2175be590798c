"""The pod's second copy: its settings, their verification, a copy on request, its lag."""

from __future__ import annotations

import asyncio
import uuid
from typing import Annotated

from fastapi import APIRouter, Body, Request, Response, status

from app.audit import service as audit
from app.auth.dependencies import AnyPrincipal, client_address
from app.copies import repository, service
from app.copies.schemas import CopySettingsRead, CopySettingsWrite
from app.db import DbSession
from app.deps import KeyringDep, RedisDep, SettingsDep
from app.errors import error_responses
from app.jobs.schemas import JobRead
from app.jobs.starting import start_pod_job
from app.models.base import utcnow
from app.models.kinds import JobKind, Plan
from app.pods.service import decrypt_secrets, get_visible
from app.status.schemas import CopyLag
from app.targets import endpoints as owner_endpoints
from app.targets import service as owner
from app.targets.checks import VerifyInput
from app.targets.restore_kit import build_kit
from app.targets.schemas import RestoreKit, Target, VerifyResult
from app.targets.verify import verify_s3
from app.targets.verify_local import verify_local
from app.targets.verify_pod import verify_pod

router = APIRouter(tags=["copies"])


@router.get(
    "/v1/pods/{pod_id}/copy-settings",
    summary="The pod's second copy: target, retention and verification",
    responses=error_responses(401, 404, 422),
)
async def get_copy_settings(
    pod_id: uuid.UUID, principal: AnyPrincipal, session: DbSession
) -> CopySettingsRead:
    pod = await get_visible(session, principal, pod_id)
    return service.to_read(await service.require_row(session, pod.id))


@router.put(
    "/v1/pods/{pod_id}/copy-settings",
    summary="Save the second copy (another bucket or provider; the secret is write-only)",
    responses=error_responses(401, 403, 404, 422),
)
async def put_copy_settings(
    pod_id: uuid.UUID,
    body: CopySettingsWrite,
    principal: AnyPrincipal,
    session: DbSession,
    settings: SettingsDep,
    keyring: KeyringDep,
    request: Request,
) -> CopySettingsRead:
    pod = await get_visible(session, principal, pod_id)
    row, detail = await service.save(session, settings, keyring, principal, pod.id, body)
    action = "copy_settings.create" if detail["created"] else "copy_settings.update"
    await audit.record_for_pod(session, principal, pod, action, detail, client_address(request))
    return service.to_read(row)


@router.delete(
    "/v1/pods/{pod_id}/copy-settings",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Stop the second copy, destroying its stored secret and password",
    responses=error_responses(401, 404, 422),
)
async def delete_copy_settings(
    pod_id: uuid.UUID, principal: AnyPrincipal, session: DbSession, request: Request
) -> None:
    pod = await get_visible(session, principal, pod_id)
    row = await service.require_row(session, pod.id)
    detail = await service.delete(session, row)
    await audit.record_for_pod(
        session, principal, pod, "copy_settings.delete", detail, client_address(request)
    )


@router.post(
    "/v1/pods/{pod_id}/copy-settings/verify",
    summary="Verify the copy's target for real (as the owner's verify)",
    responses=error_responses(401, 403, 404, 422),
)
async def verify_copy_settings(
    pod_id: uuid.UUID,
    principal: AnyPrincipal,
    session: DbSession,
    settings: SettingsDep,
    keyring: KeyringDep,
    request: Request,
    body: Annotated[Target | None, Body()] = None,
) -> VerifyResult:
    pod = await get_visible(session, principal, pod_id)
    row = await repository.get(session, pod.id)
    if body is None:
        stored = await service.require_row(session, pod.id)
        resolved, saved = owner.stored_target(keyring, stored), True
    else:
        resolved = await owner.resolve_target(settings, keyring, principal, body, row)
        saved = False
    password = owner.decrypt_password(keyring, row) if row is not None else None
    recorded = None
    if row is not None and owner.target_identity(row.target_kind, row.target) == (
        resolved.identity
    ):
        recorded = row.repository_id
    inp = VerifyInput(resolved, password, recorded, settings.cache_dir / "restic-verify")
    restic = await owner_endpoints.restic_for_verify(request, settings)
    target_check = (verify_local if resolved.kind == "local" else verify_s3)(settings, inp, restic)
    pod_check = verify_pod(settings, pod, decrypt_secrets(keyring, pod))
    (ok, checks), (pod_ok, pod_checks) = await asyncio.gather(target_check, pod_check)
    ok, checks = ok and pod_ok, [*checks, *pod_checks]
    now = utcnow()
    if saved and row is not None:
        await repository.mark_verified(session, row, ok, now)
    url = owner.repository_url(resolved.kind, resolved.target)
    detail = {"ok": ok, "saved": saved, "repository": url}
    await audit.record_for_pod(
        session, principal, pod, "copy_settings.verify", detail, client_address(request)
    )
    return VerifyResult(ok=ok, checks=checks, repository=url, saved=saved, verified_at=now)


@router.post(
    "/v1/pods/{pod_id}/copies",
    status_code=status.HTTP_202_ACCEPTED,
    summary="Copy the primary's new snapshots into the second copy now",
    responses=error_responses(401, 403, 404, 409, 422),
)
async def trigger_copy(
    pod_id: uuid.UUID,
    principal: AnyPrincipal,
    session: DbSession,
    redis: RedisDep,
    settings: SettingsDep,
    request: Request,
    response: Response,
) -> JobRead:
    pod = await get_visible(session, principal, pod_id)
    await service.require_row(session, pod.id)
    return await start_pod_job(
        session,
        redis,
        settings,
        principal,
        pod,
        kind=JobKind.COPY,
        action="copy.trigger",
        request=request,
        response=response,
        plan=Plan.COPY,
        detail={"plan": Plan.COPY},
    )


@router.get(
    "/v1/pods/{pod_id}/copy-lag",
    summary="How far the second copy is behind the primary",
    responses=error_responses(401, 404, 422),
)
async def copy_lag(pod_id: uuid.UUID, principal: AnyPrincipal, session: DbSession) -> CopyLag:
    pod = await get_visible(session, principal, pod_id)
    return await service.lag_of(session, pod.id, utcnow())


@router.get(
    "/v1/pods/{pod_id}/copy-settings/restore-kit",
    summary="The second copy's repository, password, env block and restic commands (audited)",
    responses=error_responses(401, 404, 422),
)
async def copy_restore_kit(
    pod_id: uuid.UUID,
    principal: AnyPrincipal,
    session: DbSession,
    keyring: KeyringDep,
    request: Request,
) -> RestoreKit:
    pod = await get_visible(session, principal, pod_id)
    row = await service.require_row(session, pod.id)
    kit = build_kit(row, keyring)
    detail = {"repository": kit.repository}
    await audit.record_for_pod(
        session, principal, pod, "copy_restore_kit.read", detail, client_address(request)
    )
    return kit
