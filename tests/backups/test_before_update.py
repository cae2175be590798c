"""The backup before an app update, end to end: files over SFTP, a PostgreSQL database, an
S3 bucket (moto), restic and a worker. The answer comes once the snapshot exists (tagged,
pinned) with the restore call that rolls the pod back, and that call does; a failed backup
answers 409 with the job's error code and pins nothing; a busy pod or a slow backup never
passes for this one."""

from __future__ import annotations

import json
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.integrations.dumps import DbEndpoint
from tests.backups.helpers import (
    build_pod_tree,
    create_pod,
    database_spec,
    diff_states,
    s3_target,
    sftp_files,
    tree_state,
    wait_job,
)
from tests.backups.test_sftp_s3_e2e import kit_password, restic_env
from tests.conftest import Tenant, auth
from tests.fixtures.s3 import S3ServerHandle
from tests.fixtures.sftp import SftpServerHandle, start_sftp_server
from tests.fixtures.worker import WorkerProcess
from tests.restores.content import damage_pg, pg_rows, seed_pg
from tests.restores.test_roundtrip import damage_files


def _url(pod: dict[str, Any]) -> str:
    return f"/v1/pods/{pod['id']}/before-update"


@pytest.mark.timeout(240)
async def test_snapshot_tagged_pinned_and_the_rollback_call_restores_it(
    client: httpx.AsyncClient,
    tenant: Tenant,
    sftp_server: SftpServerHandle,
    s3_server: S3ServerHandle,
    s3_bucket: str,
    pg_pod: DbEndpoint,
    worker: WorkerProcess,
    tmp_path: Path,
) -> None:
    root = sftp_server.root
    build_pod_tree(root)
    await seed_pg(pg_pod)
    want_files, want_rows = tree_state(root), await pg_rows(pg_pod)
    pod = await create_pod(
        client,
        tenant.headers,
        files=sftp_files(sftp_server),
        database=database_spec(pg_pod),
        target=s3_target(s3_server, s3_bucket),
    )
    before = datetime.now(UTC)
    r = await client.post(
        _url(pod),
        json={"app_version": " 2.4.1+build.7 ", "note": "to 2.5.0"},
        headers=tenant.headers,
    )
    assert r.status_code == 201, (r.text, worker.logs()[-3000:])
    answer = r.json()
    job, snap = answer["job"], answer["snapshot"]
    assert r.headers["location"] == f"/v1/jobs/{job['id']}"
    assert job["status"] == "succeeded"
    assert job["trigger"] == "before-update"
    assert snap["id"] == job["result"]["snapshot_id"]
    assert {"before-update", "app-version=2.4.1+build.7", "trigger:before-update"} <= set(
        snap["tags"]
    )
    assert snap["pinned"] is True
    assert snap["pin"]["by"] == "before-update"
    assert snap["pin"]["note"] == "before update to 2.4.1+build.7: to 2.5.0"
    until = datetime.fromisoformat(snap["pin"]["until"])
    assert before + timedelta(days=30) <= until <= datetime.now(UTC) + timedelta(days=30)
    assert answer["rollback"] == {
        "method": "POST",
        "path": f"/v1/pods/{pod['id']}/restores",
        "body": {
            "snapshot_id": snap["id"],
            "files": True,
            "database": True,
            "mode": "mirror",
            "safety_backup": True,
        },
    }

    # The tags are in the repository itself, as plain restic lists them.
    env = restic_env(s3_server, s3_bucket, await kit_password(client, tenant, pod["id"]), tmp_path)
    done = subprocess.run(
        ["restic", "snapshots", "--json"], env=env, capture_output=True, text=True, check=True
    )
    (listed,) = [s for s in json.loads(done.stdout) if s["id"] == snap["id"]]
    assert {"before-update", "app-version=2.4.1+build.7"} <= set(listed["tags"])
    pinned = (
        await client.get(f"/v1/pods/{pod['id']}/snapshots?pinned=true", headers=tenant.headers)
    ).json()
    assert [s["id"] for s in pinned["items"]] == [snap["id"]]

    # The update goes wrong: files and database change. The rollback call, as returned,
    # puts both back (mirror: what the update added is gone too).
    damage_files(root)
    await damage_pg(pg_pod)
    assert tree_state(root) != want_files
    assert await pg_rows(pg_pod) != want_rows
    back = answer["rollback"]
    r = await client.request(
        back["method"], back["path"], json=back["body"], headers=tenant.headers
    )
    assert r.status_code == 202, r.text
    restored = await wait_job(client, tenant.headers, r.json()["id"], 180)
    assert restored["status"] == "succeeded", (restored, worker.logs()[-3000:])
    problems = diff_states(want_files, tree_state(root))
    assert not problems, "\n".join(problems)
    assert await pg_rows(pg_pod) == want_rows


