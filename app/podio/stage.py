"""Bring a pod's files and database into its staging folder:

    <stage>/files/…                 the pod's folder (SFTP mirror, or local hard links)
    <stage>/database/<name>.sql     a fresh dump

restic then runs with the working directory at <stage>, so the snapshot tree starts with
``files/`` and ``database/`` — what an owner sees with plain ``restic restore``.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from app.engine.context import JobContext, ProgressPump
from app.integrations import localfs
from app.integrations.dumps import dump
from app.integrations.sftp import MirrorProgress, mirror
from app.kit.netpolicy import Policy
from app.models import Pod
from app.models.shapes import SftpFiles
from app.podio.access import db_endpoint, sftp_endpoint
from app.pods.service import PodSecrets


@dataclass
class Staged:
    paths: list[str] = field(default_factory=list)  # relative to the stage: files, database
    files: dict[str, Any] | None = None
    database: dict[str, Any] | None = None
    unreadable: list[dict[str, str]] = field(default_factory=list)
    seen_host_key: str | None = None


def stage_dir(cache_dir: Path, pod_id: Any, plan: str) -> Path:
    return cache_dir / "pods" / str(pod_id) / plan / "stage"


def _mirror_progress(p: MirrorProgress) -> dict[str, Any]:
    return {
        "phase": f"files: {p.phase}",
        "files_done": p.files_done,
        "files_total": p.files_total,
        "bytes_done": p.bytes_done,
        "bytes_total": p.bytes_total,
        "percent": round(100 * p.bytes_done / p.bytes_total, 1) if p.bytes_total else None,
    }


def _local_progress(s: localfs.LocalStats) -> dict[str, Any]:
    return {"phase": "files: staging", "files_done": s.files_total, "bytes_done": s.bytes_total}


async def stage_files(
    ctx: JobContext, pod: Pod, secrets: PodSecrets, stage: Path, policy: Policy
) -> Staged:
    staged = Staged()
    files = pod.files
    target = stage / "files"
    if not files:
        shutil.rmtree(target, ignore_errors=True)
        return staged
    await ctx.phase("files")

    if isinstance(files, SftpFiles):
        async with ProgressPump(ctx, _mirror_progress) as pump:
            stats = await mirror(
                sftp_endpoint(pod, secrets), policy, target, on_progress=pump, cancel=ctx.cancel
            )
        staged.files = {
            "source": "sftp",
            "files_total": stats.files_total,
            "dirs_total": stats.dirs_total,
            "symlinks_total": stats.symlinks_total,
            "symlinks_skipped": stats.symlinks_skipped,  # also listed in `unreadable`
            "bytes_total": stats.bytes_total,
            "files_downloaded": stats.files_downloaded,
            "bytes_downloaded": stats.bytes_downloaded,
            "files_deleted": stats.files_deleted,
        }
        staged.unreadable = list(stats.unreadable)
        staged.seen_host_key = stats.host_key
    else:
        async with ProgressPump(ctx, _local_progress) as pump:
            local = await localfs.stage(
                Path(files.path),
                target,
                roots=ctx.settings.local_roots,
                on_progress=pump,
                cancel=ctx.cancel,
            )
        staged.files = {
            "source": "local",
            "files_total": local.files_total,
            "dirs_total": local.dirs_total,
            "symlinks_total": local.symlinks_total,
            "bytes_total": local.bytes_total,
            "files_linked": local.files_linked,
            "files_copied": local.files_copied,
        }
        staged.unreadable = list(local.unreadable)
    staged.paths.append("files")
    ctx.check_cancel()
    return staged


async def stage_database(
    ctx: JobContext, pod: Pod, secrets: PodSecrets, stage: Path, policy: Policy, staged: Staged
) -> None:
    folder = stage / "database"
    shutil.rmtree(folder, ignore_errors=True)  # only this run's dump may enter the snapshot
    if not pod.database:
        return
    await ctx.phase("database")
    folder.mkdir(parents=True, exist_ok=True)
    endpoint = db_endpoint(pod, secrets)
    async with ProgressPump(ctx, lambda n: {"phase": "database: dump", "bytes_done": n}) as pump:
        result = await dump(
            endpoint, policy, folder / f"{endpoint.name}.sql", on_progress=pump, cancel=ctx.cancel
        )
    staged.database = {
        "kind": endpoint.kind,
        "name": endpoint.name,
        "file": f"database/{endpoint.name}.sql",
        "bytes": result.bytes,
        "sha256": result.sha256,
        "server_version": result.server_version,
        "client": result.client,
        "tables": result.tables,
    }
    staged.paths.append("database")
    ctx.check_cancel()
