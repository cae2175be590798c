"""Backup settings rules: targets validated and normalised, secrets encrypted at rest.

Secret rules:

- ``secret_access_key`` is write-only; omitted on update it is kept while
  ``access_key_id`` stays the same (details in ``app.targets.resolve``).
- The repository password is generated on the first save and never changed silently:
  a target moved to another bucket or endpoint starts a new repository there with the
  same password (and ``repository_id`` is reset). Only deleting the settings (or the pod)
  destroys it; the next save then generates a new one.
- The bucket's data is the owner's: nothing here ever deletes objects.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.dependencies import Principal
from app.config import Settings
from app.errors import NotFound, ValidationFailed
from app.kit.crypto import Keyring, generate_password
from app.models import BackupSettings
from app.models.encrypted import MAINTENANCE_SECRET, REPO_PASSWORD, TARGET_SECRET
from app.models.kinds import Plan
from app.models.settings import TargetRow
from app.models.shapes import (
    LocalPlace,
    S3Place,
    StoredRetention,
    StoredSchedule,
    StoredVerification,
)
from app.pods import repository as pods
from app.targets import endpoint as ep
from app.targets import repository
from app.targets.resolve import (
    DEFAULT_SIGNING_REGION,
    ResolvedTarget,
    decrypt_password,
    repository_url,
    resolve_target,
    stored_target,
    target_identity,
)
from app.targets.schemas import (
    DEFAULT_RETENTION,
    RETENTION_KEYS,
    BackupSettingsRead,
    BackupSettingsWrite,
    ImmutableRead,
    LocalTargetRead,
    MaintenanceKeyRead,
    Prune,
    Retention,
    S3TargetRead,
    Schedule,
    Verification,
)

__all__ = [
    "DEFAULT_SIGNING_REGION",
    "ResolvedTarget",
    "decrypt_password",
    "delete",
    "get_row",
    "mark_verified",
    "repository_url",
    "require_row",
    "resolve_target",
    "save",
    "stored_target",
    "target_identity",
    "to_read",
]


async def get_row(session: AsyncSession, pod_id: uuid.UUID) -> BackupSettings | None:
    return await session.get(BackupSettings, pod_id)


async def require_row(session: AsyncSession, pod_id: uuid.UUID) -> BackupSettings:
    row = await get_row(session, pod_id)
    if row is None:
        raise NotFound(
            "this pod has no backup settings yet",
            hint="save them with PUT /v1/pods/{pod_id}/backup-settings",
        )
    return row


def audit_target(resolved: ResolvedTarget) -> dict[str, Any]:
    """What the audit log keeps of a target: never a secret."""
    t = resolved.target
    if isinstance(t, LocalPlace):
        return {"kind": "local", "path": t.path}
    keys = {"endpoint", "scheme", "bucket", "region", "provider", "access_key_id"}
    return {"kind": "s3", **t.model_dump(include=keys)}


async def save(
    session: AsyncSession,
    settings: Settings,
    keyring: Keyring,
    principal: Principal,
    pod_id: uuid.UUID,
    body: BackupSettingsWrite,
) -> tuple[BackupSettings, dict[str, Any]]:
    """Create or update the pod's settings; return the row and the audit detail."""
    # Serialise saves per pod (two first saves would otherwise race on the primary key).
    await pods.lock(session, pod_id)
    row = await get_row(session, pod_id)
    given = sorted(
        body.model_fields_set & {"target", "schedule", "retention", "verification", "prune"}
    )
    if row is None and body.target is None:
        raise ValidationFailed("target", "the first save needs a target", hint="add 'target'")
    detail: dict[str, Any] = {"created": row is None, "sections": given}
    resolved = None
    if body.target is not None:
        resolved = await resolve_target(settings, keyring, principal, body.target, row)
    if row is None:
        assert resolved is not None
        row = BackupSettings(
            pod_id=pod_id,
            repo_password=keyring.encrypt(generate_password(), REPO_PASSWORD.context(pod_id)),
            schedule=StoredSchedule(**Schedule().model_dump()),
            retention=StoredRetention(
                **DEFAULT_RETENTION, prune_interval_days=Prune().interval_days
            ),
            verification=StoredVerification(**Verification().model_dump()),
        )
        session.add(row)
    if resolved is not None:
        old = stored_target(keyring, row) if row.target_kind else None
        moved = old is None or old.identity != resolved.identity
        changed = (
            old is None
            or moved
            or old.target != resolved.target
            or old.secret != resolved.secret
            or old.maintenance_secret != resolved.maintenance_secret
        )
        row.target_kind = resolved.kind
        row.target = resolved.target
        if resolved.secret is None:
            row.target_secret = None
        elif old is None or old.secret != resolved.secret or not row.target_secret:
            row.target_secret = keyring.encrypt(resolved.secret, TARGET_SECRET.context(pod_id))
        if resolved.maintenance_secret is None:
            row.maintenance_secret = None
        elif (
            old is None
            or old.maintenance_secret != resolved.maintenance_secret
            or not row.maintenance_secret
        ):
            row.maintenance_secret = keyring.encrypt(
                resolved.maintenance_secret, MAINTENANCE_SECRET.context(pod_id)
            )
        if moved:
            row.repository_id, row.repository_initialized_at = None, None
        if changed:
            row.verified_at, row.verified_ok = None, None
            # The watch's verdict was on the old target (a fixed key must not stay
            # "credentials rejected" until the next probe).
            await repository.clear_target_state(session, pod_id, Plan.OWNER)
        detail["target"] = audit_target(resolved)
        detail["secret_changed"] = old is None or old.secret != resolved.secret
        if resolved.lock_days or (old is not None and old.lock_days):
            detail["lock_days"] = resolved.lock_days
            detail["maintenance_key_changed"] = (
                old is None or old.maintenance_secret != resolved.maintenance_secret
            )
        detail["repository_reset"] = moved and old is not None
    if body.schedule is not None:
        row.schedule = StoredSchedule(**body.schedule.model_dump())
    if body.retention is not None or body.prune is not None:
        update: dict[str, Any] = {}
        if body.retention is not None:
            update.update(body.retention.model_dump())
        if body.prune is not None:
            update["prune_interval_days"] = body.prune.interval_days
        row.retention = row.retention.model_copy(update=update)
    if body.verification is not None:
        row.verification = row.verification.model_copy(update=body.verification.model_dump())
    _check_lock_retention(row)
    await session.flush()
    return row, detail


