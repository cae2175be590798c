"""Issue 17.4: a restore's safety snapshot is pinned for PODBACKUP_RESTORE_UNDO_DAYS, and
`POST /v1/restores/{job_id}/undo` puts the pod back as it was before the restore: files
(those the restore added gone) and database rows. The undo is undoable in turn. Real SFTP
server, PostgreSQL, restic and worker."""

from __future__ import annotations

import shutil
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import delete, select

from app.integrations.dumps import DbEndpoint
from app.models import AuditEvent, Job, Snapshot
from app.models.kinds import JobKind, JobStatus
from app.models.shapes import JobError, JobParams
from tests.backups.helpers import (
    backup,
    build_pod_tree,
    create_pod,
    database_spec,
    restore,
    sftp_files,
    tree_state,
    wait_job,
)
from tests.conftest import Tenant, auth
from tests.fixtures.sftp import SftpServerHandle
from tests.fixtures.worker import WorkerProcess
from tests.restores.content import pg_connect, pg_rows, seed_pg


async def undo(client: httpx.AsyncClient, tenant: Tenant, job_id: str) -> httpx.Response:
    return await client.post(f"/v1/restores/{job_id}/undo", headers=tenant.headers)


async def snapshot_row(app: FastAPI, snapshot_id: str) -> Snapshot:
    async with app.state.sessionmaker() as session:
        row = await session.scalar(select(Snapshot).where(Snapshot.id == snapshot_id))
        assert row is not None
        return row


def change_files(root: Path) -> None:
    (root / "data" / "readme.md").write_text("edited after the backup\n")
    (root / "app" / "run.sh").unlink()  # the restore brings it back; the undo removes it
    (root / "uploads" / "later.txt").write_text("made after the backup\n")
    (root / "app" / "secret.key").chmod(0o640)


@pytest.mark.timeout(300)
async def test_undo_puts_files_and_database_back_and_can_be_undone(
    app: FastAPI,
    client: httpx.AsyncClient,
    admin_token: str,
    tenant: Tenant,
    other_tenant: Tenant,
    sftp_server: SftpServerHandle,
    pg_pod: DbEndpoint,
    worker: WorkerProcess,
    tmp_path: Path,
) -> None:
    root = sftp_server.root
    build_pod_tree(root, big_mb=1)
    await seed_pg(pg_pod)
    pod = await create_pod(
        client,
        tenant.headers,
        files=sftp_files(sftp_server),
        database=database_spec(pg_pod),
        target={"kind": "local", "path": str(tmp_path / "repo")},
        target_headers=auth(admin_token),
    )
    job = await backup(client, tenant.headers, pod["id"])
    assert job["status"] == "succeeded", (job, worker.logs()[-3000:])
    old = job["result"]["snapshot_id"]

    # The pod lives on: files and rows change after the backup.
    change_files(root)
    conn = await pg_connect(pg_pod)
    try:
        await conn.execute(
            "INSERT INTO notes (id, title) VALUES (500, 'written later'); "
            "CREATE TABLE later (x int); INSERT INTO later VALUES (7)"
        )
    finally:
        await conn.close()
    before_files, before_rows = tree_state(root), await pg_rows(pg_pod)

    done = await restore(client, tenant.headers, pod["id"], old)  # merge, files and database
    assert done["status"] == "succeeded", (done, worker.logs()[-3000:])
    restored_files = tree_state(root)
    assert restored_files != before_files
    assert "app/run.sh" in restored_files
    assert "later" not in await pg_rows(pg_pod)
    safety = done["result"]["safety_snapshot_id"]
    assert safety
    # The safety snapshot is pinned for the undo window (7 days by default).
    row = await snapshot_row(app, safety)
    assert row.pinned
    assert row.pinned_by == "restore"
    assert row.pin_note == f"safety before restore {done['id'][:8]}"
    assert row.pinned_until is not None
    left = row.pinned_until - datetime.now(UTC)
    assert timedelta(days=6, hours=23) < left <= timedelta(days=7)

    # Another account cannot undo it (nor see it).
    r = await undo(client, other_tenant, done["id"])
    assert r.status_code == 404, r.text

    r = await undo(client, tenant, done["id"])
    assert r.status_code == 202, r.text
    assert r.headers["Location"] == f"/v1/jobs/{r.json()['id']}"
    params = r.json()["params"]
    assert params["undo_of"] == done["id"]
    assert params["snapshot_id"] == safety
    assert params["mode"] == "mirror"
    assert params["database"] is True
    undone = await wait_job(client, tenant.headers, r.json()["id"], 120)
    assert undone["status"] == "succeeded", (undone, worker.logs()[-3000:])
    assert undone["result"]["undo_of"] == done["id"]
    # Exactly as before the restore: the file the restore added is gone again, the
    # edits are back, the rows and the table written after the backup too.
    assert tree_state(root) == before_files
    assert await pg_rows(pg_pod) == before_rows
    audit = await client.get(
        f"/v1/pods/{pod['id']}/audit", params={"action": "restore.undo"}, headers=tenant.headers
    )
    assert audit.status_code == 200, audit.text
    events = [e for e in audit.json()["items"] if e["action"] == "restore.undo"]
    assert len(events) == 1
    assert events[0]["detail"]["undo_of"] == done["id"]

    # The undo took its own safety snapshot: undoing it is the restore again.
    assert undone["result"]["safety_snapshot_id"] not in (None, safety)
    r = await undo(client, tenant, undone["id"])
    assert r.status_code == 202, r.text
    redone = await wait_job(client, tenant.headers, r.json()["id"], 120)
    assert redone["status"] == "succeeded", (redone, worker.logs()[-3000:])
    assert tree_state(root) == restored_files
    assert "later" not in await pg_rows(pg_pod)


