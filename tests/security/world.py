"""A small populated world for the security and fuzz suites: two accounts, each with a
pod (SFTP files and a PostgreSQL database, both with passwords), backup settings with an
S3 secret, a webhook, a finished job, a snapshot, an export and a spare token.

Nothing here connects anywhere: hosts are loopback ports nobody listens on (the test
settings allow-list loopback). Objects that only workers make (jobs, snapshots, exports)
are inserted as rows.
"""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.auth.tokens import create_token
from app.models import Export, Job, JobEvent, Snapshot
from app.models.base import utcnow
from tests.conftest import Tenant, auth, make_tenant

CLOSED_PORT = 9  # discard: nothing listens on it here


@dataclass
class Owned:
    """One account's objects, by the path-parameter name that addresses each."""

    tenant: Tenant
    name: str
    ids: dict[str, str] = field(default_factory=dict)
    secrets: dict[str, str] = field(default_factory=dict)  # values that must never leak

    @property
    def headers(self) -> dict[str, str]:
        return self.tenant.headers

    def markers(self) -> list[str]:
        """Strings that identify this account's objects in any response."""
        return [*self.ids.values(), self.name]


@dataclass
class World:
    admin_token: str
    a: Owned
    b: Owned


def pod_body(name: str, db_password: str, sftp_password: str) -> dict[str, Any]:
    return {
        "name": name,
        "app": "wikijs",
        "files": {
            "kind": "sftp",
            "host": "127.0.0.1",
            "port": CLOSED_PORT,
            "username": "pod",
            "password": sftp_password,
            "path": "/",
        },
        "database": {
            "kind": "postgres",
            "host": "127.0.0.1",
            "port": CLOSED_PORT,
            "name": "app",
            "username": "app",
            "password": db_password,
        },
    }


def s3_settings(bucket: str, access_key: str, secret_key: str) -> dict[str, Any]:
    return {
        "target": {
            "kind": "s3",
            "endpoint": f"127.0.0.1:{CLOSED_PORT}",
            "bucket": bucket,
            "access_key_id": access_key,
            "secret_access_key": secret_key,
        }
    }


async def _owned(
    client: httpx.AsyncClient,
    maker: async_sessionmaker[AsyncSession],
    admin_token: str,
    label: str,
) -> Owned:
    name = f"acct-{label}-{secrets.token_hex(3)}"
    tenant = await make_tenant(client, admin_token, name)
    owned = Owned(tenant=tenant, name=name)
    owned.ids["account_id"] = str(tenant.account_id)
    owned.secrets = {
        "sftp_password": f"sftp-{label}-{secrets.token_urlsafe(12)}",
        "db_password": f"db-{label}-{secrets.token_urlsafe(12)}",
        "s3_secret": f"s3-{label}-{secrets.token_urlsafe(24)}",
        "token": tenant.token,
    }
    r = await client.post(
        "/v1/pods",
        json=pod_body(f"pod-{name}", owned.secrets["db_password"], owned.secrets["sftp_password"]),
        headers=tenant.headers,
    )
    assert r.status_code == 201, r.text
    pod_id = r.json()["id"]
    owned.ids["pod_id"] = pod_id
    r = await client.put(
        f"/v1/pods/{pod_id}/backup-settings",
        json=s3_settings(f"bucket-{label}-{secrets.token_hex(4)}", f"AK{label.upper()}0001",
                         owned.secrets["s3_secret"]),
        headers=tenant.headers,
    )  # fmt: skip
    assert r.status_code == 200, r.text
    # A second copy, so its routes answer the owner.
    r = await client.put(
        f"/v1/pods/{pod_id}/copy-settings",
        json=s3_settings(f"copy-{label}-{secrets.token_hex(4)}", f"AK{label.upper()}0001",
                         owned.secrets["s3_secret"]),
        headers=tenant.headers,
    )  # fmt: skip
    assert r.status_code == 200, r.text
    r = await client.post(
        "/v1/webhooks",
        json={"url": f"http://127.0.0.1:{CLOSED_PORT}/hook-{label}"},
        headers=tenant.headers,
    )
    assert r.status_code == 201, r.text
    owned.ids["webhook_id"] = r.json()["id"]
    owned.secrets["webhook_secret"] = r.json()["secret"]
    r = await client.post(
        f"/v1/accounts/{tenant.account_id}/tokens",
        json={"name": "spare"},
        headers=auth(admin_token),
    )
    assert r.status_code == 201, r.text
    owned.ids["token_id"] = r.json()["id"]  # a spare: revoking it harms nothing
    owned.secrets["spare_token"] = r.json()["token"]

    now = utcnow()
    async with maker() as session:
        job = Job(
            id=uuid.uuid4(),
            pod_id=uuid.UUID(pod_id),
            account_id=tenant.account_id,
            kind="backup",
            status="succeeded",
            trigger="manual",
            params={},
            progress={"phase": "succeeded", "percent": 100.0},
            result={"snapshot_id": None},
            attempt=1,
            max_attempts=3,
            created_at=now - timedelta(minutes=5),
            started_at=now - timedelta(minutes=5),
            finished_at=now - timedelta(minutes=4),
        )
        session.add(job)
        await session.flush()
        session.add(JobEvent(job_id=job.id, type="state", data={"status": "succeeded",
                                                               "final": True}, at=now))  # fmt: skip
        snap_id = secrets.token_hex(32)
        session.add(
            Snapshot(
                pod_id=uuid.UUID(pod_id),
                plan="owner",
                id=snap_id,
                short_id=snap_id[:8],
                time=now - timedelta(minutes=4),
                hostname=pod_id,
                paths=["/stage"],
                tags=[f"pod:{pod_id}", "trigger:manual"],
                summary={"files_new": 1},
                job_id=job.id,
            )
        )
        export = Export(
            id=uuid.uuid4(),
            pod_id=uuid.UUID(pod_id),
            account_id=tenant.account_id,
            job_id=job.id,
            snapshot_id=snap_id,
            status="ready",
            size_bytes=10,
            sha256="0" * 64,
            expires_at=now + timedelta(hours=1),
            ready_at=now,
        )
        session.add(export)
        await session.commit()
    owned.ids["job_id"] = str(job.id)
    owned.ids["snapshot_id"] = snap_id
    owned.ids["export_id"] = str(export.id)
    return owned


async def build_world(client: httpx.AsyncClient, maker: async_sessionmaker[AsyncSession]) -> World:
    async with maker() as session:
        admin = await create_token(session, scope="admin", account_id=None, name="world-admin")
        await session.commit()
    a = await _owned(client, maker, admin.token, "a")
    b = await _owned(client, maker, admin.token, "b")
    return World(admin_token=admin.token, a=a, b=b)
