"""Retention against a real S3 repository (moto) and a real worker: the preview is what the
prune job removes; owner-made snapshots stay; the newest successful snapshot survives."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from tests.backups.helpers import backup
from tests.conftest import Tenant
from tests.fixtures.s3 import S3ServerHandle
from tests.fixtures.sftp import SftpServerHandle
from tests.fixtures.worker import WorkerProcess
from tests.retention.helpers import PlainRestic, fill, kit_password, refresh, run_job, s3_pod


def _ago(days: int) -> str:
    return (datetime.now(UTC) - timedelta(days=days)).strftime("%Y-%m-%d %H:%M:%S")


def _ids(items: list[dict[str, Any]]) -> list[str]:
    return [s["id"] for s in items]


def _folder(tmp_path: Path) -> Path:
    folder = tmp_path / "by-hand"
    (folder / "files").mkdir(parents=True)
    (folder / "files" / "note.txt").write_text("made with plain restic\n")
    return folder


async def test_preview_equals_what_prune_removes_and_owner_snapshots_stay(
    client: httpx.AsyncClient,
    tenant: Tenant,
    sftp_server: SftpServerHandle,
    s3_server: S3ServerHandle,
    s3_bucket: str,
    worker: WorkerProcess,
    tmp_path: Path,
) -> None:
    fill(sftp_server.root)
    pod = await s3_pod(client, tenant, sftp_server, s3_server, s3_bucket)
    pod_id = pod["id"]
    first = await backup(client, tenant.headers, pod_id)
    assert first["status"] == "succeeded", (first, worker.logs()[-3000:])
    newest = first["result"]["snapshot_id"]

    owner = PlainRestic(s3_server, s3_bucket, await kit_password(client, tenant, pod_id), tmp_path)
    folder = _folder(tmp_path)
    tags = [f"pod:{pod_id}", "trigger:schedule"]
    made = {
        f"day{days}": owner.backup(folder, "files", host=pod_id, tags=tags, time=_ago(days))
        for days in (1, 2, 3, 4)
    }
    made["laptop"] = owner.backup(folder, "files", host="owners-laptop", tags=[], time=_ago(5))
    made["untagged"] = owner.backup(folder, "files", host=pod_id, tags=["by"], time=_ago(6))
    ids = owner.full_ids(**made)
    by_day = {days: ids[f"day{days}"] for days in (1, 2, 3, 4)}
    laptop, untagged = ids["laptop"], ids["untagged"]
    await refresh(client, tenant, pod_id)

    # A policy to try (nothing saved): two days are kept, older ones go.
    r = await client.post(
        f"/v1/pods/{pod_id}/retention/preview", json={"keep_daily": 2}, headers=tenant.headers
    )
    assert r.status_code == 200, r.text
    tried = r.json()
    assert tried["policy"] == {"keep_daily": 2}
    assert tried["scope"] == {
        "host": pod_id,
        "tag": f"pod:{pod_id}",
        "note": tried["scope"]["note"],
    }
    assert _ids(tried["keep"]) == [newest, by_day[1]]
    assert _ids(tried["remove"]) == [by_day[2], by_day[3], by_day[4]]
    assert sorted(_ids(tried["untouched"])) == sorted([laptop, untagged])
    assert tried["protected_snapshot_id"] == newest
    keep = {s["id"]: s for s in tried["keep"]}
    assert "daily snapshot" in keep[by_day[1]]["reasons"]
    assert "newest successful backup: never removed" in keep[newest]["reasons"]
    assert keep[newest]["status"] == "succeeded"
    assert all(s["reasons"] for s in tried["remove"] + tried["untouched"])

    # The stored policy gives the same plan once saved.
    r = await client.put(
        f"/v1/pods/{pod_id}/backup-settings",
        json={"retention": {"keep_daily": 2}},
        headers=tenant.headers,
    )
    assert r.status_code == 200, r.text
    r = await client.post(f"/v1/pods/{pod_id}/retention/preview", headers=tenant.headers)
    preview = r.json()
    assert _ids(preview["remove"]) == _ids(tried["remove"])
    assert _ids(preview["keep"]) == _ids(tried["keep"])

    job = await run_job(client, tenant, f"/v1/pods/{pod_id}/prune")
    assert job["status"] == "succeeded", (job, worker.logs()[-3000:])
    assert job["result"]["removed_ids"] == _ids(preview["remove"])
    assert job["result"]["pruned"] is True
    assert job["result"]["repository_size_bytes"] > 0

    left = {s["id"] for s in owner.snapshots()}
    assert left == {newest, by_day[1], laptop, untagged}
    listed = (await client.get(f"/v1/pods/{pod_id}/snapshots", headers=tenant.headers)).json()
    assert {s["id"] for s in listed["items"]} == left
    status = (await client.get(f"/v1/pods/{pod_id}/status", headers=tenant.headers)).json()
    assert status["snapshot_count"] == 4
    assert status["last_snapshot_id"] == newest
    assert status["repository_size_bytes"] == job["result"]["repository_size_bytes"]

    # Nothing left to forget: the next prune forgets nothing and skips the prune itself.
    again = await run_job(client, tenant, f"/v1/pods/{pod_id}/prune")
    assert again["status"] == "succeeded"
    assert again["result"]["removed_ids"] == []
    assert again["result"]["pruned"] is False


async def test_newest_successful_survives_keep_last_1_with_a_newer_partial(
    client: httpx.AsyncClient,
    tenant: Tenant,
    sftp_server: SftpServerHandle,
    s3_server: S3ServerHandle,
    s3_bucket: str,
    worker: WorkerProcess,
    tmp_path: Path,
) -> None:
    fill(sftp_server.root)
    pod = await s3_pod(client, tenant, sftp_server, s3_server, s3_bucket)
    pod_id = pod["id"]
    owner = PlainRestic(s3_server, s3_bucket, await kit_password(client, tenant, pod_id), tmp_path)
    good = await backup(client, tenant.headers, pod_id)
    assert good["status"] == "succeeded", (good, worker.logs()[-3000:])
    # a changed file the server now refuses to read: the next backup is partial
    (sftp_server.root / "data" / "blob.bin").write_bytes(b"changed" * 1000)
    sftp_server.deny_read = {"data/blob.bin"}
    partial = await backup(client, tenant.headers, pod_id)
    assert partial["status"] == "partial", partial
    older = owner.full_ids(
        older=owner.backup(
            _folder(tmp_path), "files", host=pod_id, tags=[f"pod:{pod_id}"], time=_ago(3)
        )
    )["older"]
    await refresh(client, tenant, pod_id)
    r = await client.put(
        f"/v1/pods/{pod_id}/backup-settings",
        json={"retention": {"keep_last": 1}},
        headers=tenant.headers,
    )
    assert r.status_code == 200, r.text

    preview = (
        await client.post(f"/v1/pods/{pod_id}/retention/preview", headers=tenant.headers)
    ).json()
    good_id, partial_id = good["result"]["snapshot_id"], partial["result"]["snapshot_id"]
    assert preview["policy"] == {"keep_last": 1}
    assert preview["protected_snapshot_id"] == good_id
    assert _ids(preview["keep"]) == [partial_id, good_id]
    kept = {s["id"]: s for s in preview["keep"]}
    assert kept[partial_id]["status"] == "partial"
    assert kept[good_id]["reasons"] == ["newest successful backup: never removed"]
    assert _ids(preview["remove"]) == [older]

    job = await run_job(client, tenant, f"/v1/pods/{pod_id}/prune")
    assert job["status"] == "succeeded", (job, worker.logs()[-3000:])
    assert job["result"]["removed_ids"] == [older]
    assert job["result"]["protected_snapshot_id"] == good_id
    assert {s["id"] for s in owner.snapshots()} == {good_id, partial_id}


async def test_preview_needs_settings_and_a_keep_rule(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    r = await client.post("/v1/pods", json={"name": "p", "app": "a"}, headers=tenant.headers)
    pod_id = r.json()["id"]
    r = await client.post(f"/v1/pods/{pod_id}/retention/preview", headers=tenant.headers)
    assert r.status_code == 409
    assert r.json()["error"] == "NotConfigured"
    assert r.json()["hint"]
    r = await client.post(f"/v1/pods/{pod_id}/prune", headers=tenant.headers)
    assert r.status_code == 409
    r = await client.post(
        f"/v1/pods/{pod_id}/retention/preview", json={"keep_last": 0}, headers=tenant.headers
    )
    assert r.status_code == 422
    r = await client.post(
        f"/v1/pods/{pod_id}/retention/preview", json={"keep_forever": 1}, headers=tenant.headers
    )
    assert r.status_code == 422
