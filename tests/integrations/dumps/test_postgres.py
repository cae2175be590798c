"""PostgreSQL dumps against a real server, with a login that needs its password."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
import stat
import subprocess
from dataclasses import replace
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from app.integrations.dumps import (
    DbEndpoint,
    DumpError,
    dump,
    load,
    read_manifest,
    table_counts,
    trial_restore,
)
from app.kit.netpolicy import OutboundAddressRefused, Policy
from tests.fixtures.databases import (
    PG_SERVER,
    PgCluster,
    create_pg_pod,
    drop_pg_pod,
    find_processes,
    pg_database_exists,
    wait_gone,
)

TEXTS = [
    "it's",
    'double "quotes"',
    "back\\slash \\N \\t",
    "new\nline\r\nand tab\there",
    "\\.",
    "a\n\\.\nb",
    "-- PostgreSQL database dump complete",
    "ünïcödé ✓ 🎉 中文",
    "",
    None,
]
SCHEMA = """
CREATE TABLE people (
    id serial PRIMARY KEY, name text, data bytea, price numeric(24, 6), doc json,
    docb jsonb, born date
);
CREATE TABLE orders (id bigserial PRIMARY KEY, person_id int REFERENCES people(id), qty int);
CREATE TABLE empty_one (id int);
CREATE SCHEMA "Other Schema";
CREATE TABLE "Other Schema"."Mixed ""Case"" t" (v text);
CREATE VIEW people_names AS SELECT name FROM people;
CREATE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN NEW.qty := coalesce(NEW.qty, 0); RETURN NEW; END $$;
CREATE TRIGGER orders_touch BEFORE INSERT ON orders FOR EACH ROW EXECUTE FUNCTION touch();
"""


async def connect(ep: DbEndpoint, database: str | None = None) -> asyncpg.Connection:
    return await asyncpg.connect(
        host=ep.host, port=ep.port, user=ep.username, password=ep.password,
        database=database or ep.name,
    )  # fmt: skip


async def populate(ep: DbEndpoint, bulk: int = 3000) -> None:
    conn = await connect(ep)
    try:
        await conn.execute(SCHEMA)
        for i, text in enumerate(TEXTS):
            await conn.execute(
                "INSERT INTO people (name, data, price, doc, docb, born) "
                "VALUES ($1, $2, $3, $4, $5, $6)",
                text,
                bytes(range(256)) if i % 3 == 0 else (None if i % 3 == 1 else b"\\.\n\x00"),
                Decimal("12345678901234567.123456") if i % 2 else None,
                json.dumps({"t": text, "n": [1, 2.5, None]}),
                json.dumps({"k": text}),
                None if i % 4 else date(2000, 1, i + 1),
            )
        await conn.execute(
            "INSERT INTO orders (person_id, qty) "
            "SELECT 1 + g % 10, g FROM generate_series(1, $1) g",
            bulk,
        )
        await conn.execute(
            'INSERT INTO "Other Schema"."Mixed ""Case"" t" VALUES (\'x\'), (\'y\\z\')'
        )
    finally:
        await conn.close()


async def snapshot(ep: DbEndpoint, database: str | None = None) -> dict[str, list[Any]]:
    """Every row of every user table, in a comparable order."""
    conn = await connect(ep, database)
    try:
        tables = await conn.fetch(
            "SELECT format('%I.%I', schemaname, tablename) AS t FROM pg_tables "
            "WHERE schemaname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1"
        )
        return {
            r["t"]: [tuple(row) for row in await conn.fetch(f"SELECT * FROM {r['t']} ORDER BY 1")]
            for r in tables
        }
    finally:
        await conn.close()


def argv_text(path: Path) -> str:
    return path.read_text() if path.exists() else ""


async def test_round_trip_into_an_empty_and_into_the_changed_database(
    pg_pod: DbEndpoint, policy: Policy, tmp_path: Path, argv_log: Path
) -> None:
    await populate(pg_pod)
    before = await snapshot(pg_pod)
    counts = await table_counts(pg_pod, policy)
    assert counts["public.orders"] == 3000
    assert counts['Other Schema.Mixed "Case" t'] == 2
    progress: list[int] = []

    result = await dump(pg_pod, policy, tmp_path / "db.sql", on_progress=progress.append)

    assert result.tables == counts
    data = result.path.read_bytes()
    assert result.bytes == len(data)
    assert progress[-1] == len(data)
    assert result.sha256 == hashlib.sha256(data).hexdigest()
    assert stat.S_IMODE(result.path.stat().st_mode) == 0o600
    assert "pg_dump" in result.client
    assert re.match(r"\d+", result.server_version)
    assert b"OWNER TO" not in data
    assert b"GRANT " not in data

    # (a) into a database that does not exist yet: load creates it
    copy = replace(pg_pod, name=f"{pg_pod.username}_copy")
    read: list[int] = []
    loaded = await load(copy, policy, result.path, on_progress=read.append)
    assert loaded.tables == counts
    assert read[-1] == len(data)
    assert await snapshot(copy) == before

    # (b) into the original after rows changed and a table was dropped and another added
    conn = await connect(pg_pod)
    await conn.execute("DELETE FROM orders WHERE id % 2 = 0; UPDATE people SET name = 'changed'")
    await conn.execute(
        "DROP TABLE empty_one; CREATE TABLE newcomer (x int); DROP VIEW people_names"
    )
    await conn.close()
    reloaded = await load(pg_pod, policy, result.path, replace=True)
    assert reloaded.tables == counts
    assert await snapshot(pg_pod) == before
    assert "public.newcomer" not in await table_counts(pg_pod, policy)

    # the password went to the children through their environment only
    log = argv_text(argv_log)
    assert "pg_dump" in log
    assert "psql" in log
    assert pg_pod.password
    assert pg_pod.password not in log
    assert json.dumps(pg_pod.password)[1:-1] not in log


async def test_replace_when_public_belongs_to_another_role(
    pg_pod: DbEndpoint, pg_cluster: PgCluster, policy: Policy, tmp_path: Path
) -> None:
    # as before PostgreSQL 15: public owned by the superuser, the pod may only create in it
    await pg_cluster.execute(
        "ALTER SCHEMA public OWNER TO postgres; "
        f'GRANT USAGE, CREATE ON SCHEMA public TO "{pg_pod.username}"',
        database=pg_pod.name,
    )
    await populate(pg_pod, bulk=10)
    before = await snapshot(pg_pod)
    result = await dump(pg_pod, policy, tmp_path / "db.sql")
    conn = await connect(pg_pod)
    await conn.execute(
        "INSERT INTO orders (person_id, qty) VALUES (1, 99); CREATE TABLE extra (x int)"
    )
    await conn.close()
    await load(pg_pod, policy, result.path)
    assert await snapshot(pg_pod) == before


async def test_a_failed_load_changes_nothing(
    pg_pod: DbEndpoint, policy: Policy, tmp_path: Path
) -> None:
    await populate(pg_pod, bulk=10)
    before = await snapshot(pg_pod)
    good = (await dump(pg_pod, policy, tmp_path / "db.sql")).path.read_bytes()
    broken = tmp_path / "broken.sql"
    marker = b"--\n-- PostgreSQL database dump complete"
    broken.write_bytes(good.replace(marker, b"THIS IS NOT SQL;\n" + marker))
    with pytest.raises(DumpError) as info:
        await load(pg_pod, policy, broken, replace=True)
    assert info.value.code == "load_failed"
    assert "THIS" in info.value.message or "syntax" in info.value.message
    assert await snapshot(pg_pod) == before  # the wipe was rolled back with the load


async def test_wrong_password(pg_pod: DbEndpoint, policy: Policy, tmp_path: Path) -> None:
    wrong = replace(pg_pod, password=pg_pod.password + "-not")  # type: ignore[operator]
    with pytest.raises(DumpError) as info:
        await dump(wrong, policy, tmp_path / "db.sql")
    assert info.value.code == "auth_failed"
    assert wrong.password not in str(info.value)
    assert wrong.password not in repr(info.value.args)
    assert not (tmp_path / "db.sql").exists()
    with pytest.raises(DumpError) as info:
        await dump(replace(pg_pod, password=None), policy, tmp_path / "db.sql")
    assert info.value.code == "auth_failed"


async def test_missing_database(pg_pod: DbEndpoint, policy: Policy, tmp_path: Path) -> None:
    with pytest.raises(DumpError) as info:
        await dump(replace(pg_pod, name=pg_pod.name + "_nope"), policy, tmp_path / "db.sql")
    assert info.value.code == "database_not_found"
    assert info.value.hint


async def test_refused_address_spawns_nothing(
    pg_pod: DbEndpoint, tmp_path: Path, argv_log: Path
) -> None:
    with pytest.raises(OutboundAddressRefused):
        await dump(pg_pod, Policy(), tmp_path / "db.sql")
    assert argv_text(argv_log) == ""


async def test_unreachable(pg_pod: DbEndpoint, policy: Policy, tmp_path: Path) -> None:
    from tests.fixtures.databases import free_port

    with pytest.raises(DumpError) as info:
        await dump(replace(pg_pod, port=free_port()), policy, tmp_path / "db.sql")
    assert info.value.code == "unreachable"
    with pytest.raises(DumpError) as info:
        await dump(replace(pg_pod, host="no-such-host.invalid"), policy, tmp_path / "db.sql")
    assert info.value.code == "unreachable"


async def test_a_failing_pg_dump_leaves_no_file(
    pg_pod: DbEndpoint, pg_cluster: PgCluster, policy: Policy, tmp_path: Path
) -> None:
    # a table the pod's login may not read: pg_dump exits non-zero
    await pg_cluster.execute("CREATE TABLE secret_admin (x int)", database=pg_pod.name)
    with pytest.raises(DumpError) as info:
        await dump(pg_pod, policy, tmp_path / "db.sql")
    assert info.value.code == "dump_failed"
    assert "permission denied" in info.value.message
    assert not (tmp_path / "db.sql").exists()


async def test_trial_restore_passes_a_good_dump_and_fails_a_truncated_one(
    pg_pod: DbEndpoint, policy: Policy, tmp_path: Path, argv_log: Path
) -> None:
    await populate(pg_pod, bulk=500)
    result = await dump(pg_pod, policy, tmp_path / "db.sql")

    drill = await trial_restore(result.path, "postgres", PG_SERVER, expected=result.tables)
    assert drill.ok, drill.problems
    assert drill.tables["public.orders"] == {"expected": 500, "restored": 500, "ok": True}
    scratch = re.findall(r"dbname='(podbackup_drill_[0-9a-f]+)'", argv_text(argv_log))
    assert scratch
    assert not await pg_database_exists(scratch[0])

    # counts recorded at dump time that the dump does not hold: the drill says which
    wrong = dict(result.tables, **{"public.orders": 501})
    drill = await trial_restore(result.path, "postgres", PG_SERVER, expected=wrong)
    assert not drill.ok
    assert drill.problems == ["table public.orders: 501 rows expected, 500 restored"]

    data = result.path.read_bytes()
    cut = tmp_path / "cut.sql"
    cut.write_bytes(data[: len(data) // 2])
    manifest = read_manifest(cut)
    assert manifest.kind == "postgres"
    assert not manifest.complete
    drill = await trial_restore(cut, "postgres", PG_SERVER, expected=result.tables)
    assert not drill.ok
    assert drill.problems


async def _start_blocked_dump(
    pg_pod: DbEndpoint, pg_cluster: PgCluster, policy: Policy, dest: Path, **kwargs: Any
) -> tuple[asyncpg.Connection, asyncio.Task[Any]]:
    """A dump that waits on a lock another session holds, and the pg_dump running it."""
    await populate(pg_pod, bulk=10)
    locker = await pg_cluster.connect(pg_pod.name)
    await locker.execute("BEGIN; LOCK TABLE orders IN ACCESS EXCLUSIVE MODE")
    task = asyncio.create_task(dump(pg_pod, policy, dest, **kwargs))
    for _ in range(200):
        if find_processes(f"dbname='{pg_pod.name}'"):
            break
        await asyncio.sleep(0.05)
    else:
        pytest.fail("pg_dump did not start")
    return locker, task


async def test_cancel_kills_the_dump(
    pg_pod: DbEndpoint, pg_cluster: PgCluster, policy: Policy, tmp_path: Path
) -> None:
    cancel = asyncio.Event()
    locker, task = await _start_blocked_dump(
        pg_pod, pg_cluster, policy, tmp_path / "db.sql", cancel=cancel
    )
    try:
        await asyncio.sleep(0.3)
        assert not task.done()
        cancel.set()
        with pytest.raises(DumpError) as info:
            await task
        assert info.value.code == "canceled"
        assert wait_gone(f"dbname='{pg_pod.name}'") == []
        assert not (tmp_path / "db.sql").exists()
    finally:
        await locker.close()


async def test_timeout_kills_the_dump(
    pg_pod: DbEndpoint, pg_cluster: PgCluster, policy: Policy, tmp_path: Path
) -> None:
    locker, task = await _start_blocked_dump(
        pg_pod, pg_cluster, policy, tmp_path / "db.sql", timeout=2
    )
    try:
        with pytest.raises(DumpError) as info:
            await task
        assert info.value.code == "timeout"
        assert wait_gone(f"dbname='{pg_pod.name}'") == []
        assert not (tmp_path / "db.sql").exists()
    finally:
        await locker.close()


async def test_dump_loads_with_plain_psql_under_another_login(
    pg_pod: DbEndpoint, pg_cluster: PgCluster, policy: Policy, tmp_path: Path
) -> None:
    # what an owner does with an export: psql -f database/<name>.sql into an empty database
    await populate(pg_pod, bulk=50)
    result = await dump(pg_pod, policy, tmp_path / "db.sql")
    other = await create_pg_pod(pg_cluster, createdb=False)
    try:
        done = subprocess.run(
            ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-f", str(result.path),
             f"postgresql://{other.username}@{other.host}:{other.port}/{other.name}"],
            env={"PATH": os.environ["PATH"], "PGPASSWORD": other.password or ""},
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert await table_counts(other, policy) == result.tables
    finally:
        await drop_pg_pod(pg_cluster, other)


async def test_a_drill_that_times_out_still_drops_its_scratch_database(
    pg_pod: DbEndpoint, policy: Policy, tmp_path: Path, argv_log: Path
) -> None:
    await populate(pg_pod, bulk=10)
    result = await dump(pg_pod, policy, tmp_path / "db.sql")
    # a dump whose load sleeps: the drill's time limit interrupts it
    slow = tmp_path / "slow.sql"
    marker = b"--\n-- PostgreSQL database dump complete"
    slow.write_bytes(result.path.read_bytes().replace(marker, b"SELECT pg_sleep(30);\n" + marker))
    drill = await trial_restore(slow, "postgres", PG_SERVER, timeout=3)
    assert not drill.ok
    assert "timeout" in drill.problems[0]
    scratch = re.findall(r"dbname='(podbackup_drill_[0-9a-f]+)'", argv_text(argv_log))
    assert scratch
    assert not await pg_database_exists(scratch[-1])
