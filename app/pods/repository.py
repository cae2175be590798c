"""Every SQL query on pods and their backup settings rows."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import Select, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import BackupSettings, Pod
from app.models.base import utcnow


async def lock(session: AsyncSession, pod_id: uuid.UUID) -> None:
    """Lock the pod's row until the transaction ends (serialises writes per pod)."""
    await session.execute(select(Pod.id).where(Pod.id == pod_id).with_for_update())


async def account_of(session: AsyncSession, pod_id: uuid.UUID) -> uuid.UUID | None:
    """The pod's account by one indexed lookup of a column, no ORM object; None: no pod."""
    found: uuid.UUID | None = await session.scalar(select(Pod.account_id).where(Pod.id == pod_id))
    return found


async def named(session: AsyncSession, account_id: uuid.UUID, name: str) -> uuid.UUID | None:
    """The id of the account's pod called ``name``, if any."""
    stmt = select(Pod.id).where(Pod.account_id == account_id, Pod.name == name)
    found: uuid.UUID | None = await session.scalar(stmt)
    return found


async def flush_unique_name(session: AsyncSession) -> bool:
    """Flush; False when the unique index on (account, name) refused it (a concurrent
    create or rename won the name): the transaction is then lost, the caller raises."""
    try:
        await session.flush()
    except IntegrityError as exc:
        if "uq_pods_account_id_name" not in str(exc.orig):
            raise
        return False
    return True


def list_query(account_id: uuid.UUID | None) -> Select[tuple[Pod]]:
    """Pods by creation, of one account or (None) of all."""
    stmt = select(Pod).order_by(Pod.created_at, Pod.id)
    if account_id is not None:
        stmt = stmt.where(Pod.account_id == account_id)
    return stmt


async def mark_settings_verified(
    session: AsyncSession, row: BackupSettings, ok: bool, at: datetime
) -> None:
    """Record a verification on the settings row, unless its target or secret changed
    since ``row`` was read (then no row matches)."""
    await session.execute(
        update(BackupSettings)
        .where(
            BackupSettings.pod_id == row.pod_id,
            BackupSettings.target == row.target,
            BackupSettings.target_secret.is_not_distinct_from(row.target_secret),
        )
        .values(verified_at=at, verified_ok=ok)
        .execution_options(synchronize_session=False)
    )


async def pin_host_key(session: AsyncSession, pod_id: uuid.UUID, key_line: str) -> None:
    """Trust on first use: remember the SFTP host key after the first good connection."""
    await session.execute(
        update(Pod)
        .where(Pod.id == pod_id, Pod.pinned_host_key.is_(None))
        .values(pinned_host_key=key_line.strip(), pinned_host_key_at=utcnow())
    )
