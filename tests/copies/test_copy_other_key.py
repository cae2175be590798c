"""A second copy at another key (another provider, as far as restic can tell): the primary
and the copy are two buckets of the local S3 server with signatures and IAM enforced, each
key allowed on its own bucket only. The copy job reads the primary through the re-signing
gateway (restic keeps the copy's key); then the primary bucket is deleted and the pod is
restored from the copy. Runs with whichever restic is first on PATH (0.18 and 0.14)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from tests.backups.helpers import backup, diff_states, tree_state, wait_job
from tests.conftest import Tenant, auth
from tests.copies.test_copy_e2e import delete_bucket, local_pod, wait_kind
from tests.fixtures.s3 import S3ServerHandle
from tests.fixtures.worker import WorkerProcess


def keyed_target(s3: S3ServerHandle, bucket: str, key: tuple[str, str]) -> dict[str, Any]:
    return {
        "kind": "s3",
        "endpoint": s3.url,
        "bucket": bucket,
        "access_key_id": key[0],
        "secret_access_key": key[1],
    }


async def test_copy_at_another_key_survives_the_primary_bucket(
    client: httpx.AsyncClient,
    admin_token: str,
    tenant: Tenant,
    tmp_path: Path,
    s3_iam_server: S3ServerHandle,
    worker: WorkerProcess,
) -> None:
    s3 = s3_iam_server
    admin, owner = auth(admin_token), auth(tenant.token)
    root = tmp_path / "pod"
    pod_id = (await local_pod(client, admin, tenant, root))["id"]
    primary, second = s3.create_bucket(), s3.create_bucket()
    primary_key, second_key = s3.create_key(primary), s3.create_key(second)
    assert primary_key[0] != second_key[0]

    r = await client.put(
        f"/v1/pods/{pod_id}/backup-settings",
        json={"target": keyed_target(s3, primary, primary_key)},
        headers=owner,
    )
    assert r.status_code == 200, r.text
    # Another key than the primary's: accepted now (the gateway reads the primary).
    r = await client.put(
        f"/v1/pods/{pod_id}/copy-settings",
        json={"target": keyed_target(s3, second, second_key)},
        headers=owner,
    )
    assert r.status_code == 200, r.text
    assert r.json()["target"]["access_key_id"] == second_key[0]

    done = await backup(client, owner, pod_id)
    assert done["status"] == "succeeded", done
    copy_job = await wait_kind(client, owner, pod_id, "copy")
    assert copy_job["status"] == "succeeded", copy_job
    assert copy_job["result"]["snapshots"] == 1
    assert copy_job["result"]["copied"] == 1
    assert s3.keys(second, "config") == ["config"]
    assert s3.keys(primary, "locks/") == []  # restic's lock on the source, removed

    primary_snaps = (await client.get(f"/v1/pods/{pod_id}/snapshots", headers=owner)).json()
    copy_snaps = (await client.get(f"/v1/pods/{pod_id}/snapshots?plan=copy", headers=owner)).json()
    [original], [copied] = primary_snaps["items"], copy_snaps["items"]
    assert copied["time"] == original["time"]
    assert original["locations"] == ["primary", "copy"]

    # The copy's own check (queued by the copy job) runs with the copy's key alone.
    check = await wait_kind(client, owner, pod_id, "check")
    assert check["plan"] == "copy", check
    assert check["status"] == "succeeded", check

    # The primary is gone; the pod's files change; the copy restores them.
    want = tree_state(root)
    delete_bucket(s3, primary)
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
