"""Expired exports: delete the archive, mark the row expired (the link already answers 410).

An archive the export bucket did not let us delete keeps its row ``ready`` (its link
answers 410 all the same), so the next sweep tries again: a plaintext copy of a pod is
never forgotten while it may still exist. The hourly orphan sweep deletes archives whose
export row is gone (a deleted pod or account takes its rows along) or failed."""

from __future__ import annotations

import logging
from datetime import timedelta

from app.db import commit
from app.engine.context import Services
from app.exports import repository, store
from app.integrations.s3 import S3Failure
from app.models.base import utcnow

log = logging.getLogger(__name__)


async def expire_exports(services: Services) -> int:
    now = utcnow()
    deleted = 0
    async with (
        services.sessionmaker() as session,
        store.deleter(services.settings) as delete,
    ):
        rows = await repository.lock_expired(session, now, limit=500)
        for export in rows:
            try:
                await delete(export.id, export.storage_key)
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


# An archive is uploaded before its row says ready; a job whose worker was taken for dead
# may still finish an upload. Younger archives are left alone.
ORPHAN_GRACE = timedelta(hours=1)


async def sweep_orphans(services: Services, grace: timedelta = ORPHAN_GRACE) -> int:
    """Delete stored archives no pending or ready export claims; returns how many."""
    settings = services.settings
    try:
        stored = await store.archives(settings)
    except S3Failure as exc:
        log.warning("export orphans: the export bucket cannot be listed: %s", exc)
        return 0
    cutoff = utcnow() - grace
    old = [(export_id, key) for export_id, key, modified in stored if modified < cutoff]
    async with services.sessionmaker() as session:
        live = await repository.live_ids(session, [export_id for export_id, _ in old])
    deleted = 0
    async with store.deleter(settings) as delete:
        for export_id, key in old:
            if export_id in live:
                continue
            try:
                await delete(export_id, key)
            except S3Failure as exc:
                log.warning("export %s: orphaned archive not deleted: %s", export_id, exc)
                continue
            deleted += 1
    if deleted:
        log.info("deleted %d orphaned export archive(s)", deleted)
    return deleted
