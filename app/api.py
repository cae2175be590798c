"""Every router of the service, in one place."""

from __future__ import annotations

from fastapi import APIRouter

from app.accounts.endpoints import router as accounts_router
from app.backups.endpoints import router as backups_router
from app.health.endpoints import router as health_router
from app.jobs.endpoints import router as jobs_router
from app.pods.endpoints import router as pods_router
from app.status.endpoints import router as status_router

api_router = APIRouter()
for router in (
    health_router,
    accounts_router,
    pods_router,
    backups_router,
    jobs_router,
    status_router,
):
    api_router.include_router(router)
