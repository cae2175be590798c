"""Every router of the service, in one place."""

from __future__ import annotations

from fastapi import APIRouter

from app.accounts.endpoints import router as accounts_router
from app.health.endpoints import router as health_router
from app.pods.endpoints import router as pods_router

api_router = APIRouter()
for router in (health_router, accounts_router, pods_router):
    api_router.include_router(router)
