"""Every job kind's handler, in one table: the worker runs jobs from it (``Services.handlers``)."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from app.backups.pipeline import BackupHandler
from app.checks.jobs import CheckHandler
from app.copies.jobs import CopyHandler
from app.engine.context import Handler
from app.exports.jobs import ExportHandler
from app.models.kinds import JobKind
from app.restores.jobs import RestoreHandler
from app.retention.jobs import PruneHandler
from app.snapshots.jobs import IndexHandler, RefreshHandler

HANDLERS: Mapping[JobKind, Handler] = MappingProxyType(
    {
        JobKind.BACKUP: BackupHandler(),
        JobKind.RESTORE: RestoreHandler(),
        JobKind.EXPORT: ExportHandler(),
        JobKind.PRUNE: PruneHandler(),
        JobKind.CHECK: CheckHandler(),
        JobKind.REFRESH: RefreshHandler(),
        JobKind.INDEX: IndexHandler(),
        JobKind.COPY: CopyHandler(),
    }
)
