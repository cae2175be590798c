"""One-time exports: the archive holds files/ and database/<name>.sql, the dump loads into
an EMPTY database with the plain client and gives identical rows; links expire (410) and
the cleanup deletes the file; a damaged repository fails the export instead of shipping a
cut archive."""

from __future__ import annotations

import io
import os
import subprocess
import tarfile
import uuid
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from urllib.parse import urlsplit

import httpx
from fastapi import FastAPI
from sqlalchemy import update

from app.config import Settings
from app.exports.cleanup import expire_exports
from app.integrations.dumps import DbEndpoint
from app.models import Export
from app.models.base import utcnow
from tests.backups.helpers import (
    backup,
    build_pod_tree,
    create_pod,
    database_spec,
    diff_states,
    tree_state,
    wait_index,
    wait_job,
)
from tests.conftest import Tenant, auth
from tests.fixtures.databases import MYSQL_HOST, MYSQL_PORT, PG_BIN, PgCluster, mysql_admin
from tests.fixtures.worker import WorkerProcess
from tests.restores.content import my_rows, pg_rows, seed_mysql, seed_pg
from tests.snapshots.server import serve


async def run_export(
    client: httpx.AsyncClient, tenant: Tenant, pod_id: str, body: dict[str, Any] | None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the finished job, the export as GET /v1/exports/{id} shows it)."""
    r = await client.post(f"/v1/pods/{pod_id}/exports", json=body, headers=tenant.headers)
    assert r.status_code == 202, r.text
    job = await wait_job(client, tenant.headers, str(r.json()["job_id"]))
    info = (await client.get(f"/v1/exports/{r.json()['id']}", headers=tenant.headers)).json()
    return job, info


async def fetch(client: httpx.AsyncClient, info: dict[str, Any]) -> httpx.Response:
    url = urlsplit(info["download_url"])
    return await client.get(f"{url.path}?{url.query}")  # no token: the link is the key


def unpack(data: bytes, dest: Path) -> list[str]:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        tar.extractall(dest, filter="fully_trusted")  # our own archive; keep modes and times
        return tar.getnames()


async def test_snapshot_export_loads_into_an_empty_postgres_database_then_expires(
    client: httpx.AsyncClient,
    admin_token: str,
    tenant: Tenant,
    pg_pod: DbEndpoint,
    pg_cluster: PgCluster,
    worker: WorkerProcess,
    tmp_path: Path,
    app: FastAPI,
    settings: Settings,
) -> None:
    build_pod_tree(tmp_path / "pod", big_mb=1)
    await seed_pg(pg_pod)
    want_rows = await pg_rows(pg_pod)
    pod = await create_pod(
        client,
        auth(admin_token),
        account_id=tenant.account_id,
        files={"kind": "local", "path": str(tmp_path / "pod")},
        database=database_spec(pg_pod),
        target={"kind": "local", "path": str(tmp_path / "repo")},
    )
    job = await backup(client, tenant.headers, pod["id"])
    assert job["status"] == "succeeded", (job, worker.logs()[-3000:])
    (tmp_path / "pod" / "after-the-backup.txt").write_text("not in the snapshot\n")

    job, info = await run_export(
        client, tenant, pod["id"], {"snapshot_id": job["result"]["short_id"]}
    )
    assert job["status"] == "succeeded", (job, worker.logs()[-3000:])
    assert info["status"] == "ready"
    assert info["snapshot_id"] == job["result"]["snapshot_id"]
    got = await fetch(client, info)
    assert got.status_code == 200, got.text
    assert len(got.content) == info["size_bytes"]
    names = unpack(got.content, tmp_path / "unpacked")
    assert f"database/{pg_pod.name}.sql" in names
    assert "files/after-the-backup.txt" not in names
    want_files = tree_state(tmp_path / "pod")
    want_files.pop("after-the-backup.txt")
    problems = diff_states(want_files, tree_state(tmp_path / "unpacked" / "files"))
    assert not problems, problems

    # The dump loads with plain psql into an empty database and gives the same rows.
    empty = f"{pg_pod.username}_empty"
    await pg_cluster.execute(f'CREATE DATABASE "{empty}"')
    load = subprocess.run(
        [str(PG_BIN / "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", pg_cluster.host,
         "-p", str(pg_cluster.port), "-U", "postgres", "-d", empty,
         "-f", str(tmp_path / "unpacked" / "database" / f"{pg_pod.name}.sql")],
        env={"PATH": os.environ["PATH"], "PGPASSWORD": pg_cluster.admin_password},
        capture_output=True, text=True,
    )  # fmt: skip
    assert load.returncode == 0, load.stderr
    assert await pg_rows(pg_pod, empty, cluster=pg_cluster) == want_rows

    # Expiry: the link answers 410, the cleanup deletes the file and marks the row.
    export_id = uuid.UUID(info["id"])
    async with app.state.sessionmaker() as session:
        past = utcnow() - timedelta(minutes=5)
        await session.execute(update(Export).where(Export.id == export_id).values(expires_at=past))
        await session.commit()
    stale = (await client.get(f"/v1/exports/{export_id}", headers=tenant.headers)).json()
    assert stale["status"] == "expired"  # at once, not only once the sweep ran
    assert stale["download_url"] is None
    gone = await fetch(client, info)  # the link handed out before: its record has expired
    assert gone.status_code == 410, gone.text
    stored = settings.export_path / f"{export_id}.tar.gz"
    assert stored.exists()
    services: Any = SimpleNamespace(settings=settings, sessionmaker=app.state.sessionmaker)
    assert await expire_exports(services) == 1
    assert not stored.exists()
    after = (await client.get(f"/v1/exports/{export_id}", headers=tenant.headers)).json()
    assert after["status"] == "expired"
    assert after["download_url"] is None
    assert await expire_exports(services) == 0


async def test_export_now_with_mariadb_loads_into_an_empty_database(
    client: httpx.AsyncClient,
    admin_token: str,
    tenant: Tenant,
    mysql_pod: DbEndpoint,
    worker: WorkerProcess,
    tmp_path: Path,
) -> None:
    build_pod_tree(tmp_path / "pod")
    seed_mysql(mysql_pod)
    want_rows = my_rows(mysql_pod.name)
    pod = await create_pod(
        client,
        auth(admin_token),
        account_id=tenant.account_id,
        files={"kind": "local", "path": str(tmp_path / "pod")},
        database=database_spec(mysql_pod),
    )  # no backup target: an export of the pod as it is now needs none
    job, info = await run_export(client, tenant, pod["id"], None)
    assert job["status"] == "succeeded", (job, worker.logs()[-3000:])
    assert job["result"]["database"]["tables"]["numbers"] == 2000
    got = await fetch(client, info)
    assert got.status_code == 200
    names = unpack(got.content, tmp_path / "unpacked")
    assert "database" in names
    assert {f"database/{mysql_pod.name}.sql", "files/uploads/empty.txt"} <= set(names)
    problems = diff_states(
        tree_state(tmp_path / "pod"), tree_state(tmp_path / "unpacked" / "files")
    )
    assert not problems, problems

    empty = f"{mysql_pod.name}_empty"
    mysql_admin(f"CREATE DATABASE `{empty}`;")
    dump = tmp_path / "unpacked" / "database" / f"{mysql_pod.name}.sql"
    with dump.open("rb") as fh:
        load = subprocess.run(
            ["mariadb", "--no-defaults", "-u", "root", f"--host={MYSQL_HOST}",
             f"--port={MYSQL_PORT}", "--protocol=TCP", f"--database={empty}"],
            stdin=fh, capture_output=True,
        )  # fmt: skip
    assert load.returncode == 0, load.stderr
    assert my_rows(empty) == want_rows


def corrupt_largest_pack(repo: Path) -> None:
    """Flip bytes every 64 KiB of the largest pack: every big blob in it (the pod's
    data/big.bin) fails its MAC, as on a bucket that lost or garbled data."""
    packs = [p for p in (repo / "data").rglob("*") if p.is_file()]
    pack = max(packs, key=lambda p: p.stat().st_size)
    pack.chmod(0o644)
    with pack.open("r+b") as fh:
        for offset in range(4096, pack.stat().st_size - 64, 64 * 1024):
            fh.seek(offset)
            fh.write(b"\xde\xad\xbe\xef" * 4)


async def test_damaged_repository_fails_the_export_and_cuts_the_download(
    client: httpx.AsyncClient,
    admin_token: str,
    tenant: Tenant,
    worker: WorkerProcess,
    tmp_path: Path,
    settings: Settings,
    app: FastAPI,
) -> None:
    build_pod_tree(tmp_path / "pod", big_mb=4)
    pod = await create_pod(
        client,
        auth(admin_token),
        account_id=tenant.account_id,
        files={"kind": "local", "path": str(tmp_path / "pod")},
        target={"kind": "local", "path": str(tmp_path / "repo")},
    )
    job = await backup(client, tenant.headers, pod["id"])
    assert job["status"] == "succeeded", (job, worker.logs()[-3000:])
    corrupt_largest_pack(tmp_path / "repo")

    snap = job["result"]["snapshot_id"]
    job, info = await run_export(client, tenant, pod["id"], {"snapshot_id": snap})
    assert job["status"] == "failed", job
    assert job["error"]["code"] == "repository_damaged"
    assert job["error"]["hint"]
    assert info["status"] == "failed"
    assert info["download_url"] is None
    assert list(settings.export_path.iterdir()) == []  # no partial file left behind

    # A folder download sees restic fail before it answers: an error with the code and
    # hint, not a 200 (a failure after the first bytes cuts the connection instead:
    # tests/snapshots/test_download_errors.py).
    url = f"/v1/pods/{pod['id']}/snapshots/{snap}/download"
    await wait_index(client, tenant.headers, pod["id"], snap)
    async with serve(app) as base, httpx.AsyncClient(base_url=base, headers=tenant.headers) as http:
        r = await http.get(url, params={"path": "/files/data"})
        assert r.status_code == 409, r.text
        assert "(repository_damaged)" in r.json()["detail"]
        assert r.json()["hint"]
