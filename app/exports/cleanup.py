"""Expired exports: delete the archive, mark the row expired (the link already answers 410)."""

from __future__ import annotations

import logging

from sqlalchemy import select

from app.db import commit
from app.engine.context import Services
from app.exports.jobs import store_path
from app.models import Export
from app.models.base import utcnow

log = logging.getLogger(__name__)


async def expire_exports(services: Services) -> int:
    now = utcnow()
    async with services.sessionmaker() as session:
        rows = (
            await session.scalars(
                select(Export)
                .where(Export.status == "ready", Export.expires_at < now)
                .with_for_update(skip_locked=True)
                .limit(500)
            )
        ).all()
        for export in rows:
            store_path(services.settings.export_path, export.id).unlink(missing_ok=True)
            export.status, export.deleted_at = "expired", now
        await commit(session)
    if rows:
        log.info("deleted %d expired export(s)", len(rows))
    return len(rows)
