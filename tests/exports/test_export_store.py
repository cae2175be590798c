"""Exports in the operator's export bucket: the API and the worker share no disk (each has
its own data and cache folders, as on two hosts), the archive goes to S3 and the API streams
it from there; expiry deletes the object, and a bucket that is down keeps the row for the
next sweep instead of forgetting a plaintext copy of a pod."""

from __future__ import annotations

import hashlib
import uuid
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from pydantic import SecretStr, ValidationError
from sqlalchemy import update

from app.config import Settings
from app.exports.cleanup import expire_exports, sweep_orphans
from app.kit import netpolicy
from app.models import Export
from app.models.base import utcnow
from tests.backups.helpers import build_pod_tree, create_pod, diff_states, tree_state
from tests.conftest import Tenant, auth
from tests.exports.test_exports import fetch, run_export, unpack
from tests.fixtures.s3 import S3ServerHandle
from tests.fixtures.worker import WorkerProcess


@pytest.fixture
def settings(
    settings: Settings, s3_server: S3ServerHandle, s3_bucket: str, tmp_path: Path
) -> Settings:
    """The API host's settings: its own data and cache folders, the export bucket."""
    return settings.model_copy(
        update={
            "data_dir": tmp_path / "api-host" / "data",
            "cache_dir": tmp_path / "api-host" / "cache",
            "export_s3_endpoint": s3_server.url,
            "export_s3_bucket": s3_bucket,
            "export_s3_access_key_id": s3_server.access_key,
            "export_s3_secret_access_key": SecretStr(s3_server.secret_key),
        }
    )


def files_under(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file()] if folder.exists() else []


def sweeper(settings: Settings, app: FastAPI) -> Any:
    return SimpleNamespace(settings=settings, sessionmaker=app.state.sessionmaker)


async def test_an_export_made_on_one_host_downloads_from_another_and_expires(
    client: httpx.AsyncClient,
    admin_token: str,
    tenant: Tenant,
    settings: Settings,
    app: FastAPI,
    s3_server: S3ServerHandle,
    s3_bucket: str,
    tmp_path: Path,
) -> None:
    worker_settings = settings.model_copy(
        update={
            "data_dir": tmp_path / "worker-host" / "data",
            "cache_dir": tmp_path / "worker-host" / "cache",
        }
    )
    assert worker_settings.export_path != settings.export_path
    worker = WorkerProcess(worker_settings, tmp_path / "worker-host").start()
    try:
        build_pod_tree(tmp_path / "pod")
        pod = await create_pod(
            client,
            auth(admin_token),
            account_id=tenant.account_id,
            files={"kind": "local", "path": str(tmp_path / "pod")},
        )
        job, info = await run_export(client, tenant, pod["id"], None)
        assert job["status"] == "succeeded", (job, worker.logs()[-3000:])
    finally:
        worker.stop()
    assert info["status"] == "ready"
    key = f"exports/{info['id']}.tar.gz"
    assert s3_server.keys(s3_bucket) == [key]
    # Neither host keeps a copy: not the API's folders, not the worker's (no partial left).
    for host in ("api-host", "worker-host"):
        assert files_under(tmp_path / host / "data") == []
        assert [p for p in files_under(tmp_path / host / "cache") if "exports" in p.parts] == []

    got = await fetch(client, info)  # the API streams it from the bucket
    assert got.status_code == 200, got.text
    assert got.headers["content-type"] == "application/gzip"
    assert int(got.headers["content-length"]) == info["size_bytes"] == len(got.content)
    assert hashlib.sha256(got.content).hexdigest() == info["sha256"]
    unpack(got.content, tmp_path / "unpacked")
    problems = diff_states(
        tree_state(tmp_path / "pod"), tree_state(tmp_path / "unpacked" / "files")
    )
    assert not problems, problems

    # Expiry, swept by the worker's host: the object is deleted, the row marked.
    export_id = uuid.UUID(info["id"])
    async with app.state.sessionmaker() as session:
        past = utcnow() - timedelta(minutes=5)
        await session.execute(update(Export).where(Export.id == export_id).values(expires_at=past))
        await session.commit()
    assert (await fetch(client, info)).status_code == 410
    assert await expire_exports(sweeper(worker_settings, app)) == 1
    assert s3_server.keys(s3_bucket) == []
    after = (await client.get(f"/v1/exports/{export_id}", headers=tenant.headers)).json()
    assert (after["status"], after["download_url"]) == ("expired", None)
    assert await expire_exports(sweeper(worker_settings, app)) == 0


