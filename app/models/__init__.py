"""All ORM models; importing this package registers every table on ``Base.metadata``."""

from app.models.account import Account, ApiToken
from app.models.audit import AuditEvent
from app.models.base import Base
from app.models.export import Export
from app.models.job import Job, JobEvent
from app.models.maintenance import RepositoryMaintenance
from app.models.pod import Pod
from app.models.settings import BackupSettings, CopySettings
from app.models.snapshot import Snapshot, SnapshotFile
from app.models.status import PlanState, RepoSizeSample
from app.models.webhook import Webhook, WebhookAttempt, WebhookDelivery

__all__ = [
    "Account",
    "ApiToken",
    "AuditEvent",
    "BackupSettings",
    "Base",
    "CopySettings",
    "Export",
    "Job",
    "JobEvent",
    "PlanState",
    "Pod",
    "RepoSizeSample",
    "RepositoryMaintenance",
    "Snapshot",
    "SnapshotFile",
    "Webhook",
    "WebhookAttempt",
    "WebhookDelivery",
]
