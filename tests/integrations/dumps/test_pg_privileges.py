"""Issue 13.7: after a PostgreSQL restore the pod's other roles keep their access.

Before: dumps were taken with --no-privileges and the wipe recreated schema `public` as
the login's own, so a restore left `public` owned by the login (USAGE for nobody else)
and every GRANT on the tables gone. Now privileges come back where the login may set
them, and what is not restored (owners; grants to roles the server lacks) is said.
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

import asyncpg

from app.integrations.dumps import DbEndpoint, dump, load, trial_restore
from app.kit.netpolicy import Policy
from tests.fixtures.databases import PG_SERVER, PgCluster

PUBLIC = "SELECT nspowner::regrole::text AS owner, nspacl::text[] AS acl FROM pg_namespace "
PUBLIC += "WHERE nspname = 'public'"


async def as_login(ep: DbEndpoint, user: str | None = None, password: str | None = None) -> Any:
    return await asyncpg.connect(
        host=ep.host, port=ep.port, database=ep.name,
        user=user or ep.username, password=password or ep.password,
    )  # fmt: skip


async def test_restore_keeps_public_and_gives_grants_back(
    pg_pod: DbEndpoint, pg_cluster: PgCluster, policy: Policy, tmp_path: Path
) -> None:
    tag = secrets.token_hex(3)
    reader, gone, pw = f"pbt_reader_{tag}", f"pbt_gone_{tag}", secrets.token_hex(8)
    await pg_cluster.execute(f"CREATE ROLE {reader} LOGIN PASSWORD '{pw}'; CREATE ROLE {gone}")
    try:
        db = await as_login(pg_pod)
        await db.execute(
            f"""
            CREATE TABLE t (x int); INSERT INTO t VALUES (1), (2);
            GRANT SELECT ON t TO {reader}; GRANT SELECT, INSERT ON t TO {gone};
            CREATE SCHEMA app; CREATE TABLE app.u (y text); INSERT INTO app.u VALUES ('a');
            GRANT USAGE ON SCHEMA app TO {reader}; GRANT SELECT ON app.u TO {reader};
            ALTER DEFAULT PRIVILEGES IN SCHEMA app GRANT SELECT ON TABLES TO {reader};
            """
        )
        public_before = dict(await db.fetchrow(PUBLIC))
        await db.close()
        assert public_before["owner"] == "pg_database_owner"

        result = await dump(pg_pod, policy, tmp_path / "db.sql")
        assert f"GRANT SELECT ON TABLE public.t TO {reader};".encode() in result.path.read_bytes()

        # the role `gone` disappears from the server before the restore; the data is damaged
        await pg_cluster.execute(f"DROP OWNED BY {gone}", database=pg_pod.name)
        await pg_cluster.execute(f"DROP ROLE {gone}")
        db = await as_login(pg_pod)
        await db.execute("DROP TABLE t; DROP SCHEMA app CASCADE")
        await db.close()

        loaded = await load(pg_pod, policy, result.path, replace=True)
        assert loaded.tables == {"public.t": 2, "app.u": 1}
        notes = "\n".join(loaded.not_restored)
        assert f"every restored object belongs to {pg_pod.username}" in notes
        assert f"privileges for role {gone} were not restored" in notes

        db = await as_login(pg_pod)
        assert dict(await db.fetchrow(PUBLIC)) == public_before  # owner and grants of public
        await db.close()
        other = await as_login(pg_pod, reader, pw)
        try:
            assert await other.fetchval("SELECT count(*) FROM t") == 2
            assert await other.fetchval("SELECT y FROM app.u") == "a"
        finally:
            await other.close()
        db = await as_login(pg_pod)
        await db.execute("CREATE TABLE app.later (z int)")  # default privileges came back
        await db.close()
        other = await as_login(pg_pod, reader, pw)
        try:
            assert await other.fetchval("SELECT count(*) FROM app.later") == 0
        finally:
            await other.close()

        # a drill server has none of the pod's roles: its grants are left out, not fatal
        drill = await trial_restore(result.path, "postgres", PG_SERVER, expected=result.tables)
        assert drill.ok, drill.problems
    finally:
        await pg_cluster.execute(f"DROP OWNED BY {reader}", database=pg_pod.name)
        await pg_cluster.execute(f"DROP ROLE IF EXISTS {reader}; DROP ROLE IF EXISTS {gone}")
