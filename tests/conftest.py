"""Shared fixtures: real PostgreSQL and Redis, the app on an in-process ASGI transport."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from app.config import Settings
from app.kit.crypto import generate_key
from app.main import create_app
from tests.fixtures.database import database_url, truncate_all  # noqa: F401

REDIS_URL = "redis://127.0.0.1:6379/0"
SECRET_KEY = generate_key("test1")  # one per test run, shared with worker processes


@pytest.fixture
def run_id() -> str:
    return secrets.token_hex(4)


@pytest.fixture
def settings(database_url: str, tmp_path: Path, run_id: str) -> Settings:  # noqa: F811
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        database_url=database_url,
        redis_url=REDIS_URL,
        queue_name=f"podbackup-test:{run_id}",
        secret_keys=[SECRET_KEY],  # type: ignore[list-item]
        allow_networks=["127.0.0.0/8", "::1/128"],
        data_dir=tmp_path / "data",
        cache_dir=tmp_path / "cache",
        job_retry_base_seconds=0.5,
        job_heartbeat_seconds=0.5,
        reconcile_seconds=1,
        scheduler_enabled=False,  # tests drive the scheduler with a controlled clock
    )


@pytest.fixture
async def app(settings: Settings, database_url: str) -> AsyncIterator[FastAPI]:  # noqa: F811
    await truncate_all(database_url)
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://podbackup.test") as c:
        yield c


@pytest.fixture
async def admin_token(app: FastAPI) -> str:
    from app.auth.tokens import create_token

    async with app.state.sessionmaker() as session:
        new = await create_token(session, scope="admin", account_id=None, name="test-admin")
        await session.commit()
        return new.token


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


class Tenant:
    """An account with its own token."""

    def __init__(self, account_id: uuid.UUID, token: str) -> None:
        self.account_id = account_id
        self.token = token
        self.headers = auth(token)


async def make_tenant(client: httpx.AsyncClient, admin_token: str, name: str = "acme") -> Tenant:
    r = await client.post("/v1/accounts", json={"name": name}, headers=auth(admin_token))
    assert r.status_code == 201, r.text
    account_id = uuid.UUID(r.json()["id"])
    r = await client.post(f"/v1/accounts/{account_id}/tokens", headers=auth(admin_token))
    assert r.status_code == 201, r.text
    return Tenant(account_id, r.json()["token"])


@pytest.fixture
async def tenant(client: httpx.AsyncClient, admin_token: str) -> Tenant:
    return await make_tenant(client, admin_token, "tenant-a")


@pytest.fixture
async def other_tenant(client: httpx.AsyncClient, admin_token: str) -> Tenant:
    return await make_tenant(client, admin_token, "tenant-b")
