"""Expired exports: delete the archive, mark the row expired (the link already answers 410)."""

from __future__ import annotations

import logging

from app.db import commit
from app.engine.context import Services
from app.exports import repository
from app.exports.store import store_path
from app.models.base import utcnow

log = logging.getLogger(__name__)


async def expire_exports(services: Services) -> int:
    now = utcnow()
    async with services.sessionmaker() as session:
        rows = await repository.lock_expired(session, now, limit=500)
        for export in rows:
            store_path(services.settings.export_path, export.id).unlink(missing_ok=True)
            export.status, export.deleted_at = "expired", now
        await commit(session)
    if rows:
        log.info("deleted %d expired export(s)", len(rows))
    return len(rows)
