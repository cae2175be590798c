"""The second copy's rules: settings validated like the owner's target (the same resolver,
secrets sealed under the copy's own contexts), a password of its own, and the lag.

- The copy needs the pod's own backup settings (it is filled from that repository).
- It must be another place than the primary (another bucket, endpoint or folder).
- Another key (another provider) is fine: restic reads the primary through a re-signing
  gateway when the keys differ (``integrations.s3.gateway``).
- Deleting it destroys the copy's secret and password; the bucket is never touched.
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime
from typing import Any

from arq.connections import ArqRedis
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.dependencies import Principal
from app.config import Settings
from app.copies import repository
from app.copies.schemas import CopySettingsRead, CopySettingsWrite
from app.errors import NotFound, ValidationFailed
from app.jobs import service as jobs
from app.jobs.errors import PodBusy
from app.kit.crypto import Keyring, generate_password
from app.models import CopySettings, Pod
from app.models.encrypted import COPY_REPO_PASSWORD, COPY_TARGET_SECRET
from app.models.kinds import JobKind, Plan
from app.models.shapes import StoredRetention, StoredVerification
from app.plans import repository as plan_states
from app.pods import repository as pods
from app.status.schemas import CopyLag
from app.targets import service as owner
from app.targets.resolve import ResolvedTarget, resolve_target, stored_target
from app.targets.schemas import DEFAULT_RETENTION, RETENTION_KEYS, Prune, Retention, Verification

log = logging.getLogger(__name__)

NOT_SET_HINT = "set one with PUT /v1/pods/{pod_id}/copy-settings"


async def require_row(session: AsyncSession, pod_id: uuid.UUID) -> CopySettings:
    row = await repository.get(session, pod_id)
    if row is None:
        raise NotFound("this pod has no second copy", hint=NOT_SET_HINT)
    return row


async def save(
    session: AsyncSession,
    settings: Settings,
    keyring: Keyring,
    principal: Principal,
    pod_id: uuid.UUID,
    body: CopySettingsWrite,
) -> tuple[CopySettings, dict[str, Any]]:
    """Create or update the pod's second copy; the row and the audit detail."""
    await pods.lock(session, pod_id)
    primary = await owner.get_row(session, pod_id)
    if primary is None:
        raise ValidationFailed(
            "target",
            "a second copy needs the pod's own backup settings first",
            hint="save them with PUT /v1/pods/{pod_id}/backup-settings",
        )
    row = await repository.get(session, pod_id)
    if row is None and body.target is None:
        raise ValidationFailed("target", "the first save needs a target", hint="add 'target'")
    given = sorted(body.model_fields_set & {"target", "retention", "verification", "prune"})
    detail: dict[str, Any] = {"created": row is None, "sections": given}
    resolved = None
    if body.target is not None:
        if getattr(body.target, "immutable", None) is not None:
            raise ValidationFailed(
                "target.immutable",
                "lock mode is a setting of the pod's own target, not of its second copy",
                hint="leave 'immutable' out of the copy's target; an Object Lock bucket still "
                "works as a copy, pruned with the copy's key",
            )
        resolved = await resolve_target(settings, keyring, principal, body.target, row)
        if resolved.identity == owner.target_identity(primary.target_kind, primary.target):
            raise ValidationFailed(
                "target",
                "the second copy points at the primary's own bucket or folder",
                hint="use another bucket (or another provider) for the copy",
            )
    if row is None:
        assert resolved is not None
        row = CopySettings(
            pod_id=pod_id,
            repo_password=keyring.encrypt(generate_password(), COPY_REPO_PASSWORD.context(pod_id)),
            retention=StoredRetention(
                **DEFAULT_RETENTION, prune_interval_days=Prune().interval_days
            ),
            verification=StoredVerification(**Verification().model_dump()),
        )
        session.add(row)
    if resolved is not None:
        old = stored_target(keyring, row) if row.target_kind else None
        moved = old is None or old.identity != resolved.identity
        row.target_kind, row.target = resolved.kind, resolved.target
        if resolved.secret is None:
            row.target_secret = None
        elif old is None or old.secret != resolved.secret or not row.target_secret:
            row.target_secret = keyring.encrypt(resolved.secret, COPY_TARGET_SECRET.context(pod_id))
        if moved:
            row.repository_id, row.repository_initialized_at = None, None
        if old is None or old.target != resolved.target or old.secret != resolved.secret:
            row.verified_at, row.verified_ok = None, None
        detail["target"] = owner.audit_target(resolved)
        detail["repository_reset"] = moved and old is not None
    if body.retention is not None or body.prune is not None:
        update: dict[str, Any] = {}
        if body.retention is not None:
            update.update(body.retention.model_dump())
        if body.prune is not None:
            update["prune_interval_days"] = body.prune.interval_days
        row.retention = row.retention.model_copy(update=update)
    if body.verification is not None:
        row.verification = row.verification.model_copy(update=body.verification.model_dump())
    await session.flush()
    return row, detail


async def delete(session: AsyncSession, row: CopySettings) -> dict[str, Any]:
    detail = {
        "target": owner.audit_target(ResolvedTarget(row.target_kind, row.target)),
        "repository_id": row.repository_id,
    }
    await session.delete(row)
    await session.flush()
    return detail


def to_read(row: CopySettings) -> CopySettingsRead:
    kept = row.retention
    return CopySettingsRead(
        pod_id=row.pod_id,
        target=owner.read_target(row),
        repository=owner.repository_url(row.target_kind, row.target),
        repository_id=row.repository_id,
        initialized_at=row.repository_initialized_at,
        retention=Retention.model_construct(**{k: getattr(kept, k) for k in RETENTION_KEYS}),
        verification=Verification(
            enabled=row.verification.enabled,
            interval_days=row.verification.interval_days,
            read_data_subsets=row.verification.read_data_subsets,
        ),
        prune=Prune(interval_days=kept.prune_interval_days),
        verified_at=row.verified_at,
        verified_ok=row.verified_ok,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


async def queue_copy(
    session: AsyncSession, redis: ArqRedis, settings: Settings, pod: Pod, trigger: str
) -> bool:
    """A copy job for ``pod`` when it has a second copy (after a backup, or on request);
    whether one was created. Called when no other exclusive job of the pod is active."""
    if await repository.get(session, pod.id) is None:
        return False
    try:
        # The insert skips on conflict (no database error): a refusal leaves the caller's
        # transaction (a backup's finish) intact.
        _, created = await jobs.create(
            session,
            redis,
            settings,
            kind=JobKind.COPY,
            pod_id=pod.id,
            account_id=pod.account_id,
            trigger=trigger,
            plan=Plan.COPY,
        )
    except PodBusy:
        log.info("pod %s: another job is active; the next backup queues the copy", pod.id)
        return False
    return created


async def lag_of(session: AsyncSession, pod_id: uuid.UUID, now: datetime) -> CopyLag:
    rows = await plan_states.copy_lag(session, pod_id)
    state = await plan_states.get(session, pod_id, Plan.COPY)
    if not rows:
        return CopyLag(
            configured=False,
            snapshots_behind=0,
            seconds_behind=0.0,
            last_copy_at=None,
            last_status=None,
            alerted=False,
        )
    _, _, behind, oldest = rows[0]
    return CopyLag(
        configured=True,
        snapshots_behind=behind,
        seconds_behind=plan_states.seconds_behind(oldest, now),
        last_copy_at=state.last_success_at if state else None,
        last_status=state.last_status if state else None,
        alerted=bool(state and state.stale_alerted_at),
    )
