"""Pod names are unique per account: 409 with a hint on a duplicate create or rename, and
migration 0004 renames existing duplicates instead of failing."""

from __future__ import annotations

import asyncio
import secrets

import asyncpg
import httpx
from alembic import command
from alembic.config import Config
from fastapi import FastAPI

from app.models import Pod
from app.pods import repository
from tests.conftest import Tenant
from tests.fixtures.database import SERVER, _admin
from tests.pods.test_pods import create_pod, public_body


async def test_duplicate_create_and_rename_are_409(
    client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    wiki = await create_pod(client, tenant, **public_body(name="wiki"))
    r = await client.post("/v1/pods", json=public_body(name="wiki"), headers=tenant.headers)
    assert r.status_code == 409, r.text
    body = r.json()
    assert body["error"] == "PodNameTaken"
    assert "'wiki'" in body["detail"]
    assert wiki["id"] in body["detail"]
    assert "rename" in body["hint"]
    # Another account may use the name; the same account may not rename onto it.
    await create_pod(client, other_tenant, **public_body(name="wiki"))
    blog = await create_pod(client, tenant, **public_body(name="blog"))
    r = await client.patch(f"/v1/pods/{blog['id']}", json={"name": "wiki"}, headers=tenant.headers)
    assert r.status_code == 409, r.text
    assert r.json()["error"] == "PodNameTaken"
    # Renaming a pod to its own name, or to a free one, is fine.
    for name in ("blog", "blog2"):
        r = await client.patch(
            f"/v1/pods/{blog['id']}", json={"name": name}, headers=tenant.headers
        )
        assert r.status_code == 200, r.text
        assert r.json()["name"] == name


def test_migration_renames_existing_duplicates() -> None:
    name = f"podbackup_test_mig_{secrets.token_hex(4)}"
    asyncio.run(_admin(f'CREATE DATABASE "{name}"'))
    url = f"{SERVER}/{name}"
    cfg = Config("alembic.ini")
    cfg.attributes["database_url"] = url.replace("postgresql://", "postgresql+asyncpg://")
    try:
        command.upgrade(cfg, "0003")
        asyncio.run(_insert_duplicates(url))
        command.upgrade(cfg, "0004")
        names = asyncio.run(_names(url))
    finally:
        asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    # The oldest keeps its name, later ones take the first free suffix ("wiki-2" is taken).
    assert names["a"] == ["wiki", "wiki-3", "wiki-2", "wiki-4", "x" * 200, "x" * 198 + "-2"]
    assert names["b"] == ["wiki"]


async def _insert_duplicates(url: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        for account in ("a", "b"):
            await conn.execute(
                "INSERT INTO accounts (id, name, created_at, updated_at) "
                f"VALUES ('{account * 8}-0000-0000-0000-000000000000', '{account}', now(), now())"
            )
        rows = [("a", "wiki"), ("a", "wiki"), ("a", "wiki-2"), ("a", "wiki")]
        rows += [("a", "x" * 200), ("a", "x" * 200), ("b", "wiki")]
        for i, (account, pod) in enumerate(rows):
            await conn.execute(
                "INSERT INTO pods (id, account_id, name, app, created_at, updated_at) VALUES "
                f"('00000000-0000-0000-0000-{i:012d}', '{account * 8}-0000-0000-0000-"
                f"000000000000', $1, 'x', now() + interval '{i} seconds', now())",
                pod,
            )
    finally:
        await conn.close()


async def _names(url: str) -> dict[str, list[str]]:
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch("SELECT account_id, name FROM pods ORDER BY created_at")
    finally:
        await conn.close()
    out: dict[str, list[str]] = {}
    for row in rows:
        out.setdefault(str(row["account_id"])[0], []).append(row["name"])
    return out


async def test_a_name_won_by_a_concurrent_request_is_caught_at_flush(
    client: httpx.AsyncClient, tenant: Tenant, app: FastAPI
) -> None:
    """The check before the insert can race another request: the unique index decides and
    the loser's flush reports it (the service raises the same 409), not a 500."""
    await create_pod(client, tenant, **public_body(name="wiki"))
    async with app.state.sessionmaker() as session:
        session.add(Pod(account_id=tenant.account_id, name="wiki", app="x"))
        assert await repository.flush_unique_name(session) is False
        await session.rollback()
        session.add(Pod(account_id=tenant.account_id, name="wiki-2", app="x"))
        assert await repository.flush_unique_name(session) is True
        await session.rollback()
