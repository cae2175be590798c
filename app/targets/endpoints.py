"""Backup settings per pod, their verification, the restore kit, and provider presets."""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import replace
from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, Request, status

from app.audit import service as audit
from app.auth.dependencies import AnyPrincipal, Principal, client_address
from app.config import Settings
from app.db import DbSession
from app.deps import KeyringDep, SettingsDep
from app.errors import NotFound, error_responses
from app.integrations.restic import Restic
from app.kit.crypto import Keyring
from app.kit.netpolicy import Policy
from app.models import BackupSettings, Pod
from app.models.base import utcnow
from app.pods.service import decrypt_secrets, get_visible
from app.scheduler import service as scheduler
from app.targets import providers, service
from app.targets import repository as target_rows
from app.targets.checks import VerifyInput
from app.targets.restore_kit import build_kit
from app.targets.schemas import (
    BackupSettingsRead,
    BackupSettingsWrite,
    Immutability,
    LocalTarget,
    ProvidersRead,
    RestoreKit,
    S3Target,
    Target,
    VerifyResult,
)
from app.targets.verify import verify_s3
from app.targets.verify_local import verify_local
from app.targets.verify_pod import verify_pod

log = logging.getLogger(__name__)

router = APIRouter(tags=["backup-settings"])
providers_router = APIRouter(tags=["providers"])

_VERIFY_EXAMPLE = {
    "kind": "s3",
    "endpoint": "s3.us-west-001.backblazeb2.com",
    "bucket": "my-pod-backup-1",
    "access_key_id": "0015a1b2c3d4e5f0000000001",
    "secret_access_key": "K001abcdefghijklmnopqrstuvwxyz0",
}


def _path(pod_id: uuid.UUID) -> str:
    return f"/v1/pods/{pod_id}/backup-settings"


async def _audit(
    session: DbSession,
    request: Request,
    principal: Principal,
    pod: Pod,
    action: str,
    detail: dict[str, Any],
) -> None:
    await audit.record_for_pod(session, principal, pod, action, detail, client_address(request))


@router.get(
    "/v1/pods/{pod_id}/backup-settings",
    summary="The pod's backup target, schedule, retention and verification",
    responses=error_responses(401, 404, 422),
)
async def get_settings(
    pod_id: uuid.UUID, principal: AnyPrincipal, session: DbSession
) -> BackupSettingsRead:
    pod = await get_visible(session, principal, pod_id)
    return service.to_read(await service.require_row(session, pod.id))


@router.put(
    "/v1/pods/{pod_id}/backup-settings",
    summary="Save the backup settings (the secret access key is write-only)",
    description=(
        "`target` is required the first time. Omitted sections keep their stored values "
        "(defaults on the first save). `secret_access_key` omitted keeps the stored one "
        "while `access_key_id` is unchanged. The repository password is generated on the "
        "first save and never changed; moving to another bucket resets `repository_id`."
    ),
    responses=error_responses(401, 403, 404, 422),
)
async def put_settings(
    pod_id: uuid.UUID,
    body: BackupSettingsWrite,
    principal: AnyPrincipal,
    session: DbSession,
    settings: SettingsDep,
    keyring: KeyringDep,
    request: Request,
) -> BackupSettingsRead:
    pod = await get_visible(session, principal, pod_id)
    row, detail = await service.save(session, settings, keyring, principal, pod.id, body)
    await scheduler.replan(session, pod.id)
    action = "backup_settings.create" if detail["created"] else "backup_settings.update"
    await _audit(session, request, principal, pod, action, detail)
    return service.to_read(row)


@router.delete(
    "/v1/pods/{pod_id}/backup-settings",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete the settings, destroying the stored secret and repository password",
    description="The bucket and its backups are the owner's and are never touched.",
    responses=error_responses(401, 404, 422),
)
async def delete_settings(
    pod_id: uuid.UUID, principal: AnyPrincipal, session: DbSession, request: Request
) -> None:
    pod = await get_visible(session, principal, pod_id)
    row = await service.require_row(session, pod.id)
    detail = await service.delete(session, row)
    await scheduler.replan(session, pod.id)
    await _audit(session, request, principal, pod, "backup_settings.delete", detail)


async def restic_for_verify(request: Request, settings: Settings) -> Restic | None:
    """restic for the contents check; its absence makes that check a warning, not a 500."""
    restic: Restic | None = getattr(request.app.state, "restic", None)
    if restic is None:
        try:
            restic = await Restic.detect(
                settings.restic_binary, egress=Policy.from_settings(settings)
            )
        except (OSError, RuntimeError, ValueError) as exc:
            log.warning("verify: restic is not available: %s", exc)
            return None
        request.app.state.restic = restic
    return restic


