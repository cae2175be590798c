"""After a full scenario — a pod with an SFTP password and a database password, S3
settings, a verify, a backup, browsing and a download, a restore, an export, a webhook,
and failing backups (a wrong SFTP password, then a wrong database password) — no secret
value appears anywhere the service writes: response bodies, the worker's log, the API's
log records, job errors, results and events, the audit trail and every other table, or
the argv of any process either side spawned. The one exception is by design: the restore
kit response carries the repository password."""

from __future__ import annotations

import asyncio
import logging
import secrets
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
import httpx
import pytest
from fastapi import FastAPI

from app.config import Settings
from app.integrations.dumps import DbEndpoint
from app.kit import subprocess as sp
from tests.backups.helpers import backup, database_spec, sftp_files, wait_job
from tests.conftest import SECRET_KEY, Tenant
from tests.faults.helpers import fill
from tests.fixtures.s3 import S3ServerHandle
from tests.fixtures.sftp import SftpServerHandle
from tests.fixtures.worker import WorkerProcess
from tests.security.scan import Scanner, forms


@pytest.fixture
def settings(settings: Settings, tmp_path: Path) -> Settings:
    return settings.model_copy(
        update={
            "argv_log": tmp_path / "argv.jsonl",
            "log_level": "DEBUG",
            "job_max_attempts": 1,
            "webhook_interval_seconds": 1,
            "webhook_retry_base_seconds": 0.5,
        }
    )


@pytest.fixture
def worker(settings: Settings, tmp_path: Path) -> Iterator[WorkerProcess]:
    proc = WorkerProcess(settings, tmp_path / "worker").start()
    yield proc
    proc.stop()


