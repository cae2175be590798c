"""Put a restored tree and a database dump back into a pod: files over SFTP (only what
differs) or into its local folder, the dump loaded into its database; and, for a restore
preview, what putting the files back would change (``compare_files``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from app.engine.context import JobContext, ProgressPump
from app.integrations import localdiff, localfs
from app.integrations.dumps import load
from app.integrations.sftp import MirrorProgress, upload
from app.integrations.sftp.compare import compare as sftp_compare
from app.integrations.treediff import TreeDiff
from app.kit.netpolicy import Policy
from app.models import Pod
from app.models.shapes import LocalFiles
from app.podio.access import db_endpoint, sftp_endpoint
from app.pods.repository import pin_host_key
from app.pods.service import PodSecrets


def _upload_progress(p: MirrorProgress) -> dict[str, Any]:
    return {
        "phase": f"files: {p.phase}",
        "files_done": p.files_done,
        "files_total": p.files_total,
        "bytes_done": p.bytes_done,
        "bytes_total": p.bytes_total,
    }


async def put_files(
    ctx: JobContext,
    pod: Pod,
    secrets: PodSecrets,
    src: Path,
    policy: Policy,
    *,
    subpaths: list[str] | None,
    delete_extra: bool,
) -> dict[str, Any]:
    """Write the tree at ``src`` into the pod's folder (``subpaths`` only, when given);
    ``delete_extra`` also removes what the tree does not hold."""
    await ctx.phase("files")
    src.mkdir(parents=True, exist_ok=True)
    files = pod.files
    if isinstance(files, LocalFiles):
        # The scratch restore is deleted afterwards: hard-link its files into the pod
        # (same filesystem) rather than write every byte a second time.
        stats = await localfs.push(
            src,
            Path(files.path),
            roots=ctx.settings.local_roots,
            subpaths=subpaths,
            delete_extra=delete_extra,
            cancel=ctx.cancel,
            link=True,
        )
        return {
            "files_total": stats.files_total,
            "files_compared": stats.files_compared,
            "files_rewritten": stats.files_rewritten,
            "files_written": stats.files_copied + stats.files_linked,
            "bytes_written": stats.bytes_copied + stats.bytes_linked,
            "files_verified": stats.files_verified,
            "files_copied": stats.files_copied,
            "bytes_copied": stats.bytes_copied,
            "files_linked": stats.files_linked,
            "files_deleted": stats.files_deleted,
        }
    async with ProgressPump(ctx, _upload_progress) as pump:
        up = await upload(
            sftp_endpoint(pod, secrets),
            policy,
            src,
            subpaths=subpaths,
            delete_extra=delete_extra,
            on_progress=pump,
            cancel=ctx.cancel,
        )
    if up.host_key and not pod.pinned_host_key:
        # A clone into a pod never backed up (or a restore without a safety backup) was
        # its first connection: trust on first use, as a backup does.
        async with ctx.transaction() as session:
            await pin_host_key(session, pod.id, up.host_key)
    return {
        "files_total": up.files_total,
        "files_compared": up.files_compared,
        "files_rewritten": up.files_rewritten,
        "files_written": up.files_uploaded,
        "bytes_written": up.bytes_uploaded,
        "files_verified": up.files_verified,
        "files_uploaded": up.files_uploaded,
        "bytes_uploaded": up.bytes_uploaded,
        "files_deleted": up.files_deleted,
    }


async def load_database(
    ctx: JobContext, pod: Pod, secrets: PodSecrets, dump_file: Path, policy: Policy
) -> dict[str, Any]:
    """Replace the pod's database with the dump."""
    await ctx.phase("database")
    endpoint = db_endpoint(pod, secrets)
    async with ProgressPump(ctx, lambda n: {"phase": "database: load", "bytes_done": n}) as pump:
        loaded = await load(
            endpoint, policy, dump_file, replace=True, on_progress=pump, cancel=ctx.cancel
        )
    return {
        "name": endpoint.name,
        "tables": loaded.tables,
        "seconds": loaded.seconds,
        "not_restored": loaded.not_restored,
    }


async def compare_files(
    ctx: JobContext,
    pod: Pod,
    secrets: PodSecrets,
    src: Path,
    policy: Policy,
    *,
    subpaths: list[str] | None,
    delete_extra: bool,
) -> TreeDiff:
    """What ``put_files`` with the same arguments would change in the pod's folder, read
    through the same access (local folder or SFTP) and written nowhere."""
    await ctx.phase("comparing files")
    src.mkdir(parents=True, exist_ok=True)
    files = pod.files
    if isinstance(files, LocalFiles):
        return await localdiff.compare(
            src,
            Path(files.path),
            roots=ctx.settings.local_roots,
            subpaths=subpaths,
            delete_extra=delete_extra,
            cancel=ctx.cancel,
        )
    return await sftp_compare(
        sftp_endpoint(pod, secrets),
        policy,
        src,
        subpaths=subpaths,
        delete_extra=delete_extra,
        cancel=ctx.cancel,
    )
