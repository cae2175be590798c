"""Prune in lock mode against the real local S3 server (moto with IAM enforcement) and a real
worker: the backup key may not delete restic's data (only its lock files), so without a
maintenance key the prune job is refused before restic runs and nothing is forgotten; with
one, forget + prune run with it.

Why refuse rather than let restic try: restic 0.18 given a key that may not delete prints
"unable to remove snapshot/…" and still exits 0 after "1 snapshots have been removed", so a
job would record snapshots forgotten that the bucket kept.

The proof that the maintenance key was used is the bucket itself: the backup key is denied
s3:DeleteObject on snapshots/ (checked below), yet the forgotten snapshots are gone. A
maintenance key that may not delete either is caught too (``forget_refused``).
In an Object Lock bucket (the second test) moto behaves as AWS documents: restic's plain
DELETEs become delete markers, the locked versions stay, and deleting a version before its
retention ends is refused, even for the maintenance key (GOVERNANCE without the bypass
header, which restic never sends).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from botocore.exceptions import ClientError

from tests.backups.helpers import backup, sftp_files
from tests.conftest import Tenant
from tests.fixtures.s3 import S3ServerHandle, s3_iam_server  # noqa: F401
from tests.fixtures.sftp import SftpServerHandle
from tests.fixtures.worker import WorkerProcess
from tests.retention.helpers import PlainRestic, fill, kit_password, refresh, run_job

REPO_FOLDERS = ("data/*", "snapshots/*", "index/*", "keys/*", "config", ".podbackup-verify/*")


def _ago(days: int) -> str:
    return (datetime.now(UTC) - timedelta(days=days)).strftime("%Y-%m-%d %H:%M:%S")


@dataclass
class LockedPod:
    pod_id: str
    target: dict[str, Any]
    owner: PlainRestic
    newest: str
    old: set[str]  # two back-dated snapshots the policy removes


async def _lock_mode_pod(
    client: httpx.AsyncClient,
    tenant: Tenant,
    sftp_server: SftpServerHandle,
    s3: S3ServerHandle,
    bucket: str,
    key: str,
    secret: str,
    tmp_path: Path,
) -> LockedPod:
    """A pod in lock mode (1 day, no maintenance key) with one backup of its own and two
    snapshots back-dated by the owner (3 and 4 days), which retention removes."""
    fill(sftp_server.root)
    r = await client.post(
        "/v1/pods",
        json={"name": "wiki", "app": "wikijs", "files": sftp_files(sftp_server)},
        headers=tenant.headers,
    )
    assert r.status_code == 201, r.text
    pod_id = r.json()["id"]
    target = {
        "kind": "s3",
        "endpoint": s3.url,
        "bucket": bucket,
        "access_key_id": key,
        "secret_access_key": secret,
        "immutable": {"lock_days": 1},
    }
    r = await client.put(
        f"/v1/pods/{pod_id}/backup-settings",
        json={"target": target, "retention": {"keep_within_days": 1}},
        headers=tenant.headers,
    )
    assert r.status_code == 200, r.text

    # Backups run with the backup key (restic removes its own lock files under locks/).
    first = await backup(client, tenant.headers, pod_id)
    assert first["status"] == "succeeded", first
    newest = first["result"]["snapshot_id"]

    owner = PlainRestic(s3, bucket, await kit_password(client, tenant, pod_id), tmp_path)
    folder = tmp_path / "by-hand"
    (folder / "files").mkdir(parents=True)
    (folder / "files" / "note.txt").write_text("older\n")
    tags = [f"pod:{pod_id}"]
    made = {
        f"day{d}": owner.backup(folder, "files", host=pod_id, tags=tags, time=_ago(d))
        for d in (3, 4)
    }
    old = set(owner.full_ids(**made).values())
    await refresh(client, tenant, pod_id)
    assert {s["id"] for s in owner.snapshots()} == old | {newest}
    return LockedPod(pod_id, target, owner, newest, old)


async def test_prune_in_lock_mode_needs_the_maintenance_key_and_runs_with_it(
    client: httpx.AsyncClient,
    tenant: Tenant,
    sftp_server: SftpServerHandle,
    s3_iam_server: S3ServerHandle,  # noqa: F811
    worker: WorkerProcess,
    tmp_path: Path,
) -> None:
    s3 = s3_iam_server
    bucket = s3.create_bucket()
    key, secret = s3.create_key(bucket, deny=("s3:DeleteObject",), deny_under=REPO_FOLDERS)
    pod = await _lock_mode_pod(client, tenant, sftp_server, s3, bucket, key, secret, tmp_path)
    pod_id, target, owner, newest, old = pod.pod_id, pod.target, pod.owner, pod.newest, pod.old
    before = old | {newest}

    # The backup key really cannot delete restic's data.
    some = next(iter(old))
    with pytest.raises(ClientError, match="AccessDenied"):
        s3.client(key, secret).delete_object(Bucket=bucket, Key=f"snapshots/{some}")

    # No maintenance key: refused with its code, before restic; nothing forgotten.
    job = await run_job(client, tenant, f"/v1/pods/{pod_id}/prune")
    assert job["status"] == "failed", job
    assert job["error"]["code"] == "maintenance_key_missing"
    assert "maintenance_key" in job["error"]["hint"]
    assert {s["id"] for s in owner.snapshots()} == before
    listed = (await client.get(f"/v1/pods/{pod_id}/snapshots", headers=tenant.headers)).json()
    assert {s["id"] for s in listed["items"]} == before

    # A maintenance key that may not delete either: the job fails and the list stays true.
    weak, weak_secret = s3.create_key(bucket, deny=("s3:DeleteObject",), deny_under=REPO_FOLDERS)
    await _maintenance(client, tenant, pod_id, target, weak, weak_secret)
    job = await run_job(client, tenant, f"/v1/pods/{pod_id}/prune")
    assert job["status"] == "failed", job
    # restic 0.14 exits non-zero there (access_denied); 0.18 exits 0 and the job's own
    # listing after forget catches it (forget_refused).
    assert job["error"]["code"] in ("forget_refused", "access_denied"), job["error"]
    assert {s["id"] for s in owner.snapshots()} == before
    listed = (await client.get(f"/v1/pods/{pod_id}/snapshots", headers=tenant.headers)).json()
    assert {s["id"] for s in listed["items"]} == before

    # With a maintenance key that may delete, the prune job runs with it.
    m_key, m_secret = s3.create_key(bucket)
    await _maintenance(client, tenant, pod_id, target, m_key, m_secret)
    job = await run_job(client, tenant, f"/v1/pods/{pod_id}/prune")
    assert job["status"] == "succeeded", (job, worker.logs()[-3000:])
    assert sorted(job["result"]["removed_ids"]) == sorted(old)
    assert job["result"]["pruned"] is True
    # Gone from the bucket: only a key that may delete could have removed them.
    assert {s["id"] for s in owner.snapshots()} == {newest}
    assert not any(k.endswith(tuple(old)) for k in s3.keys(bucket, "snapshots/"))
    assert m_secret not in worker.logs()
    assert secret not in worker.logs()


async def _maintenance(
    client: httpx.AsyncClient,
    tenant: Tenant,
    pod_id: str,
    target: dict[str, Any],
    key: str,
    secret: str,
) -> None:
    """Give the lock-mode target a maintenance key (the backup key's secret kept)."""
    with_key = {k: v for k, v in target.items() if k != "secret_access_key"}
    with_key["immutable"] = {
        "lock_days": target["immutable"]["lock_days"],
        "maintenance_key": {"access_key_id": key, "secret_access_key": secret},
    }
    r = await client.put(
        f"/v1/pods/{pod_id}/backup-settings", json={"target": with_key}, headers=tenant.headers
    )
    assert r.status_code == 200, r.text


async def test_prune_in_a_locked_bucket_leaves_the_locked_versions(
    client: httpx.AsyncClient,
    tenant: Tenant,
    sftp_server: SftpServerHandle,
    s3_iam_server: S3ServerHandle,  # noqa: F811
    worker: WorkerProcess,
    tmp_path: Path,
) -> None:
    """What moto shows of Object Lock: restic's deletes become delete markers, the locked
    versions stay, and not even the maintenance key can remove a version early."""
    s3 = s3_iam_server
    bucket = s3.create_bucket(object_lock=True)
    s3.client().put_object_lock_configuration(
        Bucket=bucket,
        ObjectLockConfiguration={
            "ObjectLockEnabled": "Enabled",
            "Rule": {"DefaultRetention": {"Mode": "GOVERNANCE", "Days": 1}},
        },
    )
    key, secret = s3.create_key(bucket, deny=("s3:DeleteObject",), deny_under=REPO_FOLDERS)
    pod = await _lock_mode_pod(client, tenant, sftp_server, s3, bucket, key, secret, tmp_path)
    m_key, m_secret = s3.create_key(bucket)
    await _maintenance(client, tenant, pod.pod_id, pod.target, m_key, m_secret)

    job = await run_job(client, tenant, f"/v1/pods/{pod.pod_id}/prune")
    assert job["status"] == "succeeded", (job, worker.logs()[-3000:])
    assert sorted(job["result"]["removed_ids"]) == sorted(pod.old)
    assert {s["id"] for s in pod.owner.snapshots()} == {pod.newest}

    admin = s3.client()
    for ident in pod.old:
        found = admin.list_object_versions(Bucket=bucket, Prefix=f"snapshots/{ident}")
        assert len(found.get("DeleteMarkers", [])) == 1  # what restic's delete became
        versions = found.get("Versions", [])
        assert len(versions) == 1  # the snapshot's data is still there, locked
        with pytest.raises(ClientError, match="AccessDenied"):
            s3.client(m_key, m_secret).delete_object(
                Bucket=bucket, Key=versions[0]["Key"], VersionId=versions[0]["VersionId"]
            )
