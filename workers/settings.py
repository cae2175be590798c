"""arq WorkerSettings: `arq workers.settings.WorkerSettings` or `podbackup worker`."""

from __future__ import annotations

import logging
import os
import socket
from typing import Any, ClassVar

from arq import cron
from arq.typing import WorkerCoroutine

from app.config import get_settings
from app.db import make_engine, make_sessionmaker
from app.engine.context import Services
from app.handlers import HANDLERS
from app.integrations.dumps.clients import set_pg_bin_dir
from app.integrations.restic import Restic
from app.kit import subprocess as sp
from app.kit.cachedir import ensure_cache_dir
from app.kit.crypto import Keyring
from app.kit.netpolicy import Policy
from workers.context import WorkerContext
from workers.tasks.jobs import run_job
from workers.tasks.maintenance import expire_exports, reconcile_jobs, sweep_export_orphans
from workers.tasks.scheduler import schedule_tick
from workers.tasks.stale import detect_stale
from workers.tasks.watch import watch_targets
from workers.tasks.webhooks import deliver_webhooks
from workers.transport import resilient

log = logging.getLogger("workers")
_settings = get_settings()


def _every(seconds: int) -> set[int]:
    step = max(1, min(seconds, 60))
    return set(range(0, 60, step))


async def startup(ctx: WorkerContext) -> None:
    settings = get_settings()
    engine = make_engine(settings)
    restic = await Restic.detect(
        settings.restic_binary,
        grace=settings.job_cancel_grace_seconds,
        stall_seconds=settings.storage_stall_seconds,
        lock_wait_seconds=settings.restic_lock_wait_seconds,
        egress=Policy.from_settings(settings),
    )
    sp.set_argv_log(settings.argv_log)
    set_pg_bin_dir(settings.pg_bin_dir)
    ensure_cache_dir(settings.cache_dir)  # 0700: it holds every pod's files
    ctx["services"] = Services(
        settings=settings,
        engine=engine,
        sessionmaker=make_sessionmaker(engine),
        keyring=Keyring.from_settings(settings.secret_keys),
        restic=restic,
        redis=ctx["redis"],
        worker_id=f"{socket.gethostname()}:{os.getpid()}",
        handlers=HANDLERS,
    )
    if settings.worker_metrics_port:
        from prometheus_client import start_http_server

        start_http_server(settings.worker_metrics_port, addr=settings.worker_metrics_host)
    log.info("worker %s ready (restic %s)", ctx["services"].worker_id, restic.version.text)


async def shutdown(ctx: WorkerContext) -> None:
    services = ctx.get("services")
    if services is not None:
        await services.engine.dispose()


class WorkerSettings:
    functions: ClassVar[list[WorkerCoroutine | Any]] = [run_job]
    cron_jobs: ClassVar[list[Any]] = [
        cron(
            reconcile_jobs,  # type: ignore[arg-type]
            second=_every(_settings.reconcile_seconds),
            run_at_startup=True,
        ),
        cron(
            schedule_tick,  # type: ignore[arg-type]
            second=_every(_settings.scheduler_tick_seconds),
        ),
        cron(
            deliver_webhooks,  # type: ignore[arg-type]
            second=_every(_settings.webhook_interval_seconds),
        ),
        cron(expire_exports, second={7}),  # type: ignore[arg-type]
        cron(sweep_export_orphans, minute={37}, second={41}),  # type: ignore[arg-type]
        cron(detect_stale, second={23}),  # type: ignore[arg-type]
        # Each minute: a pass claims only the targets due (one indexed query when none is).
        cron(watch_targets, second={47}),  # type: ignore[arg-type]
    ]
    on_startup = startup
    on_shutdown = shutdown
    redis_settings = resilient(_settings.redis_url)  # survives Redis restarts
    queue_name = _settings.queue_name
    max_jobs = _settings.worker_concurrency
    poll_delay = 0.05  # seconds between queue polls (one cheap Redis call): pickup ~25 ms
    job_timeout = _settings.job_timeout_seconds + 600
    keep_result = 0
    max_tries = 1000  # attempts are counted in Postgres, not by arq
    health_check_interval = 30
    allow_abort_jobs = False
