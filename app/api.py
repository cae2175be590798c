"""Every router of the service, in one place."""

from __future__ import annotations

from fastapi import APIRouter

from app.accounts.endpoints import router as accounts_router
from app.audit.endpoints import router as audit_router
from app.backups.endpoints import router as backups_router
from app.checks.endpoints import router as checks_router
from app.copies.endpoints import router as copies_router
from app.exports.endpoints import router as exports_router
from app.health.endpoints import router as health_router
from app.history.endpoints import router as history_router
from app.jobs.endpoints import router as jobs_router
from app.platform.endpoints import router as platform_router
from app.pods.endpoints import audit_router as pod_audit_router
from app.pods.endpoints import router as pods_router
from app.restores.endpoints import router as restores_router
from app.retention.endpoints import router as retention_router
from app.snapshots.endpoints import router as snapshots_router
from app.status.endpoints import router as status_router
from app.storage.endpoints import router as storage_router
from app.targets.endpoints import providers_router
from app.targets.endpoints import router as targets_router
from app.webhooks.endpoints import router as webhooks_router

api_router = APIRouter()
# Routes match in order: the ones a control panel polls come first.
for router in (
    jobs_router,
    status_router,
    snapshots_router,
    history_router,
    health_router,
    accounts_router,
    pods_router,
    backups_router,
    storage_router,
    restores_router,
    exports_router,
    retention_router,
    checks_router,
    platform_router,
    targets_router,
    copies_router,
    providers_router,
    pod_audit_router,
    audit_router,
    webhooks_router,
):
    api_router.include_router(router)
