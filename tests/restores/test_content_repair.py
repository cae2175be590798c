"""Issue 13.1: a restore repairs content, not just size and mtime. Bytes changed in place
with the size kept and the mtime put back (bitrot, ransomware that keeps timestamps,
`cp -p`, `rsync -t`) are found by comparing content and rewritten, by merge and mirror
restores of local and SFTP pods; the result counts what was compared and rewritten.
Real worker, restic, local folders and an asyncssh SFTP server."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import httpx

from tests.backups.helpers import (
    backup,
    build_pod_tree,
    create_pod,
    diff_states,
    restore,
    sftp_files,
    tree_state,
)
from tests.conftest import Tenant, auth
from tests.fixtures.sftp import SftpServerHandle
from tests.fixtures.worker import WorkerProcess

QUIET = {"database": False, "safety_backup": False}


def rot(path: Path, offset: int = 0) -> None:
    """Flip one byte in place; size, mode and mtime (to the nanosecond) stay as they were."""
    st = path.lstat()
    with path.open("r+b") as fh:
        fh.seek(offset)
        byte = fh.read(1)
        fh.seek(offset)
        fh.write(bytes([byte[0] ^ 0xFF]))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


def damage(root: Path) -> list[str]:
    """Three files rotted in place (one in the middle of the big file), one file's mode
    changed (content intact). Returns the rotted paths."""
    rotted = ["app/secret.key", "uploads/2024/photo.bin", "data/big.bin"]
    rot(root / rotted[0])
    rot(root / rotted[1], 150_000)
    rot(root / rotted[2], (root / rotted[2]).stat().st_size // 2 + 7)
    (root / "app" / "run.sh").chmod(0o700)
    return rotted


def exact_times(root: Path) -> dict[str, tuple[int, int]]:
    """Mode and nanosecond mtime of every regular file."""
    out = {}
    for path in root.rglob("*"):
        st = path.lstat()
        if stat.S_ISREG(st.st_mode):
            out[str(path.relative_to(root))] = (stat.S_IMODE(st.st_mode), st.st_mtime_ns)
    return out


def regular_files(root: Path) -> int:
    return sum(1 for p in root.rglob("*") if p.is_file() and not p.is_symlink())


async def check_repairs(
    client: httpx.AsyncClient,
    tenant: Tenant,
    worker: WorkerProcess,
    pod_id: str,
    root: Path,
    written_key: str,
) -> None:
    want, times = tree_state(root), exact_times(root)
    total = regular_files(root)
    job = await backup(client, tenant.headers, pod_id)
    assert job["status"] == "succeeded", (job, worker.logs()[-3000:])
    snap = job["result"]["snapshot_id"]

    for mode in ("merge", "mirror"):
        rotted = damage(root)
        assert diff_states(want, tree_state(root))  # the damage is real
        if mode == "mirror":
            (root / "uploads" / "extra.txt").write_text("not in the snapshot\n")
        done = await restore(client, tenant.headers, pod_id, snap, mode=mode, **QUIET)
        assert done["status"] == "succeeded", (done, worker.logs()[-3000:])
        problems = diff_states(want, tree_state(root))
        assert not problems, (mode, problems)
        assert exact_times(root) == times
        files: dict[str, Any] = done["result"]["files"]
        assert files["files_total"] == total
        assert files["files_compared"] == total, files  # every file looked unchanged
        assert files["files_rewritten"] == len(rotted), files
        assert files[written_key] == len(rotted), files
        assert files["files_written"] == files["files_verified"] == len(rotted), files
        assert files["files_deleted"] == (1 if mode == "mirror" else 0), files

    # Nothing damaged: everything compared, nothing written.
    done = await restore(client, tenant.headers, pod_id, snap, **QUIET)
    assert done["status"] == "succeeded", done
    files = done["result"]["files"]
    assert (files["files_compared"], files["files_rewritten"], files["files_written"]) == (
        total,
        0,
        0,
    )


async def test_local_pod_restores_repair_content_with_size_and_mtime_kept(
    client: httpx.AsyncClient,
    admin_token: str,
    tenant: Tenant,
    tmp_path: Path,
    worker: WorkerProcess,
) -> None:
    root = tmp_path / "pod"
    build_pod_tree(root, big_mb=3)
    pod = await create_pod(
        client,
        auth(admin_token),
        account_id=tenant.account_id,
        files={"kind": "local", "path": str(root)},
        target={"kind": "local", "path": str(tmp_path / "repo")},
    )
    await check_repairs(client, tenant, worker, pod["id"], root, "files_linked")


async def test_sftp_pod_restores_repair_content_with_size_and_mtime_kept(
    client: httpx.AsyncClient,
    admin_token: str,
    tenant: Tenant,
    tmp_path: Path,
    sftp_server: SftpServerHandle,
    worker: WorkerProcess,
) -> None:
    root = sftp_server.root
    build_pod_tree(root, big_mb=3)
    pod = await create_pod(
        client,
        tenant.headers,
        files=sftp_files(sftp_server),
        target={"kind": "local", "path": str(tmp_path / "repo")},
        target_headers=auth(admin_token),
    )
    await check_repairs(client, tenant, worker, pod["id"], root, "files_uploaded")
