"""The trial restore of a check. The latest snapshot's database dump and a sample of its
files are restored from the repository with `restic restore --verify` (one run for the
dump, one for the files, so a problem is attributed to what it concerns). The dump is
compared with its SHA-256 recorded at backup time and loaded into a scratch database on
the drill server (tables and row counts as recorded at dump time); the sampled files are
compared with the browse index (see ``samples``).
"""

from __future__ import annotations

import asyncio
import re
import shutil
import uuid
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.checks import samples
from app.config import Settings
from app.engine.context import JobContext
from app.integrations.dumps import DumpError, read_manifest, trial_restore
from app.integrations.dumps.model import family
from app.integrations.restic import Repository
from app.models import Snapshot
from app.snapshots import repository as snapshots
from app.snapshots.dumps import recorded_dump

# Drill problems that are about the drill server, not about the dump: inconclusive.
_SERVER_SIDE = re.compile(
    r"^the dump did not restore \((unreachable|auth_failed|client_missing|client_too_old|"
    r"database_not_found|disk_full|timeout|canceled)\)"
)


def drill_url(settings: Settings, kind: str) -> str | None:
    return settings.drill_postgres_url if family(kind) == "postgres" else settings.drill_mysql_url


async def drill_dump(
    sql_file: Path,
    database: dict[str, Any],
    settings: Settings,
    *,
    cancel: asyncio.Event | None = None,
) -> dict[str, Any]:
    """Check a restored dump against what the backup recorded (``summary["database"]``):
    same SHA-256, then a trial restore with the recorded tables and row counts.

    ``ok``: True passed, False the dump is bad, None inconclusive (no drill server, or the
    drill server failed) — an inconclusive drill does not fail the check.
    """
    kind = str(database.get("kind") or "")
    report: dict[str, Any] = {
        "database": database.get("name"),
        "kind": kind,
        "bytes": sql_file.stat().st_size if sql_file.is_file() else None,
        "problems": [],
    }
    if not sql_file.is_file():
        return {**report, "ok": False, "problems": ["the dump was not restored"]}
    recorded = database.get("sha256")
    digest = await asyncio.to_thread(samples.sha256_file, sql_file)
    report["sha256"] = digest
    report["sha256_ok"] = digest == recorded if recorded else None
    if recorded and digest != recorded:
        report["problems"].append("the restored dump's SHA-256 differs from the one recorded")
    if not recorded or digest != recorded:
        # Loaded as the drill server's own login: only the dump the backup made and
        # recorded, never bytes that someone with the repository password put there.
        report["skipped"] = "the dump was not loaded: it is not the dump the backup recorded"
        manifest = await asyncio.to_thread(read_manifest, sql_file)  # reads, runs nothing
        if not manifest.complete and manifest.problem:
            report["problems"].append(manifest.problem)
        return {**report, "ok": False if report["problems"] else None}
    url = drill_url(settings, kind)
    if not url:
        variable = "POSTGRES" if family(kind) == "postgres" else "MYSQL"
        report["skipped"] = f"no drill server configured (PODBACKUP_DRILL_{variable}_URL)"
        return {**report, "ok": False if report["problems"] else None}
    expected = database.get("tables")
    try:
        drill = await trial_restore(
            sql_file,
            kind,
            url,
            expected=dict(expected) if isinstance(expected, dict) else None,
            timeout=settings.check_drill_timeout_seconds,
            cancel=cancel,
        )
    except DumpError as exc:
        report["skipped"] = f"the drill server is not usable: {exc.message}"
        return {**report, "ok": False if report["problems"] else None}
    report["tables"] = drill.tables
    report["seconds"] = round(drill.seconds, 2)
    if not drill.ok and drill.problems and all(_SERVER_SIDE.match(p) for p in drill.problems):
        report["skipped"] = "the drill server failed: " + "; ".join(drill.problems)
        return {**report, "ok": False if report["problems"] else None}
    report["problems"] += drill.problems
    report["ok"] = not report["problems"]
    return report


async def _latest(
    session: AsyncSession, pod_id: uuid.UUID | None, plan: str
) -> tuple[Snapshot | None, Snapshot | None]:
    """The newest snapshot the service made for the pod, and the newest with a dump."""
    return await snapshots.newest_made(session, pod_id, plan)


async def trial(
    ctx: JobContext, repo: Repository, seed: str, *, dump: bool = True
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(trial restore report, files report) of the pod's latest snapshots."""
    scratch = ctx.settings.cache_dir / "pods" / str(ctx.job.pod_id) / f"check-{ctx.job.id}"
    shutil.rmtree(scratch, ignore_errors=True)
    async with ctx.session() as session:
        latest, with_dump = await _latest(session, ctx.job.pod_id, ctx.job.plan)
        chosen: list[samples.Sample] = []
        if latest is not None and latest.index_status == "ready":
            chosen = await samples.from_index(
                session,
                latest,
                ctx.settings.check_sample_files,
                ctx.settings.check_sample_max_file_bytes,
                seed,
            )
    try:
        drill: dict[str, Any] = {"ok": None, "skipped": "not requested"}
        if dump:
            drill = await _dump(ctx, repo, with_dump, scratch / "dump")
        files = await _files(ctx, repo, latest, chosen, seed, scratch / "files")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return drill, files


async def _dump(
    ctx: JobContext, repo: Repository, snap: Snapshot | None, dest: Path
) -> dict[str, Any]:
    database = dict(recorded_dump(snap.summary) or {}) if snap else {}
    if snap is None or not database.get("file"):
        return {"ok": None, "skipped": "the pod's snapshots hold no database dump"}
    path = "/" + str(database["file"]).lstrip("/")
    await ctx.phase("trial restore: reading the dump")
    got = await samples.restore_verified(
        ctx.services.restic, repo, snap.id, [path], dest, cancel=ctx.cancel
    )
    await ctx.phase("trial restore: loading the dump")
    report = await drill_dump(dest / path.lstrip("/"), database, ctx.settings, cancel=ctx.cancel)
    report["snapshot_id"] = snap.id
    if not got.ok:
        report["problems"].insert(0, f"restic could not restore or verify the dump: {got.error}")
        report["ok"] = False
    report["damaged"] = got.damaged
    return report


async def _files(
    ctx: JobContext,
    repo: Repository,
    latest: Snapshot | None,
    chosen: list[samples.Sample],
    seed: str,
    dest: Path,
) -> dict[str, Any]:
    if latest is None:
        return {"ok": None, "skipped": "no snapshot made by the service yet", "sampled": 0}
    restic, settings = ctx.services.restic, ctx.settings
    source = "index"
    if latest.index_status != "ready":
        source = "restic ls"
        chosen = await samples.from_listing(
            restic,
            repo,
            latest.id,
            settings.check_sample_files,
            settings.check_sample_max_file_bytes,
            seed,
            cancel=ctx.cancel,
        )
    if not chosen:
        return {"ok": None, "skipped": "no file small enough to sample", "sampled": 0}
    await ctx.phase("trial restore: sample of files")
    got = await samples.restore_verified(
        restic, repo, latest.id, [s.path for s in chosen], dest, cancel=ctx.cancel
    )
    items, problems = await samples.compare(dest, chosen)
    if not got.ok:
        problems.insert(0, f"restic could not restore or verify the files: {got.error}")
    return {
        "ok": not problems,
        "snapshot_id": latest.id,
        "source": source,
        "sampled": len(chosen),
        "bytes": sum(s.size for s in chosen),
        "verified_by": "restic restore --verify (SHA-256 of every chunk) and the index size",
        "damaged": got.damaged,
        "problems": problems,
        "items": items,
    }