def _check_lock_retention(row: BackupSettings) -> None:
    """In lock mode, retention keeps every snapshot younger than the lock period, so the
    prune job never tries to delete data the bucket still locks."""
    t = row.target
    if not isinstance(t, S3Place) or not t.lock_days:
        return
    within = row.retention.keep_within_days
    if within < t.lock_days:
        raise ValidationFailed(
            "retention.keep_within_days",
            f"lock mode keeps data {t.lock_days} day(s); retention keeps snapshots within "
            f"{within} day(s) only, so pruning would try to delete locked objects early",
            hint=f"set retention.keep_within_days to at least {t.lock_days} (in the same "
            "request), or lower target.immutable.lock_days",
        )


async def mark_verified(session: AsyncSession, row: BackupSettings, ok: bool, at: datetime) -> None:
    """Record a verification of the stored target, unless the target changed meanwhile."""
    await pods.mark_settings_verified(session, row, ok, at)


async def delete(session: AsyncSession, row: BackupSettings) -> dict[str, Any]:
    """Destroy the stored secret and password with the row. The bucket is not touched."""
    detail = {
        "target": audit_target(ResolvedTarget(row.target_kind, row.target)),
        "repository_id": row.repository_id,
    }
    await session.delete(row)
    await session.flush()
    return detail


def _immutable_read(row: BackupSettings, t: S3Place) -> ImmutableRead | None:
    if not t.lock_days:
        return None
    key = None
    if t.maintenance_access_key_id:
        key = MaintenanceKeyRead(
            access_key_id=t.maintenance_access_key_id,
            secret_access_key_set=bool(row.maintenance_secret),
        )
    return ImmutableRead(lock_days=t.lock_days, maintenance_key=key)


def read_target(row: TargetRow) -> S3TargetRead | LocalTargetRead:
    """A stored target as shown (the secret only as `secret_access_key_set`)."""
    t = row.target
    if isinstance(t, LocalPlace):
        return LocalTargetRead(kind="local", path=t.path)
    shown = t.endpoint if t.scheme == "https" else f"http://{t.endpoint}"
    return S3TargetRead(
        kind="s3",
        endpoint=shown,
        bucket=t.bucket,
        region=t.region or DEFAULT_SIGNING_REGION,
        provider=t.provider,
        provider_name=ep.PROVIDER_NAMES.get(t.provider, "S3"),
        path_style=t.path_style,
        access_key_id=t.access_key_id,
        secret_access_key_set=bool(row.target_secret),
        immutable=_immutable_read(row, t) if isinstance(row, BackupSettings) else None,
    )


def to_read(row: BackupSettings) -> BackupSettingsRead:
    t = row.target
    target = read_target(row)
    kept = row.retention
    retention = {k: getattr(kept, k) for k in RETENTION_KEYS}
    schedule, verification = row.schedule, row.verification
    return BackupSettingsRead(
        pod_id=row.pod_id,
        target=target,
        repository=repository_url(row.target_kind, t),
        repository_id=row.repository_id,
        initialized_at=row.repository_initialized_at,
        schedule=Schedule(
            enabled=schedule.enabled,
            window_start=schedule.window_start,
            window_end=schedule.window_end,
            timezone=schedule.timezone,
        ),
        retention=Retention.model_construct(**retention),
        verification=Verification(
            enabled=verification.enabled,
            interval_days=verification.interval_days,
            read_data_subsets=verification.read_data_subsets,
        ),
        prune=Prune(interval_days=kept.prune_interval_days),
        verified_at=row.verified_at,
        verified_ok=row.verified_ok,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )
