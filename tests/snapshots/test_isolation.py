"""Every snapshot, restore and export endpoint answers another account's token exactly as
for a missing resource (404), while the owner's token gets through with the same call."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from tests.backups.helpers import backup, build_pod_tree, create_pod, wait_index, wait_job
from tests.conftest import Tenant, auth
from tests.fixtures.worker import WorkerProcess


async def test_another_accounts_token_gets_404_everywhere(
    client: httpx.AsyncClient,
    admin_token: str,
    tenant: Tenant,
    other_tenant: Tenant,
    tmp_path: Path,
    worker: WorkerProcess,
) -> None:
    build_pod_tree(tmp_path / "pod")
    pod = await create_pod(
        client,
        auth(admin_token),
        account_id=tenant.account_id,
        files={"kind": "local", "path": str(tmp_path / "pod")},
        target={"kind": "local", "path": str(tmp_path / "repo")},
    )
    theirs = await create_pod(client, other_tenant.headers, name="theirs")
    snap = (await backup(client, tenant.headers, pod["id"]))["result"]["snapshot_id"]
    await wait_index(client, tenant.headers, pod["id"], snap)
    base = f"/v1/pods/{pod['id']}"
    r = await client.post(f"{base}/exports", json={"snapshot_id": snap}, headers=tenant.headers)
    assert r.status_code == 202, r.text
    export = r.json()
    await wait_job(client, tenant.headers, str(export["job_id"]))

    calls: list[tuple[str, str, dict[str, Any] | None]] = [
        ("GET", f"{base}/snapshots", None),
        ("GET", f"{base}/snapshots?tag=trigger:manual", None),
        ("GET", f"{base}/snapshots/{snap}", None),
        ("GET", f"{base}/snapshots/{snap[:8]}", None),
        ("GET", f"{base}/snapshots/{snap}/files?path=/files", None),
        ("GET", f"{base}/snapshots/{snap}/download?path=/files/data/readme.md", None),
        ("GET", f"{base}/snapshots/{snap}/diff?against={snap[:8]}", None),
        ("GET", f"{base}/files/history?path=/files/data/readme.md", None),
        ("GET", f"/v1/exports/{export['id']}", None),
        ("POST", f"{base}/snapshots/refresh", None),
        ("POST", f"{base}/exports", {"snapshot_id": snap}),
        ("POST", f"{base}/restores", {"snapshot_id": snap, "safety_backup": False}),
    ]
    for method, url, body in calls:
        r = await client.request(method, url, json=body, headers=other_tenant.headers)
        assert r.status_code == 404, (method, url, r.status_code, r.text)
        assert r.json()["error"] == "NotFound", (url, r.text)
    # Their own pod, our snapshot id: not found either, as if it did not exist.
    r = await client.post(
        f"/v1/pods/{theirs['id']}/restores",
        json={"snapshot_id": snap},
        headers=other_tenant.headers,
    )
    assert r.status_code == 404, r.text
    r = await client.post(
        f"/v1/pods/{theirs['id']}/exports", json={"snapshot_id": snap}, headers=other_tenant.headers
    )
    assert r.status_code == 404, r.text
    r = await client.get(
        f"/v1/pods/{theirs['id']}/snapshots/{snap}/diff?against={snap}",
        headers=other_tenant.headers,
    )
    assert r.status_code == 404, r.text
    # Nothing was queued for our pod by them.
    jobs = (await client.get(f"{base}/jobs", headers=tenant.headers)).json()
    assert sorted(j["kind"] for j in jobs["items"]) == ["backup", "export", "index"]

    # The same calls with the owner's token pass (so the 404s above mean "not yours").
    for method, url, body in calls:
        r = await client.request(method, url, json=body, headers=tenant.headers)
        assert r.status_code in (200, 202), (method, url, r.status_code, r.text)
        if method == "POST":
            await wait_job(client, tenant.headers, str(r.json().get("job_id") or r.json()["id"]))
