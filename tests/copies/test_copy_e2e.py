"""A second copy end to end: S3 primary and S3 copy (two buckets of the local S3 server),
a backup, the copy job `restic copy` queues after it, the snapshots in both, then the
primary bucket deleted and the pod restored from the copy. Runs with whichever restic is
first on PATH (0.18 and the system 0.14 both)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import httpx

from tests.backups.helpers import (
    backup,
    build_pod_tree,
    diff_states,
    s3_target,
    tree_state,
    wait_job,
)
from tests.conftest import Tenant, auth
from tests.fixtures.s3 import S3ServerHandle
from tests.fixtures.worker import WorkerProcess


async def local_pod(
    client: httpx.AsyncClient, admin: dict[str, str], tenant: Tenant, root: Path
) -> dict[str, Any]:
    build_pod_tree(root)
    r = await client.post(
        "/v1/pods",
        json={
            "name": "copied",
            "app": "demo",
            "account_id": str(tenant.account_id),
            "files": {"kind": "local", "path": str(root)},
        },
        headers=admin,
    )
    assert r.status_code == 201, r.text
    pod: dict[str, Any] = r.json()
    return pod


async def wait_kind(
    client: httpx.AsyncClient, headers: dict[str, str], pod_id: str, kind: str, timeout: float = 120
) -> dict[str, Any]:
    """The pod's newest job of ``kind`` once it finished."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r = await client.get(f"/v1/jobs?pod_id={pod_id}&kind={kind}", headers=headers)
        assert r.status_code == 200, r.text
        items = r.json()["items"]
        if items:
            return await wait_job(client, headers, items[0]["id"], timeout)
        await asyncio.sleep(0.2)
    raise AssertionError(f"no {kind} job for pod {pod_id}")


def delete_bucket(s3: S3ServerHandle, bucket: str) -> None:
    s3.empty_bucket(bucket)
    s3.client().delete_bucket(Bucket=bucket)