async def _verify_input(
    settings: Settings,
    keyring: Keyring,
    principal: Principal,
    row: BackupSettings | None,
    body: S3Target | LocalTarget | None,
    pod_id: uuid.UUID,
) -> tuple[VerifyInput, bool]:
    if body is None:
        resolved = service.stored_target(keyring, (row := await _need(row, pod_id)))
        saved = True
    else:
        resolved = await service.resolve_target(settings, keyring, principal, body, row)
        saved = False
    password = service.decrypt_password(keyring, row) if row is not None else None
    recorded = None
    if row is not None and service.target_identity(row.target_kind, row.target) == (
        resolved.identity
    ):
        recorded = row.repository_id
    cache = settings.cache_dir / "restic-verify"
    return VerifyInput(resolved, password, recorded, cache), saved


async def _need(row: BackupSettings | None, pod_id: uuid.UUID) -> BackupSettings:
    if row is None:
        raise NotFound(
            "this pod has no backup settings to verify",
            hint="send the target in the body to verify unsaved values, or save them first",
        )
    return row


@router.post(
    "/v1/pods/{pod_id}/backup-settings/verify",
    summary="Verify the target for real: a full round trip within the time budget",
    description=(
        "Without a body, verifies the stored settings and records the result "
        "(`verified_at`, `verified_ok`). With a body (the target as in PUT; an omitted "
        "secret means the stored one), verifies those values without saving anything. "
        "Every check is listed; `ok` is false only when an error-level check failed."
    ),
    responses=error_responses(401, 403, 404, 422),
)
async def verify_settings(
    pod_id: uuid.UUID,
    principal: AnyPrincipal,
    session: DbSession,
    settings: SettingsDep,
    keyring: KeyringDep,
    request: Request,
    body: Annotated[
        Target | None, Body(openapi_examples={"s3": {"value": _VERIFY_EXAMPLE}})
    ] = None,
) -> VerifyResult:
    pod = await get_visible(session, principal, pod_id)
    row = await service.get_row(session, pod.id)
    inp, saved = await _verify_input(settings, keyring, principal, row, body, pod.id)
    if inp.recorded_id:
        inp = replace(
            inp, recorded_snapshots=await target_rows.owner_snapshot_count(session, pod.id)
        )
    restic = await restic_for_verify(request, settings)
    # The target and the pod's own side (files, database) at once, each within the budget.
    found: list[Immutability] = []
    if inp.resolved.kind == "local":
        target_check = verify_local(settings, inp, restic)
    else:
        target_check = verify_s3(settings, inp, restic, found)
    pod_check = verify_pod(settings, pod, decrypt_secrets(keyring, pod))
    (ok, checks), (pod_ok, pod_checks) = await asyncio.gather(target_check, pod_check)
    ok, checks = ok and pod_ok, [*checks, *pod_checks]
    now = utcnow()
    if saved and row is not None:
        await service.mark_verified(session, row, ok, now)
        await scheduler.replan(session, pod.id)
    repository = service.repository_url(inp.resolved.kind, inp.resolved.target)
    await _audit(
        session,
        request,
        principal,
        pod,
        "backup_settings.verify",
        {
            "ok": ok,
            "saved": saved,
            "repository": repository,
            "failed": [c.name for c in checks if c.level == "error"],
            "warnings": [c.name for c in checks if c.level == "warning"],
        },
    )
    return VerifyResult(
        ok=ok,
        checks=checks,
        immutability=found[0] if found else None,
        repository=repository,
        saved=saved,
        verified_at=now,
    )


@router.get(
    "/v1/pods/{pod_id}/restore-kit",
    summary="Repository URL, password, env block and restic commands (audited)",
    description=(
        "The only response that contains the repository password. The S3 secret is never "
        "returned: the env block holds a placeholder for it."
    ),
    responses=error_responses(401, 404, 422),
)
async def restore_kit(
    pod_id: uuid.UUID,
    principal: AnyPrincipal,
    session: DbSession,
    keyring: KeyringDep,
    request: Request,
) -> RestoreKit:
    pod = await get_visible(session, principal, pod_id)
    row = await service.require_row(session, pod.id)
    kit = build_kit(row, keyring)
    await _audit(
        session, request, principal, pod, "restore_kit.read", {"repository": kit.repository}
    )
    return kit


@providers_router.get(
    "/v1/providers",
    summary="S3 provider presets: example endpoints and one-bucket key setup",
    responses=error_responses(401, 422),
)
async def list_providers(
    _: AnyPrincipal,
    bucket: Annotated[
        str | None,
        Query(max_length=256, description="Fill this bucket name into the key policies."),
    ] = None,
) -> ProvidersRead:
    return ProvidersRead(
        items=providers.presets(bucket.strip() if bucket else None),
        one_bucket_per_pod="One bucket can only keep the backups of one pod.",
        key_advice=providers.ONE_BUCKET_ADVICE,
    )
