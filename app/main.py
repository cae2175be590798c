"""The FastAPI application: ``create_app()`` and its lifespan."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from arq.connections import ArqRedis
from fastapi import FastAPI
from redis.asyncio import ConnectionPool

from app.api import api_router
from app.apidoc import build as apidoc
from app.apidoc.overview import OVERVIEW, package_version
from app.auth.tokens import TokenCache
from app.config import Settings, get_settings
from app.db import make_engine, make_sessionmaker
from app.errors import install_error_handlers
from app.health.dbmetrics import DbMetrics
from app.integrations.dumps.clients import set_pg_bin_dir
from app.kit.apidocs import install_docs
from app.kit.crypto import Keyring
from app.kit.metrics import MetricsMiddleware
from app.kit.querycheck import RejectNul
from app.readcache.cache import ChangeListener, ReadCache, WritesMiddleware
from app.snapshots.download import DownloadSlots


def make_redis(settings: Settings) -> ArqRedis:
    """An arq-capable Redis client; it connects on first use, not here."""
    pool = ConnectionPool.from_url(
        settings.redis_url, socket_connect_timeout=3, socket_timeout=10, health_check_interval=30
    )
    return ArqRedis(connection_pool=pool)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if app.state.keyring is None:
            Keyring.from_settings(settings.secret_keys)  # raises with the fix in its message
        set_pg_bin_dir(settings.pg_bin_dir)  # the pod database check picks a client
        engine = make_engine(settings)
        app.state.engine = engine
        app.state.sessionmaker = make_sessionmaker(engine)
        app.state.db_metrics = DbMetrics(engine)
        app.state.redis = make_redis(settings)
        listener = ChangeListener(settings.database_url, app.state.read_cache, engine)
        app.state.change_listener = listener
        listener.start()
        try:
            yield
        finally:
            await listener.stop()
            await app.state.redis.aclose()
            await engine.dispose()

    app = FastAPI(
        title="podbackup",
        version=package_version(),
        description=OVERVIEW,
        lifespan=lifespan,
        docs_url=None,  # install_docs: the pages with their assets served from here
        redoc_url=None,
        openapi_tags=[
            {"name": "health", "description": "Liveness, readiness, metrics."},
            {"name": "accounts", "description": "Accounts and API tokens (admin)."},
            {"name": "pods", "description": "Pods: file source, database, hooks."},
            {"name": "backups", "description": "Trigger backups."},
            {"name": "jobs", "description": "Every long operation: progress, cancel, events."},
            {"name": "status", "description": "Backup overview of a pod."},
            {"name": "snapshots", "description": "Snapshots: list, browse, download."},
            {"name": "restores", "description": "Restore files and databases into pods."},
            {"name": "exports", "description": "One-time archives with expiring links."},
            {"name": "retention", "description": "Preview and apply the retention policy."},
            {"name": "checks", "description": "Repository checks and trial restores."},
            {"name": "platform", "description": "The operator's backups of every pod (admin)."},
            {"name": "webhooks", "description": "Signed event deliveries to your URLs."},
            {"name": "backup-settings", "description": "Target, schedule, retention, restore kit."},
            {"name": "providers", "description": "S3 provider presets and key-setup hints."},
            {"name": "audit", "description": "Audit trail of settings, verifications, kit reads."},
        ],
    )
    app.state.settings = settings
    app.state.download_slots = DownloadSlots(
        settings.download_concurrency,
        settings.download_per_account or max(1, settings.download_concurrency // 2),
    )
    app.state.auth_blocked = {}  # client address -> monotonic time its block ends
    app.state.token_cache = TokenCache(settings.token_cache_seconds)
    app.state.token_lookups = {}  # token hash -> the lookup running for it
    app.state.read_cache = ReadCache(settings.read_cache_seconds)
    app.state.keyring = (
        Keyring.from_settings(settings.secret_keys) if settings.secret_keys else None
    )
    install_error_handlers(app)
    app.add_middleware(WritesMiddleware, cache=app.state.read_cache)
    app.add_middleware(MetricsMiddleware, log_requests=settings.access_log)
    app.add_middleware(RejectNul)
    app.include_router(api_router)
    install_docs(app)
    apidoc.install(app)
    return app
