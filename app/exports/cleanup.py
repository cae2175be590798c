"""Expired exports: delete the archive, mark the row expired (the link already answers 410).

An archive the export bucket did not let us delete keeps its row ``ready`` (its link
answers 410 all the same), so the next sweep tries again: a plaintext copy of a pod is
never forgotten while it may still exist."""

from __future__ import annotations

import logging

from app.db import commit
from app.engine.context import Services
from app.exports import repository, store
from app.integrations.s3 import S3Failure
from app.models.base import utcnow

log = logging.getLogger(__name__)


async def expire_exports(services: Services) -> int:
    now = utcnow()
    deleted = 0
    async with services.sessionmaker() as session:
        rows = await repository.lock_expired(session, now, limit=500)
        for export in rows:
            try:
                await store.delete(services.settings, export.id, export.storage_key)
            except (S3Failure, store.ExportStoreMissing) as exc:
                log.warning(
                    "export %s: archive not deleted, retried next sweep: %s", export.id, exc
                )
                if isinstance(exc, S3Failure) and exc.network:
                    break  # the bucket is unreachable: the rest would wait for it too
                continue
            export.status, export.deleted_at = "expired", now
            deleted += 1
        await commit(session)
    if deleted:
        log.info("deleted %d expired export(s)", deleted)
    return deleted