async def test_a_bucket_that_is_down_answers_503_and_keeps_the_row_for_the_next_sweep(
    client: httpx.AsyncClient,
    admin_token: str,
    tenant: Tenant,
    settings: Settings,
    app: FastAPI,
    s3_server: S3ServerHandle,
    s3_bucket: str,
    tmp_path: Path,
) -> None:
    (tmp_path / "pod").mkdir()
    pod = await create_pod(
        client,
        auth(admin_token),
        account_id=tenant.account_id,
        files={"kind": "local", "path": str(tmp_path / "pod")},
    )
    export_id = uuid.uuid4()
    key = f"exports/{export_id}.tar.gz"
    s3_server.client().put_object(Bucket=s3_bucket, Key=key, Body=b"archive bytes")
    async with app.state.sessionmaker() as session:
        session.add(
            Export(
                id=export_id,
                pod_id=uuid.UUID(pod["id"]),
                account_id=tenant.account_id,
                status="ready",
                storage_key=f"s3://{s3_bucket}/{key}",
                size_bytes=13,
                expires_at=utcnow() + timedelta(hours=1),
            )
        )
        await session.commit()
    info = (await client.get(f"/v1/exports/{export_id}", headers=tenant.headers)).json()

    s3_server.stop()
    try:
        down = await fetch(client, info)
        assert down.status_code == 503, down.text
        assert down.json()["hint"]
        assert s3_server.endpoint not in down.text  # the operator's address is not shown
        async with app.state.sessionmaker() as session:
            past = utcnow() - timedelta(minutes=5)
            await session.execute(
                update(Export).where(Export.id == export_id).values(expires_at=past)
            )
            await session.commit()
        assert await expire_exports(sweeper(settings, app)) == 0
    finally:
        s3_server.start()
    async with app.state.sessionmaker() as session:
        row = await session.get(Export, export_id)
        assert row is not None
        assert row.status == "ready"  # not forgotten
    assert s3_server.keys(s3_bucket) == [key]
    assert await expire_exports(sweeper(settings, app)) == 1
    assert s3_server.keys(s3_bucket) == []


def test_the_export_store_is_configured_all_or_nothing(tmp_path: Path) -> None:
    with pytest.raises(ValidationError) as caught:
        Settings(_env_file=None, export_s3_endpoint="https://s3.example.com")  # type: ignore[call-arg]
    assert "PODBACKUP_EXPORT_S3_BUCKET" in str(caught.value)
    with pytest.raises(ValidationError, match="not part of the URL"):
        Settings(
            _env_file=None,  # type: ignore[call-arg]
            export_s3_endpoint="https://s3.example.com/exports",
            export_s3_bucket="exports",
            export_s3_access_key_id="key",
            export_s3_secret_access_key="secret",  # type: ignore[arg-type]
        )
    secret = tmp_path / "secret"
    secret.write_text("from-a-file\n")
    ok = Settings(
        _env_file=None,  # type: ignore[call-arg]
        export_s3_endpoint="https://s3.example.com",
        export_s3_bucket="exports",
        export_s3_access_key_id="key",
        export_s3_secret_access_key_file=secret,
    )
    assert ok.export_s3_secret_access_key is not None
    assert ok.export_s3_secret_access_key.get_secret_value() == "from-a-file"
    assert "from-a-file" not in repr(ok)


async def test_tenants_cannot_point_at_the_export_store(settings: Settings) -> None:
    policy = netpolicy.Policy.from_settings(settings)
    port = int(str(settings.export_s3_endpoint).rsplit(":", 1)[1])
    with pytest.raises(netpolicy.OutboundAddressRefused, match="export store"):
        await netpolicy.check_on_save(policy, "endpoint", "127.0.0.1", port)


async def test_archives_of_deleted_pods_are_swept_and_nothing_else(
    client: httpx.AsyncClient,
    admin_token: str,
    tenant: Tenant,
    settings: Settings,
    app: FastAPI,
    s3_server: S3ServerHandle,
    s3_bucket: str,
    tmp_path: Path,
) -> None:
    pods = []
    for name in ("kept", "deleted"):
        (tmp_path / name).mkdir()
        pods.append(
            await create_pod(
                client,
                auth(admin_token),
                account_id=tenant.account_id,
                name=name,
                files={"kind": "local", "path": str(tmp_path / name)},
            )
        )
    ids = [uuid.uuid4(), uuid.uuid4()]
    s3 = s3_server.client()
    async with app.state.sessionmaker() as session:
        for pod, export_id in zip(pods, ids, strict=True):
            key = f"exports/{export_id}.tar.gz"
            s3.put_object(Bucket=s3_bucket, Key=key, Body=b"archive")
            session.add(
                Export(
                    id=export_id,
                    pod_id=uuid.UUID(pod["id"]),
                    account_id=tenant.account_id,
                    status="ready",
                    storage_key=f"s3://{s3_bucket}/{key}",
                    expires_at=utcnow() + timedelta(hours=1),
                )
            )
        await session.commit()
    s3.put_object(Bucket=s3_bucket, Key="exports/notes.txt", Body=b"not an archive of ours")
    s3.put_object(Bucket=s3_bucket, Key="elsewhere/x.tar.gz", Body=b"outside the prefix")
    r = await client.delete(f"/v1/pods/{pods[1]['id']}", headers=auth(admin_token))
    assert r.status_code == 204, r.text  # its export row goes with it

    assert await sweep_orphans(sweeper(settings, app)) == 0  # younger than the grace
    assert await sweep_orphans(sweeper(settings, app), grace=timedelta(0)) == 1
    assert set(s3_server.keys(s3_bucket)) == {
        "elsewhere/x.tar.gz",
        "exports/notes.txt",
        f"exports/{ids[0]}.tar.gz",
    }
