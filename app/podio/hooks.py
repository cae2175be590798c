"""The pod's stop and start hooks around work that needs it quiet (SQLite/Mongo pods)."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import AsyncIterator
from typing import Any

from app.engine.context import JobContext
from app.integrations import hooks
from app.kit.netpolicy import Policy
from app.models import Job, Pod
from app.models.shapes import PodHooks


def _hook_payload(pod: Pod, job: Job) -> dict[str, Any]:
    return {"pod_id": str(pod.id), "job_id": str(job.id), "kind": job.kind}


@contextlib.asynccontextmanager
async def pod_stopped(ctx: JobContext, pod: Pod, policy: Policy) -> AsyncIterator[None]:
    """Call the pod's stop hook, and always its start hook afterwards, even on failure."""
    hook_urls = pod.hooks or PodHooks()
    keyring = ctx.services.keyring
    secret = hooks.hook_secret(
        ctx.settings.hook_secret.get_secret_value() if ctx.settings.hook_secret else None,
        keyring.keys[keyring.current],
    )
    call = functools.partial(
        hooks.call, secret=secret, policy=policy, timeout=ctx.settings.http_timeout_seconds
    )
    if hook_urls.stop_url:
        await ctx.phase("stopping pod")
        await call(hook_urls.stop_url, "stop", _hook_payload(pod, ctx.job))
    try:
        yield
    finally:
        if hook_urls.start_url:
            await ctx.phase("starting pod")
            await call(hook_urls.start_url, "start", _hook_payload(pod, ctx.job))