@pytest.mark.timeout(240)
async def test_undo_refuses_what_it_cannot_undo(
    app: FastAPI,
    client: httpx.AsyncClient,
    admin_token: str,
    tenant: Tenant,
    sftp_server: SftpServerHandle,
    worker: WorkerProcess,
    tmp_path: Path,
) -> None:
    root = sftp_server.root
    build_pod_tree(root)
    pod = await create_pod(
        client,
        tenant.headers,
        files=sftp_files(sftp_server),
        target={"kind": "local", "path": str(tmp_path / "repo")},
        target_headers=auth(admin_token),
    )
    job = await backup(client, tenant.headers, pod["id"])
    assert job["status"] == "succeeded", (job, worker.logs()[-3000:])
    snap = job["result"]["snapshot_id"]

    async def refused(job_id: str, status: int, words: str) -> dict[str, Any]:
        r = await undo(client, tenant, job_id)
        assert r.status_code == status, r.text
        body: dict[str, Any] = r.json()
        assert words in body["detail"], body
        assert body["hint"], body
        return body

    # Not a restore; a preview; a restore without a safety backup; a failed restore.
    await refused(job["id"], 409, "not a restore")
    preview = await restore(client, tenant.headers, pod["id"], snap, dry_run=True)
    assert preview["status"] == "succeeded", preview
    await refused(preview["id"], 409, "preview")
    bare = await restore(client, tenant.headers, pod["id"], snap, safety_backup=False)
    assert bare["status"] == "succeeded", bare
    body = await refused(bare["id"], 409, "no safety snapshot")
    assert body["error"] == "NotUndoable"
    # A restore that failed after its safety backup (written as the worker ends one).
    async with app.state.sessionmaker() as session, session.begin():
        failed = Job(
            pod_id=uuid.UUID(pod["id"]),
            account_id=tenant.account_id,
            kind=JobKind.RESTORE,
            status=JobStatus.FAILED,
            params=JobParams(snapshot_id=snap, source_pod_id=pod["id"]),
            result={"safety_snapshot_id": snap},
            error=JobError(code="restore_incomplete", message="x"),
        )
        session.add(failed)
    await refused(str(failed.id), 409, "failed, not succeeded")
    r = await client.post(f"/v1/restores/{'0' * 8}-0000-0000-0000-{'0' * 12}/undo",
                          headers=tenant.headers)  # fmt: skip
    assert r.status_code == 404, r.text

    # The safety snapshot forgotten (retention after its pin ended): 410.
    done = await restore(client, tenant.headers, pod["id"], snap)
    assert done["status"] == "succeeded", done
    async with app.state.sessionmaker() as session, session.begin():
        await session.execute(
            delete(Snapshot).where(Snapshot.id == done["result"]["safety_snapshot_id"])
        )
    body = await refused(done["id"], 410, "forgotten")
    assert body["error"] == "SafetySnapshotGone"
    # Nothing was started by any of these.
    jobs = (await client.get(f"/v1/pods/{pod['id']}/jobs", headers=tenant.headers)).json()
    assert not [j for j in jobs["items"] if (j["params"] or {}).get("undo_of")]
    async with app.state.sessionmaker() as session:
        actions = (await session.scalars(select(AuditEvent.action))).all()
    assert "restore.undo" not in actions


@pytest.mark.parametrize("source", ["local", "sftp"])
@pytest.mark.timeout(240)
async def test_undo_of_a_partial_restore_removes_the_folder_it_brought_back(
    source: str,
    client: httpx.AsyncClient,
    admin_token: str,
    tenant: Tenant,
    sftp_server: SftpServerHandle,
    worker: WorkerProcess,
    tmp_path: Path,
) -> None:
    """The restored path is not in the safety snapshot (the pod had lost it): the undo's
    mirror removes it again, and leaves everything outside the path alone."""
    if source == "local":
        root = tmp_path / "pod"
        files: dict[str, Any] = {"kind": "local", "path": str(root)}
        headers, extra = auth(admin_token), {"account_id": tenant.account_id}
    else:
        root = sftp_server.root
        files, headers, extra = sftp_files(sftp_server), tenant.headers, {}
    build_pod_tree(root)
    pod = await create_pod(
        client,
        headers,
        files=files,
        target={"kind": "local", "path": str(tmp_path / "repo")},
        target_headers=auth(admin_token),
        **extra,
    )
    job = await backup(client, tenant.headers, pod["id"])
    assert job["status"] == "succeeded", (job, worker.logs()[-3000:])
    shutil.rmtree(root / "uploads" / "2024")
    (root / "data" / "readme.md").write_text("outside the restored path\n")
    before = tree_state(root)

    done = await restore(
        client, tenant.headers, pod["id"], job["result"]["snapshot_id"], paths=["uploads/2024"]
    )
    assert done["status"] == "succeeded", (done, worker.logs()[-3000:])
    assert (root / "uploads" / "2024" / "photo.bin").exists()
    r = await undo(client, tenant, done["id"])
    assert r.status_code == 202, r.text
    assert r.json()["params"]["paths"] == ["uploads/2024"]
    undone = await wait_job(client, tenant.headers, r.json()["id"], 120)
    assert undone["status"] == "succeeded", (undone, worker.logs()[-3000:])
    assert not (root / "uploads" / "2024").exists()
    after = tree_state(root)
    # `uploads` itself: its mtime changed when its child went (a partial restore leaves
    # the folders above its paths alone)
    after.pop("uploads"), before.pop("uploads")
    assert after == before
