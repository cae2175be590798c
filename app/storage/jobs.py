"""The worker side of storage figures: measure a repository inside a job and record the
size with the job's end."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from app.engine.context import JobContext, JobOutcome
from app.integrations.restic import Repository
from app.storage.service import record_size


async def measure(ctx: JobContext, repo: Repository) -> int | None:
    """The repository's stored data size in bytes, or None (logged) when restic fails."""
    try:
        stats = await ctx.services.restic.stats(
            repo, mode="raw-data", cancel=ctx.cancel, timeout=ctx.settings.stats_timeout_seconds
        )
        return int(stats["total_size"])
    except Exception as exc:
        message = getattr(exc, "message", None) or type(exc).__name__
        try:
            await ctx.log(f"repository size not measured: {message}", level="warning")
        except Exception:  # the log line is a courtesy; the job's outcome matters more
            pass
        return None


async def with_size(ctx: JobContext, repo: Repository, outcome: JobOutcome) -> JobOutcome:
    """Measure the repository (after a backup's index, after a prune) and record the size
    in the transaction that finishes the job."""
    pod_id = ctx.job.pod_id
    if pod_id is None:
        return outcome
    await ctx.phase("measuring repository size")
    size = await measure(ctx, repo)
    if size is None:
        return outcome
    outcome.result["repository_size_bytes"] = size
    inner = outcome.finalize
    plan, settings = ctx.job.plan, ctx.settings

    async def finalize(session: AsyncSession) -> None:
        if inner is not None:
            await inner(session)
        await record_size(session, pod_id, plan, size, settings)

    outcome.finalize = finalize
    return outcome
