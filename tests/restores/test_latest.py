"""`latest` means the newest backup, never a safety snapshot: the README's
`podbackup restore demo latest --no-files --wait`, run twice, restored on its second run
the safety snapshot the first run took, i.e. the damage. Safety snapshots are labelled
wherever snapshots are listed, show the database they hold, and are restored by id."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.integrations.dumps import DbEndpoint
from tests.backups.helpers import backup, create_pod, database_spec, restore, wait_job
from tests.conftest import Tenant, auth
from tests.fixtures.worker import WorkerProcess
from tests.restores.content import damage_pg, pg_rows, seed_pg


async def snapshots(client: httpx.AsyncClient, tenant: Tenant, pod_id: str) -> list[Any]:
    r = await client.get(f"/v1/pods/{pod_id}/snapshots", headers=tenant.headers)
    assert r.status_code == 200, r.text
    items: list[Any] = r.json()["items"]
    return items


def plain_restic(env: dict[str, str], *args: str, cwd: Path) -> str:
    done = subprocess.run(["restic", *args], env=env, cwd=cwd, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.timeout(300)
async def test_restoring_latest_twice_restores_the_backup_both_times(
    client: httpx.AsyncClient,
    admin_token: str,
    tenant: Tenant,
    tmp_path: Path,
    pg_pod: DbEndpoint,
    worker: WorkerProcess,
) -> None:
    await seed_pg(pg_pod)
    good = await pg_rows(pg_pod)
    pod = await create_pod(
        client,
        auth(admin_token),
        account_id=tenant.account_id,
        database=database_spec(pg_pod),
        target={"kind": "local", "path": str(tmp_path / "repo")},
    )
    job = await backup(client, tenant.headers, pod["id"])
    assert job["status"] == "succeeded", (job, worker.logs()[-3000:])
    made = job["result"]["snapshot_id"]

    await damage_pg(pg_pod)
    damaged = await pg_rows(pg_pod)
    first = await restore(client, tenant.headers, pod["id"], "latest", files=False)
    assert first["status"] == "succeeded", (first, worker.logs()[-3000:])
    assert first["result"]["snapshot_id"] == made
    assert await pg_rows(pg_pod) == good
    safety = first["result"]["safety_snapshot_id"]

    # The same command again: the newest snapshot is now the first run's safety snapshot
    # (the damage). `latest` still means the backup.
    second = await restore(client, tenant.headers, pod["id"], "latest", files=False)
    assert second["status"] == "succeeded", (second, worker.logs()[-3000:])
    assert second["result"]["snapshot_id"] == made
    assert await pg_rows(pg_pod) == good

    r = await client.get(f"/v1/pods/{pod['id']}/snapshots/latest", headers=tenant.headers)
    assert r.status_code == 200, r.text
    assert r.json()["id"] == made

    # Listed with what they are: both safety snapshots, newest first, holding the database.
    items = await snapshots(client, tenant, pod["id"])
    assert [(s["id"], s["kind"]) for s in items] == [
        (second["result"]["safety_snapshot_id"], "safety"),
        (safety, "safety"),
        (made, "backup"),
    ]
    assert items[2]["trigger"] == "manual"
    for s in items[:2]:
        assert s["summary"]["safety"] is True
        assert s["summary"]["database"]["name"] == pg_pod.name
    one = await client.get(f"/v1/pods/{pod['id']}/snapshots/{safety}", headers=tenant.headers)
    assert one.json()["kind"] == "safety"

    listing = f"/v1/pods/{pod['id']}/snapshots"
    r = await client.get(listing, params={"kind": "safety"}, headers=tenant.headers)
    assert [s["id"] for s in r.json()["items"]] == [s["id"] for s in items[:2]]
    r = await client.get(listing, params={"kind": "backup"}, headers=tenant.headers)
    assert [s["id"] for s in r.json()["items"]] == [made]
    r = await client.get(
        listing, params={"kind": "backup", "page": 2, "limit": 1}, headers=tenant.headers
    )
    assert r.json() == {"items": [], "pagination": {"total_count": 1, "max_page": 1}}
    r = await client.get(listing, params={"kind": "nightly"}, headers=tenant.headers)
    assert r.status_code == 422, r.text

    status = (await client.get(f"/v1/pods/{pod['id']}/status", headers=tenant.headers)).json()
    assert status["last_snapshot_kind"] == "safety"

    r = await client.post(f"/v1/pods/{pod['id']}/retention/preview", headers=tenant.headers)
    assert r.status_code == 200, r.text
    planned = {s["id"]: s["kind"] for key in ("keep", "remove", "untouched") for s in r.json()[key]}
    assert planned == {made: "backup", safety: "safety", items[0]["id"]: "safety"}

    # A safety snapshot is restored by its id: the undo of the first restore.
    undo = await restore(
        client, tenant.headers, pod["id"], safety[:8], files=False, safety_backup=False
    )
    assert undo["status"] == "succeeded", undo
    assert undo["result"]["snapshot_id"] == safety
    assert await pg_rows(pg_pod) == damaged


async def test_latest_skips_safety_tags_and_takes_imported_snapshots(
    client: httpx.AsyncClient,
    admin_token: str,
    tenant: Tenant,
    tmp_path: Path,
    worker: WorkerProcess,
) -> None:
    """The owner holds the repository password and can write any tags: the service's own
    record says what a snapshot is. A snapshot made outside the service counts for `latest`
    (it is the owner's backup), unless it carries the safety tag."""
    (tmp_path / "pod").mkdir()
    (tmp_path / "pod" / "a.txt").write_text("pod\n")
    pod = await create_pod(
        client,
        auth(admin_token),
        account_id=tenant.account_id,
        files={"kind": "local", "path": str(tmp_path / "pod")},
        target={"kind": "local", "path": str(tmp_path / "repo")},
    )
    made = (await backup(client, tenant.headers, pod["id"]))["result"]["snapshot_id"]
    kit = (await client.get(f"/v1/pods/{pod['id']}/restore-kit", headers=tenant.headers)).json()
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "RESTIC_REPOSITORY": str(tmp_path / "repo"),
        "RESTIC_PASSWORD": kit["password"],
        "RESTIC_CACHE_DIR": str(tmp_path / "owner-cache"),
    }
    laptop = tmp_path / "laptop"
    (laptop / "files").mkdir(parents=True)
    (laptop / "files" / "a.txt").write_text("by hand\n")
    forged = ["--tag", f"pod:{pod['id']},trigger:scheduled", "--host", pod["id"]]
    plain_restic(env, "backup", *forged, "files", cwd=laptop)
    r = await client.post(f"/v1/pods/{pod['id']}/snapshots/refresh", headers=tenant.headers)
    job = await wait_job(client, tenant.headers, r.json()["id"])
    assert job["status"] == "succeeded", job
    items = await snapshots(client, tenant, pod["id"])
    assert [s["kind"] for s in items] == ["imported", "backup"]
    assert items[0]["trigger"] is None  # its tags prove nothing
    r = await client.get(f"/v1/pods/{pod['id']}/snapshots/latest", headers=tenant.headers)
    assert r.json()["id"] == items[0]["id"]

    plain_restic(env, "backup", "--tag", "safety:before-restore", "files", cwd=laptop)
    r = await client.post(f"/v1/pods/{pod['id']}/snapshots/refresh", headers=tenant.headers)
    assert (await wait_job(client, tenant.headers, r.json()["id"]))["status"] == "succeeded"
    items = await snapshots(client, tenant, pod["id"])
    assert [s["kind"] for s in items] == ["safety", "imported", "backup"]
    r = await client.get(f"/v1/pods/{pod['id']}/snapshots/latest", headers=tenant.headers)
    assert r.json()["id"] == items[1]["id"]
    assert made == items[2]["id"]

    # No backup at all, only safety snapshots: `latest` says so instead of picking one.
    plain = json.loads(plain_restic(env, "snapshots", "--json", cwd=laptop))
    keep = next(s["id"] for s in plain if "safety:before-restore" in (s.get("tags") or []))
    plain_restic(env, "forget", *[s["id"] for s in plain if s["id"] != keep], cwd=laptop)
    r = await client.post(f"/v1/pods/{pod['id']}/snapshots/refresh", headers=tenant.headers)
    assert (await wait_job(client, tenant.headers, r.json()["id"]))["status"] == "succeeded"
    r = await client.get(f"/v1/pods/{pod['id']}/snapshots/latest", headers=tenant.headers)
    assert r.status_code == 404, r.text
    assert "safety" in r.json()["detail"]
    assert "by its id" in r.json()["hint"]