async def test_a_failed_backup_answers_409_with_its_code_and_pins_nothing(
    client: httpx.AsyncClient,
    tenant: Tenant,
    sftp_server: SftpServerHandle,
    s3_server: S3ServerHandle,
    s3_bucket: str,
    worker: WorkerProcess,
) -> None:
    build_pod_tree(sftp_server.root)
    pod = await create_pod(
        client,
        tenant.headers,
        files={**sftp_files(sftp_server), "password": "not-the-password"},
        target=s3_target(s3_server, s3_bucket),
    )
    r = await client.post(_url(pod), json={"app_version": "1.0"}, headers=tenant.headers)
    assert r.status_code == 409, (r.text, worker.logs()[-3000:])
    body = r.json()
    assert body["error"] == "BackupBeforeUpdateFailed"
    assert body["code"] == "auth_failed"
    assert body["job"]["status"] == "failed"
    assert body["job"]["error"]["code"] == "auth_failed"
    assert "auth_failed" in body["detail"]
    assert "do not update the app" in body["hint"]
    snaps = f"/v1/pods/{pod['id']}/snapshots"
    assert (await client.get(f"{snaps}?pinned=true", headers=tenant.headers)).json()["items"] == []
    assert (await client.get(snaps, headers=tenant.headers)).json()["items"] == []


@pytest.mark.timeout(60)
async def test_busy_pod_slow_backup_bad_version_and_tenancy(
    client: httpx.AsyncClient,
    admin_token: str,
    tenant: Tenant,
    other_tenant: Tenant,
    tmp_path: Path,
) -> None:
    """No worker runs here: every backup stays queued."""
    folder = tmp_path / "pod"
    folder.mkdir()
    (folder / "a.txt").write_text("a\n")
    admin = auth(admin_token)
    pod = await create_pod(
        client,
        admin,
        account_id=tenant.account_id,
        files={"kind": "local", "path": str(folder)},
        target={"kind": "local", "path": str(tmp_path / "repo")},
    )
    url = _url(pod)

    for version in ("", "1.0 beta", "1,2", "-rc1", "x" * 101, "1.0/2", "ü1", "1.0\tb"):
        r = await client.post(url, json={"app_version": version}, headers=tenant.headers)
        assert r.status_code == 422, (version, r.text)
        assert r.json()["error"]
        if 0 < len(version.strip()) <= 100:
            assert "hint" in r.json(), version
    for extra in ({"timeout_seconds": 3601}, {"pin_days": 0}, {"nope": 1}):
        r = await client.post(url, json={"app_version": "1", **extra}, headers=tenant.headers)
        assert r.status_code == 422, (extra, r.text)
    r = await client.post(url, json={"app_version": "1.0"}, headers=other_tenant.headers)
    assert r.status_code == 404
    r = await client.post(
        url, json={"app_version": "1.0", "plan": "platform"}, headers=tenant.headers
    )
    assert r.status_code == 403

    # An ordinary backup already queued is not this one: the request waits for it, and at
    # the timeout answers 409 PodBusy naming it, with nothing started.
    r = await client.post(f"/v1/pods/{pod['id']}/backups", headers=tenant.headers)
    assert r.status_code == 202, r.text
    ordinary = r.json()["id"]
    r = await client.post(
        url, json={"app_version": "1.0", "timeout_seconds": 1}, headers=tenant.headers
    )
    assert r.status_code == 409, r.text
    assert r.json()["error"] == "PodBusy"
    assert r.json()["detail"]["job_id"] == ordinary
    jobs = (await client.get(f"/v1/pods/{pod['id']}/jobs", headers=tenant.headers)).json()
    assert [j["id"] for j in jobs["items"]] == [ordinary]

    # Once the pod is free, its own backup starts; still queued at the timeout: 202.
    r = await client.post(f"/v1/jobs/{ordinary}/cancel", headers=tenant.headers)
    assert r.status_code == 202, r.text
    r = await client.post(
        url,
        json={"app_version": "v3.0.0-rc.1", "timeout_seconds": 1, "pin_days": None},
        headers=tenant.headers,
    )
    assert r.status_code == 202, r.text
    pending = r.json()
    job = pending["job"]
    assert job["id"] != ordinary
    assert r.headers["location"] == f"/v1/jobs/{job['id']}"
    assert job["status"] == "queued"
    assert job["trigger"] == "before-update"
    assert job["params"]["tags"] == ["before-update", "app-version=v3.0.0-rc.1"]
    assert job["params"]["pin"] is True
    assert job["params"]["pin_days"] is None
    assert f"GET /v1/jobs/{job['id']}" in pending["hint"]


async def test_a_partial_backup_is_no_rollback_point(
    client: httpx.AsyncClient,
    tenant: Tenant,
    s3_server: S3ServerHandle,
    s3_bucket: str,
    worker: WorkerProcess,
    tmp_path: Path,
) -> None:
    root = tmp_path / "denied-pod"
    build_pod_tree(root)
    server = await start_sftp_server(root, deny_read={"data/readme.md"})
    try:
        pod = await create_pod(
            client,
            tenant.headers,
            files=sftp_files(server),
            target=s3_target(s3_server, s3_bucket),
        )
        r = await client.post(_url(pod), json={"app_version": "7"}, headers=tenant.headers)
    finally:
        await server.close()
    assert r.status_code == 409, (r.text, worker.logs()[-3000:])
    body = r.json()
    assert body["error"] == "BackupBeforeUpdateFailed"
    assert body["code"] == "partial"
    assert body["job"]["status"] == "partial"
    assert "1 file(s) could not be read" in body["detail"]
    # The snapshot exists (it holds what could be read) but is not pinned.
    snaps = (await client.get(f"/v1/pods/{pod['id']}/snapshots", headers=tenant.headers)).json()
    assert [s["id"] for s in snaps["items"]] == [body["job"]["result"]["snapshot_id"]]
    assert snaps["items"][0]["pinned"] is False
