"""A restore's preview (``dry_run: true``): the snapshot's chosen paths restored into
scratch exactly as the restore does, then compared with the pod's files through the
writer's own access (``podio.write.compare_files``); the dump's manifest says what the
database load would replace. Nothing of the pod is written, stopped or loaded."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from app.engine.context import JobContext
from app.integrations.dumps import read_manifest
from app.integrations.treediff import LIMIT, TreeDiff
from app.kit.netpolicy import Policy
from app.models import Pod
from app.podio.write import compare_files
from app.pods.service import PodSecrets
from app.restores.paths import files_subpaths


async def build(
    ctx: JobContext,
    pod: Pod,
    secrets: PodSecrets,
    scratch: Path,
    *,
    want_files: bool,
    dump_file: Path | None,
    dump_check: dict[str, Any] | None,
) -> dict[str, Any]:
    """``job.result.preview``: the shape of ``app.restores.schemas.RestorePreview``."""
    params = ctx.job.params
    diff = TreeDiff()
    if want_files:
        diff = await compare_files(
            ctx,
            pod,
            secrets,
            scratch / "files",
            Policy.from_settings(ctx.settings),
            subpaths=files_subpaths(params.paths) or None,
            delete_extra=params.mode == "mirror",
        )
    preview = diff.result()
    preview["database"] = None
    if dump_file is not None and pod.database is not None:
        manifest = await asyncio.to_thread(read_manifest, dump_file)
        tables = sorted(manifest.tables)
        preview["database"] = {
            "dump_file": f"/database/{dump_file.name}",
            "target_database": pod.database.name,
            "kind": pod.database.kind,
            # The load replaces the whole database: what the dump lacks is dropped.
            "replaces": tables[:LIMIT],
            "rows": {t: manifest.tables[t] for t in tables[:LIMIT]},
            "tables_total": len(tables),
            "dump_complete": manifest.complete,
            "recorded": bool(dump_check and dump_check.get("recorded")),
        }
        if len(tables) > LIMIT:
            preview["truncated"] = True
    return preview
