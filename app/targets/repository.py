"""The pod's restic repository: how to open it, and making sure it is the pod's own.

For the backup engine:

- ``build_repository(row, keyring, cache_dir)``: a ``Repository`` (URL, password and the
  AWS_* variables in the child's env only).
- ``ensure_repository(session, restic, row, repo)``: initialise once (compressed where the
  restic version supports it) and record the id; afterwards confirm the target still
  holds that repository, else ``RepositoryMismatch`` (409).
"""

from __future__ import annotations

import uuid
from dataclasses import replace
from pathlib import Path

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.errors import Conflict
from app.integrations.restic import Repository, Restic, ResticError
from app.integrations.s3 import S3Access
from app.kit.crypto import Keyring
from app.models import PlanState, Snapshot
from app.models.base import utcnow
from app.models.kinds import Plan
from app.models.settings import TargetRow
from app.models.shapes import S3Place
from app.targets.resolve import (
    DEFAULT_SIGNING_REGION,
    ResolvedTarget,
    decrypt_password,
    repository_url,
    stored_target,
)

ONE_BUCKET_HINT = (
    "one bucket can only keep the backups of one pod: the target now holds another "
    "restic repository. Give this pod a bucket of its own (empty), or, if the bucket was "
    "emptied and re-used on purpose, delete and re-save the backup settings"
)

# Also the hint of verify's contents check: it reports what the next backup would fail with.
REPOSITORY_GONE_HINT = (
    "the bucket was emptied or the settings point elsewhere; if that is intended, delete "
    "and re-save the backup settings to start a new repository"
)


class RepositoryMismatch(Conflict):
    """The target holds a repository that is not the one recorded for this pod."""

    code = "repository_mismatch"
    message = "the target holds another restic repository"

    def __init__(self, message: str | None = None, *, hint: str | None = None) -> None:
        super().__init__(message, hint=hint or ONE_BUCKET_HINT)


def make_repository(resolved: ResolvedTarget, password: str, cache_dir: Path | None) -> Repository:
    """A restic Repository for a target as resolved (stored or typed, not yet saved)."""
    target = resolved.target
    url = repository_url(resolved.kind, target)
    env: dict[str, str] = {}
    s3 = None
    if resolved.kind == "s3" and isinstance(target, S3Place):
        region = target.signing_region or DEFAULT_SIGNING_REGION
        env = {
            "AWS_ACCESS_KEY_ID": target.access_key_id,
            "AWS_SECRET_ACCESS_KEY": resolved.secret or "",
            "AWS_DEFAULT_REGION": region,
        }
        s3 = S3Access(
            endpoint_url=f"{target.scheme or 'https'}://{target.endpoint}",
            bucket=target.bucket,
            region=region,
            access_key_id=target.access_key_id,
            secret_access_key=resolved.secret or "",
            path_style=target.path_style,
        )
    return Repository(url=url, password=password, env=env, cache_dir=cache_dir, s3=s3)


def maintenance_repository(repo: Repository, resolved: ResolvedTarget) -> Repository | None:
    """``repo`` opened with lock mode's maintenance key (the key that may delete) instead
    of the backup key; None when the target has no maintenance key."""
    target = resolved.target
    if not isinstance(target, S3Place) or not resolved.maintenance_secret:
        return None
    key_id = target.maintenance_access_key_id
    if not key_id:
        return None
    env = {
        **repo.env,
        "AWS_ACCESS_KEY_ID": key_id,
        "AWS_SECRET_ACCESS_KEY": resolved.maintenance_secret,
    }
    s3 = None
    if repo.s3 is not None:
        s3 = replace(repo.s3, access_key_id=key_id, secret_access_key=resolved.maintenance_secret)
    return replace(repo, env=env, s3=s3)


def build_repository(row: TargetRow, keyring: Keyring, cache_dir: Path) -> Repository:
    """The pod's repository, secrets decrypted into the child's environment only."""
    return make_repository(stored_target(keyring, row), decrypt_password(keyring, row), cache_dir)


async def ensure_repository(
    session: AsyncSession,
    restic: Restic,
    row: TargetRow,
    repo: Repository,
    *,
    copy_of: Repository | None = None,
) -> str:
    """The repository id, after making sure the target holds this pod's repository.

    No repository there: ``restic init`` (``--repository-version 2`` where supported) and
    record its id and time (flushed, not committed). One there: its id must equal the
    recorded one; one the pod's password does not open, or with another id, raises
    ``RepositoryMismatch``. Other restic failures propagate as ``ResticError``.
    ``copy_of``: the row is a second copy of that repository (``init --copy-chunker-params``).
    """
    try:
        found = await restic.repository_id(repo)
    except ResticError as exc:
        if exc.code == "wrong_password" and row.repository_id:
            raise  # ours before: the password no longer opens it (changed outside the service)
        if exc.code == "wrong_password":
            raise RepositoryMismatch(
                "the target holds a restic repository this pod's password does not open "
                "(another pod's or an unknown owner's)"
            ) from None
        if exc.code != "repository_not_found":
            raise
        if row.repository_id:
            # The recorded repository vanished (bucket emptied or replaced): starting a new
            # one silently would hide that the old snapshots are gone.
            raise RepositoryMismatch(
                f"the repository {row.repository_id[:8]} recorded for this pod is gone from "
                "the target",
                hint=REPOSITORY_GONE_HINT,
            ) from None
        # A second copy starts with its primary's chunker parameters (deduplication).
        new_id = await restic.init(repo, copy_of)
        row.repository_id, row.repository_initialized_at = new_id, utcnow()
        await session.flush()
        return new_id
    if row.repository_id and row.repository_id != found:
        raise RepositoryMismatch(
            f"the target holds repository {found[:8]}, not {row.repository_id[:8]} "
            "recorded for this pod"
        )
    if not row.repository_id:
        # A repository this pod's password opens (e.g. the target moved back): adopt it.
        row.repository_id, row.repository_initialized_at = found, utcnow()
        await session.flush()
    return found


async def owner_snapshot_count(session: AsyncSession, pod_id: uuid.UUID) -> int:
    """Snapshots on record from the pod's own repository (what a new target would orphan)."""
    n = await session.scalar(
        select(func.count())
        .select_from(Snapshot)
        .where(Snapshot.pod_id == pod_id, Snapshot.plan == Plan.OWNER)
    )
    return int(n or 0)


async def clear_target_state(session: AsyncSession, pod_id: uuid.UUID, plan: str) -> None:
    """Forget the watch's verdict on a target that was just changed (the next pass probes
    the new one at once)."""
    await session.execute(
        update(PlanState)
        .where(PlanState.pod_id == pod_id, PlanState.plan == plan)
        .values(
            target_state=None,
            target_code=None,
            target_reason=None,
            target_hint=None,
            target_since=None,
            target_checked_at=None,
        )
    )