async def test_copy_survives_the_primary_bucket(
    client: httpx.AsyncClient,
    admin_token: str,
    tenant: Tenant,
    tmp_path: Path,
    s3_server: S3ServerHandle,
    worker: WorkerProcess,
) -> None:
    admin, owner = auth(admin_token), auth(tenant.token)
    root = tmp_path / "pod"
    pod = await local_pod(client, admin, tenant, root)
    pod_id = pod["id"]
    primary, second = s3_server.create_bucket(), s3_server.create_bucket()

    # No copy before the pod's own settings; not into the primary's own bucket.
    r = await client.put(
        f"/v1/pods/{pod_id}/copy-settings",
        json={"target": s3_target(s3_server, second)},
        headers=owner,
    )
    assert r.status_code == 422, r.text
    assert "backup-settings" in r.text
    r = await client.put(
        f"/v1/pods/{pod_id}/backup-settings",
        json={"target": s3_target(s3_server, primary), "retention": {"keep_last": 10}},
        headers=owner,
    )
    assert r.status_code == 200, r.text
    r = await client.put(
        f"/v1/pods/{pod_id}/copy-settings",
        json={"target": s3_target(s3_server, primary)},
        headers=owner,
    )
    assert r.status_code == 422, r.text
    assert "another bucket" in r.text
    r = await client.put(
        f"/v1/pods/{pod_id}/copy-settings",
        json={"target": s3_target(s3_server, second), "retention": {"keep_last": 1}},
        headers=owner,
    )
    assert r.status_code == 200, r.text
    read = r.json()
    assert read["target"]["bucket"] == second
    assert read["target"]["secret_access_key_set"] is True
    assert "secret_access_key" not in read["target"]
    assert read["retention"]["keep_last"] == 1
    verified = await client.post(f"/v1/pods/{pod_id}/copy-settings/verify", headers=owner)
    assert verified.status_code == 200, verified.text
    assert verified.json()["ok"] is True, verified.json()
    assert verified.json()["repository"].endswith(f"/{second}")
    copy_read = (await client.get(f"/v1/pods/{pod_id}/copy-settings", headers=owner)).json()
    assert copy_read["verified_ok"] is True

    done = await backup(client, owner, pod_id)
    assert done["status"] == "succeeded", done
    copy_job = await wait_kind(client, owner, pod_id, "copy")
    assert copy_job["status"] == "succeeded", copy_job
    assert copy_job["plan"] == "copy"
    assert copy_job["result"]["snapshots"] == 1

    primary_snaps = (await client.get(f"/v1/pods/{pod_id}/snapshots", headers=owner)).json()
    copy_snaps = (await client.get(f"/v1/pods/{pod_id}/snapshots?plan=copy", headers=owner)).json()
    assert len(primary_snaps["items"]) == 1
    assert len(copy_snaps["items"]) == 1
    original, copied = primary_snaps["items"][0], copy_snaps["items"][0]
    assert copied["id"] != original["id"]  # restic copy gives the copy a new id
    assert copied["time"] == original["time"]
    assert original["locations"] == ["primary", "copy"]
    assert copied["locations"] == ["primary", "copy"]

    # The copy job queued the copy's first check (due on the copy's own interval).
    check = await wait_kind(client, owner, pod_id, "check")
    assert check["plan"] == "copy", check
    assert check["status"] == "succeeded", check
    assert check["result"]["check"]["ok"] is True

    lag = (await client.get(f"/v1/pods/{pod_id}/copy-lag", headers=owner)).json()
    assert lag["configured"] is True
    assert lag["snapshots_behind"] == 0
    assert lag["seconds_behind"] == 0
    status = (await client.get(f"/v1/pods/{pod_id}/status", headers=owner)).json()
    assert status["second_copy"]["snapshots_behind"] == 0
    assert status["second_copy"]["last_status"] == "succeeded"

    # A second backup: its copy queues the copy's own retention (keep_last 1 there, 10 in
    # the primary), which forgets the older copied snapshot from the copy only.
    (root / "added after the first backup.txt").write_text("new\n")
    assert (await backup(client, owner, pod_id))["status"] == "succeeded"
    second_copy = await wait_kind(client, owner, pod_id, "copy")
    assert second_copy["id"] != copy_job["id"]
    assert second_copy["status"] == "succeeded", second_copy
    prune = await wait_kind(client, owner, pod_id, "prune")
    assert prune["plan"] == "copy", prune
    assert prune["status"] == "succeeded", prune
    assert prune["result"]["removed"] == 1
    primary_snaps = (await client.get(f"/v1/pods/{pod_id}/snapshots", headers=owner)).json()
    copy_snaps = (await client.get(f"/v1/pods/{pod_id}/snapshots?plan=copy", headers=owner)).json()
    assert [s["locations"] for s in primary_snaps["items"]] == [["primary", "copy"], ["primary"]]
    [copied] = copy_snaps["items"]
    assert copied["time"] == primary_snaps["items"][0]["time"]
    lag = (await client.get(f"/v1/pods/{pod_id}/copy-lag", headers=owner)).json()
    assert lag["snapshots_behind"] == 0

    # The primary is gone entirely; the pod's files change; the copy restores them.
    want = tree_state(root)
    delete_bucket(s3_server, primary)
    victim = next(p for p in sorted(root.rglob("*")) if p.is_file())
    victim.unlink()
    assert diff_states(want, tree_state(root))
    r = await client.post(
        f"/v1/pods/{pod_id}/restores",
        json={"snapshot_id": copied["id"], "plan": "copy", "safety_backup": False},
        headers=owner,
    )
    assert r.status_code == 202, r.text
    restored = await wait_job(client, owner, r.json()["id"])
    assert restored["status"] == "succeeded", restored
    assert diff_states(want, tree_state(root)) == []

    # Browsing the copy needs no primary either: its index is built from the copy.
    files_url = f"/v1/pods/{pod_id}/snapshots/{copied['id']}/files?plan=copy&path=/files"
    deadline = time.monotonic() + 60
    while (r := await client.get(files_url, headers=owner)).status_code == 409:
        assert time.monotonic() < deadline, r.text
        await asyncio.sleep(0.3)
    assert r.status_code == 200, r.text
    assert "added after the first backup.txt" in {e["name"] for e in r.json()["items"]}