class Recorder:
    """Every response body this client sees, with its request line."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, bytes]] = []

    async def __call__(self, response: httpx.Response) -> None:
        await response.aread()
        request = response.request
        self.seen.append((f"{request.method} {request.url.path}", response.content))


async def table_dump(database_url: str) -> dict[str, str]:
    """Every row of every table as JSON text."""
    conn = await asyncpg.connect(database_url.replace("+asyncpg", ""))
    try:
        tables = [
            r["tablename"]
            for r in await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname='public'")
        ]
        return {
            t: "\n".join(
                r[0] for r in await conn.fetch(f'SELECT row_to_json(x)::text FROM "{t}" x')
            )
            for t in tables
        }
    finally:
        await conn.close()


async def seed_database(db: DbEndpoint) -> None:
    conn = await asyncpg.connect(
        host=db.host, port=db.port, user=db.username, password=db.password, database=db.name
    )
    try:
        await conn.execute("CREATE TABLE notes (id int primary key, body text)")
        await conn.execute("INSERT INTO notes SELECT g, 'note ' || g FROM generate_series(1,20) g")
    finally:
        await conn.close()


@pytest.mark.timeout(300)
async def test_no_secret_leaks_anywhere_after_a_full_scenario(
    app: FastAPI,
    tenant: Tenant,
    admin_token: str,
    sftp_server: SftpServerHandle,
    s3_server: S3ServerHandle,
    s3_bucket: str,
    pg_pod: DbEndpoint,
    worker: WorkerProcess,
    settings: Settings,
    database_url: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    api_argv = tmp_path / "api-argv.jsonl"
    sp.set_argv_log(api_argv)  # the API's own children (verify, downloads)
    recorder = Recorder()
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    client = httpx.AsyncClient(
        transport=transport, base_url="http://podbackup.test", event_hooks={"response": [recorder]}
    )
    s3_secret = f"s3secret-{secrets.token_urlsafe(24)}"
    webhook_secret = f"whsecret-{secrets.token_urlsafe(24)}"
    wrong_sftp = f"wrong-sftp-{secrets.token_urlsafe(12)}"
    wrong_db = f"wrong-db'\"{secrets.token_urlsafe(12)}"
    h = tenant.headers
    try:
        fill(sftp_server.root)
        await seed_database(pg_pod)
        r = await client.post(
            "/v1/pods",
            json={"name": "wiki", "app": "wikijs", "files": sftp_files(sftp_server),
                  "database": database_spec(pg_pod)},
            headers=h,
        )  # fmt: skip
        assert r.status_code == 201, r.text
        pod = r.json()["id"]
        target = {
            "kind": "s3",
            "endpoint": s3_server.url,
            "bucket": s3_bucket,
            "access_key_id": "AKPODBACKUPTEST01",
            "secret_access_key": s3_secret,
        }
        # A rejected save must not echo the secret it carried.
        r = await client.put(
            f"/v1/pods/{pod}/backup-settings",
            json={"target": {**target, "bucket": "Not A Bucket!"}},
            headers=h,
        )
        assert r.status_code == 422, r.text
        r = await client.put(f"/v1/pods/{pod}/backup-settings", json={"target": target}, headers=h)
        assert r.status_code == 200, r.text
        r = await client.post(f"/v1/pods/{pod}/backup-settings/verify", headers=h)
        assert r.status_code == 200, r.text
        r = await client.post(
            "/v1/webhooks",
            json={"url": "http://127.0.0.1:9/hook", "secret": webhook_secret},
            headers=h,
        )
        assert r.status_code == 201, r.text
        hook = r.json()["id"]

        job = await backup(client, h, pod)
        assert job["status"] == "succeeded", (job, worker.logs()[-3000:])
        snap = job["result"]["snapshot_id"]
        kit = (await client.get(f"/v1/pods/{pod}/restore-kit", headers=h)).json()
        repo_password = kit["password"]

        await wait_job(client, h, job["id"])
        for _ in range(100):  # the browse index, then a download (restic in the API)
            r = await client.get(f"/v1/pods/{pod}/snapshots/{snap}/files?path=/", headers=h)
            if r.status_code == 200:
                break
            await asyncio.sleep(0.2)
        r = await client.get(
            f"/v1/pods/{pod}/snapshots/{snap}/download",
            params={"path": f"/database/{pg_pod.name}.sql"},
            headers=h,
        )
        assert r.status_code == 200, r.text

        r = await client.post(
            f"/v1/pods/{pod}/restores",
            json={"snapshot_id": snap, "safety_backup": False},
            headers=h,
        )
        assert r.status_code == 202, r.text
        done = await wait_job(client, h, r.json()["id"], timeout=180)
        assert done["status"] == "succeeded", (done, worker.logs()[-3000:])

        r = await client.post(f"/v1/pods/{pod}/exports", json={"snapshot_id": snap}, headers=h)
        assert r.status_code == 202, r.text
        export = r.json()
        done = await wait_job(client, h, str(export["job_id"]))
        assert done["status"] == "succeeded", done
        info = (await client.get(f"/v1/exports/{export['id']}", headers=h)).json()
        url = urlsplit(info["download_url"])
        assert (await client.get(f"{url.path}?{url.query}")).status_code == 200

        r = await client.post(f"/v1/webhooks/{hook}/test", headers=h)
        assert r.status_code == 202, r.text

        # Failures: the wrong SFTP password, then the wrong database password.
        files = {**sftp_files(sftp_server), "password": wrong_sftp}
        r = await client.patch(f"/v1/pods/{pod}", json={"files": files}, headers=h)
        assert r.status_code == 200, r.text
        failed = await backup(client, h, pod)
        assert failed["status"] == "failed", failed
        assert failed["error"]["code"] == "auth_failed"
        database = {**database_spec(pg_pod), "password": wrong_db}
        r = await client.patch(
            f"/v1/pods/{pod}",
            json={"files": sftp_files(sftp_server), "database": database},
            headers=h,
        )
        assert r.status_code == 200, r.text
        failed = await backup(client, h, pod)
        assert failed["status"] == "failed", failed
        assert failed["error"]["code"] == "auth_failed", failed

        # Read everything back once, as a panel would.
        for path in (
            f"/v1/pods/{pod}",
            f"/v1/pods/{pod}/backup-settings",
            f"/v1/pods/{pod}/jobs?limit=200",
            f"/v1/pods/{pod}/status",
            f"/v1/pods/{pod}/audit?limit=200",
            f"/v1/webhooks/{hook}/deliveries",
            "/v1/jobs?limit=200",
        ):
            assert (await client.get(path, headers=h)).status_code == 200
        for job_id in [
            j["id"] for j in (await client.get("/v1/jobs?limit=200", headers=h)).json()["items"]
        ]:
            await client.get(f"/v1/jobs/{job_id}/events", headers=h)  # final: the stream ends
        r = await client.get(
            "/v1/audit?limit=200", headers={"Authorization": f"Bearer {admin_token}"}
        )
        assert r.status_code == 200
    finally:
        sp.set_argv_log(None)
        await client.aclose()
    worker.stop()  # flush: the log file is complete

    scanner = Scanner()
    scanner.add("s3 secret", s3_secret)
    scanner.add("repository password", repo_password)
    scanner.add("sftp password", sftp_server.password)
    scanner.add("wrong sftp password", wrong_sftp)
    scanner.add("db password", pg_pod.password)
    scanner.add("wrong db password", wrong_db)
    scanner.add("webhook secret", webhook_secret)
    scanner.add("account token", tenant.token)
    scanner.add("admin token", admin_token)
    scanner.add("master key", SECRET_KEY.split(":", 1)[1])

    for where, body in recorder.seen:
        kit_read = where.endswith("/restore-kit")
        scanner.scan(
            f"response to {where}", body, allow=("repository password",) if kit_read else ()
        )
    scanner.scan("worker log", worker.logs())
    scanner.scan("API log records", caplog.text)
    for record in caplog.records:
        scanner.scan(f"API log record {record.name}", record.getMessage())
    for table, text in (await table_dump(database_url)).items():
        scanner.scan(f"table {table}", text)
    for name in ("argv.jsonl", "api-argv.jsonl"):
        argv = (tmp_path / name).read_text() if (tmp_path / name).exists() else ""
        scanner.scan(f"argv log {name}", argv)
    assert not scanner.hits, "\n".join(scanner.hits)

    # The scanner itself sees a secret however it was written.
    probe = Scanner()
    probe.add("db password", pg_pod.password)
    for form in forms(pg_pod.password):
        probe.scan("probe", f"...{form}...")
    assert len(probe.hits) == len(forms(pg_pod.password)) >= 3

    # The scan looked at real material: children were recorded, the kit had the password.
    argv_lines = (tmp_path / "argv.jsonl").read_text().splitlines()
    assert any("pg_dump" in line for line in argv_lines)
    assert any("psql" in line for line in argv_lines)
    assert any('"backup"' in line for line in argv_lines)
    assert (tmp_path / "api-argv.jsonl").read_text().count("restic") >= 1
    assert any(repo_password in body.decode("utf-8", "replace") for w, body in recorder.seen
               if w.endswith("/restore-kit"))  # fmt: skip
    assert len(recorder.seen) > 30
    assert uuid.UUID(pod)
