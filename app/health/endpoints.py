"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

import asyncio
import logging

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel

from app.errors import error_responses
from app.health import repository
from app.readcache import cache as readcache

router = APIRouter(tags=["health"])
log = logging.getLogger(__name__)


class Health(BaseModel):
    status: str


class Readiness(BaseModel):
    status: str
    checks: dict[str, str]


class NotReady(Readiness):
    """A 503 keeps the error envelope every 4xx/5xx has, plus the checks."""

    error: str = "ServiceUnavailable"
    detail: str
    hint: str | None = None


@router.get("/healthz", summary="Liveness: the process answers")
async def healthz() -> Health:
    return Health(status="ok")


async def _check_postgres(request: Request) -> str:
    async with request.app.state.engine.connect() as conn:
        await repository.ping(conn)
    return "ok"


async def _check_redis(request: Request) -> str:
    await request.app.state.redis.ping()
    return "ok"


@router.get(
    "/readyz",
    summary="Readiness: PostgreSQL and Redis reachable",
    responses={503: {"model": NotReady, "description": "A backing service is unreachable"}},
)
async def readyz(request: Request) -> JSONResponse:
    checks: dict[str, str] = {}
    for name, probe in (("postgres", _check_postgres), ("redis", _check_redis)):
        try:
            checks[name] = await asyncio.wait_for(probe(request), timeout=3)
        except Exception as exc:
            checks[name] = f"unreachable: {type(exc).__name__}"
    down = [name for name, v in checks.items() if v != "ok"]
    if not down:
        return JSONResponse(
            status_code=200, content=Readiness(status="ok", checks=checks).model_dump()
        )
    body = NotReady(
        status="unavailable",
        checks=checks,
        detail=f"unreachable: {', '.join(down)}",
        hint="start the service, or fix PODBACKUP_DATABASE_URL / PODBACKUP_REDIS_URL",
    )
    return JSONResponse(status_code=503, content=body.model_dump(), headers={"Retry-After": "5"})


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}}, **error_responses(503)},
)
async def metrics(request: Request) -> Response:
    cache = getattr(request.app.state, "read_cache", None)
    if cache is not None:
        readcache.export_metrics(cache)
    collector = getattr(request.app.state, "db_metrics", None)
    if collector is not None:
        try:
            await asyncio.wait_for(collector.refresh(), timeout=5)
        except Exception:  # the process's own metrics still matter when the database is down
            log.warning("metrics: could not read job gauges from the database")
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
