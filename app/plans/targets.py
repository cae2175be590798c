"""Which repository a (pod, plan) backs up into: the owner's bucket from their settings, or
the operator's platform repository."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from app.config import Settings
from app.integrations.restic import Repository
from app.kit.crypto import Keyring
from app.models import BackupSettings, CopySettings, Pod
from app.models.kinds import Plan
from app.plans import platform
from app.plans.errors import NoBackupTarget, RepoAccess
from app.targets.repository import build_repository, ensure_repository
from app.targets.resolve import check_endpoint_now

Ensure = Callable[[RepoAccess], Awaitable[str | None]]

__all__ = ["Ensure", "NoBackupTarget", "RepoAccess", "Target", "resolve"]


@dataclass
class Target:
    repo: Repository
    ensure: Ensure  # initialise once / check it is the pod's repository; its id
    # Several pods back up into this repository (the platform's shared layout): backups
    # take the repository lock shared, maintenance exclusively.
    shared_by_pods: bool = False
    # The repository's id on record (owner plan; the platform's is not kept).
    recorded_id: str | None = None
    # A backup whose parent (the pod's last snapshot on record) restic loads proves the
    # target holds the pod's repository: `ensure` need not run before it. Not for an owner
    # target without a recorded repository (new settings: `ensure` may have to `init`).
    parent_proves: bool = True
    # The second copy (plan copy): the owner's repository it is copied from.
    source: Repository | None = None

    @property
    def recorded(self) -> bool:
        """Not a first backup: `ensure` only checks, so a backup may run it beside staging
        and restic instead of before them."""
        return self.recorded_id is not None


async def resolve(
    session: AsyncSession, settings: Settings, keyring: Keyring, pod: Pod, plan: str
) -> Target:
    """The repository of (pod, plan); usable from the API (downloads) and from workers.
    Raises `NoBackupTarget` when there is none."""
    if plan == Plan.OWNER:
        return await _owner_target(session, settings, keyring, pod)
    if plan == Plan.COPY:
        return await _copy_target(session, settings, keyring, pod)
    if plan == Plan.PLATFORM:
        repo = platform.platform_repository(settings, pod.id)

        async def _ensure(access: RepoAccess) -> str | None:
            return await platform.ensure(access, repo)

        return Target(
            repo=repo, ensure=_ensure, shared_by_pods=settings.platform_layout == "shared"
        )
    raise NoBackupTarget(
        "bad_plan", f"unknown plan '{plan}'", hint="use plan owner, copy or platform"
    )


async def _owner_target(
    session: AsyncSession, settings: Settings, keyring: Keyring, pod: Pod
) -> Target:
    row = await session.get(BackupSettings, pod.id)
    if row is None:
        raise NoBackupTarget(
            "not_configured",
            "the pod has no backup settings",
            hint="set a target with PUT /v1/pods/{pod_id}/backup-settings and verify it",
        )
    await check_endpoint_now(settings, row.target_kind, row.target)  # before restic connects
    cache = settings.cache_dir / "restic" / str(pod.id) / "owner"
    repo = build_repository(row, keyring, cache)
    pod_id = pod.id

    async def _ensure(access: RepoAccess) -> str | None:
        async with access.transaction() as s:
            current = await s.get(BackupSettings, pod_id)
            if current is None:
                raise NoBackupTarget("not_configured", "the backup settings were deleted")
            repository_id: str = await ensure_repository(s, access.restic, current, repo)
            return repository_id

    return Target(
        repo=repo,
        ensure=_ensure,
        recorded_id=row.repository_id,
        parent_proves=row.repository_id is not None,
    )


COPY_NOT_CONFIGURED_HINT = (
    "set a second copy with PUT /v1/pods/{pod_id}/copy-settings (the pod needs its own "
    "backup settings first)"
)


async def _copy_target(
    session: AsyncSession, settings: Settings, keyring: Keyring, pod: Pod
) -> Target:
    """The second copy's repository, with the owner's as its ``source``."""
    row = await session.get(CopySettings, pod.id)
    if row is None:
        raise NoBackupTarget(
            "copy_not_configured", "the pod has no second copy", hint=COPY_NOT_CONFIGURED_HINT
        )
    primary = await _owner_target(session, settings, keyring, pod)
    await check_endpoint_now(settings, row.target_kind, row.target)
    cache = settings.cache_dir / "restic" / str(pod.id) / "copy"
    repo = build_repository(row, keyring, cache)
    # Another key or region than the primary's: restic reads the primary through the
    # re-signing gateway (``Restic.source_env``).
    pod_id = pod.id
    source = primary.repo

    async def _ensure(access: RepoAccess) -> str | None:
        async with access.transaction() as s:
            current = await s.get(CopySettings, pod_id)
            if current is None:
                raise NoBackupTarget("copy_not_configured", "the copy settings were deleted")
            repository_id: str = await ensure_repository(
                s, access.restic, current, repo, copy_of=source
            )
            return repository_id

    return Target(
        repo=repo,
        ensure=_ensure,
        recorded_id=row.repository_id,
        parent_proves=False,
        source=source,
    )
