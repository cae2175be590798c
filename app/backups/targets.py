"""Which repository a (pod, plan) backs up into, and small state reads/writes around it."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from app.config import Settings
from app.engine.context import JobContext
from app.engine.errors import JobFailure
from app.errors import Conflict
from app.integrations.restic import Repository
from app.kit.crypto import Keyring
from app.models import BackupSettings, Pod
from app.models.base import utcnow
from app.status import repository as plan_states

Ensure = Callable[[JobContext], Awaitable[str | None]]


class NoBackupTarget(Conflict):
    """(pod, plan) has no repository to read or write. An app error with a stable ``code``:
    an API request answers 409 with the hint, and the job runner records the code (not
    retried) like any coded integration error."""

    message = "The pod has no backup target"

    def __init__(self, code: str, message: str, *, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.code = code


@dataclass
class Target:
    repo: Repository
    ensure: Ensure  # initialise once / check it is the pod's repository; its id
    # Several pods back up into this repository (the platform's shared layout): backups
    # take the repository lock shared, maintenance exclusively.
    shared_by_pods: bool = False
    # The repository's id is on record (not a first backup): `ensure` only checks, so a
    # backup may run it beside staging and restic instead of before them.
    recorded: bool = False


async def resolve(
    session: AsyncSession, settings: Settings, keyring: Keyring, pod: Pod, plan: str
) -> Target:
    """The repository of (pod, plan); usable from the API (downloads) and from workers."""
    if plan == "owner":
        return await _owner_target(session, settings, keyring, pod)
    if plan == "platform":
        from app.platform.target import PlatformNotConfigured, ensure, platform_repository

        try:
            repo = platform_repository(settings, pod.id)
        except PlatformNotConfigured as exc:
            raise NoBackupTarget(exc.code, exc.message, hint=exc.hint) from None

        async def _ensure(ctx: JobContext) -> str | None:
            return await ensure(ctx, repo)

        return Target(
            repo=repo, ensure=_ensure, shared_by_pods=settings.platform_layout == "shared"
        )
    raise NoBackupTarget("bad_plan", f"unknown plan {plan!r}", hint="use plan owner or platform")


async def _owner_target(
    session: AsyncSession, settings: Settings, keyring: Keyring, pod: Pod
) -> Target:
    from app.targets.repository import build_repository, ensure_repository

    row = await session.get(BackupSettings, pod.id)
    if row is None:
        raise NoBackupTarget(
            "not_configured",
            "the pod has no backup settings",
            hint="set a target with PUT /v1/pods/{pod_id}/backup-settings and verify it",
        )
    from app.targets.resolve import check_endpoint_now

    await check_endpoint_now(settings, row.target_kind, row.target)  # before restic connects
    cache = settings.cache_dir / "restic" / str(pod.id) / "owner"
    repo = build_repository(row, keyring, cache)
    pod_id = pod.id

    async def _ensure(ctx: JobContext) -> str | None:
        async with ctx.transaction() as s:
            current = await s.get(BackupSettings, pod_id)
            if current is None:
                raise JobFailure(
                    "not_configured", "the backup settings were deleted", retryable=False
                )
            repository_id: str = await ensure_repository(s, ctx.services.restic, current, repo)
            return repository_id

    return Target(repo=repo, ensure=_ensure, recorded=row.repository_id is not None)


async def last_snapshot_id(ctx: JobContext, pod_id: uuid.UUID | None, plan: str) -> str | None:
    if pod_id is None:
        return None
    async with ctx.session() as session:
        state = await plan_states.get(session, pod_id, plan)
        return state.last_snapshot_id if state else None


async def pin_host_key(session: AsyncSession, pod_id: uuid.UUID, key_line: str) -> None:
    """Trust on first use: remember the SFTP host key after the first good connection."""
    await session.execute(
        update(Pod)
        .where(Pod.id == pod_id, Pod.pinned_host_key.is_(None))
        .values(pinned_host_key=key_line.strip(), pinned_host_key_at=utcnow())
    )
