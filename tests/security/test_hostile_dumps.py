"""Issue 12.1: a dump the owner crafted never runs a client command on the worker.

The owner holds the repository password (restore kit), so they can put any
`database/<name>.sql` into a snapshot with plain restic, refresh, and restore it. psql and
mariadb run client commands found in their input (`\\! sh …`, `system …`, `\\e`, `source`,
LOAD DATA LOCAL): each attack here writes a marker file if it runs. Real restic, real
psql/mariadb clients and servers, the real worker and API.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select, update

from app.config import Settings
from app.integrations.dumps import DbEndpoint, DumpError, dump, guard, load, table_counts
from app.kit import subprocess as sp
from app.kit.netpolicy import Policy
from app.models import Snapshot
from tests.backups.conftest import settings, worker  # noqa: F401
from tests.backups.helpers import backup, create_pod, database_spec, wait_job
from tests.conftest import Tenant, auth
from tests.fixtures.databases import mysql_admin, mysql_pod, pg_cluster, pg_pod  # noqa: F401
from tests.fixtures.worker import WorkerProcess, settings_env

POLICY = Policy.from_settings(["127.0.0.0/8"])


def pg_attacks(marker: Path) -> dict[str, str]:
    """Dumps that run a shell (or write a file) through psql if it reads them as given."""
    return {
        "shell": f"CREATE TABLE pwned (x int);\n\\! touch {marker}\n",
        "mid-line": f"CREATE TABLE pwned (x int); \\! touch {marker}\n",
        "output file": f"\\o {marker}\nSELECT 1;\n",
        "set and interpolate": f"\\set cmd 'touch {marker}'\n\\! :cmd\n",
        "own restrict then shell": (f"\\restrict abc\n\\unrestrict abc\n\\! touch {marker}\n"),
        "after COPY data": (
            f"CREATE TABLE t (x text);\nCOPY t (x) FROM stdin;\nok\n\\.\n\\! touch {marker}\n"
        ),
        "COPY line not started": f"SELECT 1;\nok\n\\.\n\\! touch {marker}\n",
        "backquote in args": f"SELECT 1;\n\\echo `touch {marker}`\n",
    }


def mysql_attacks(marker: Path) -> dict[str, str]:
    return {
        "shell": f"CREATE TABLE pwned (x int);\n\\! touch {marker}\n",
        "system": f"CREATE TABLE pwned (x int);\nsystem touch {marker}\n",
        "editor": f"SELECT 1\n\\e\n:!touch {marker}\n:q!\nSELECT 2;\n",
        "tee": f"\\T {marker}\nSELECT 1;\n",
        "local infile": (
            "CREATE TABLE leak (l text);\n"
            f"LOAD DATA LOCAL INFILE '/proc/{os.getpid()}/environ' INTO TABLE leak;\n"
            f"\\! touch {marker}\n"
        ),
    }


# -- the clients, straight (both ways for psql: \restrict and the filter of older clients) --


@pytest.fixture(params=[True, False], ids=["restrict", "filter"])
def psql_way(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> bool:
    """True: this psql's \\restrict; False: as a client without it (the streaming filter)."""
    if not request.param:
        monkeypatch.setattr(guard, "psql_restricts", lambda version: False)
    return bool(request.param)


async def test_psql_runs_no_command_of_a_dump(
    pg_pod: DbEndpoint,  # noqa: F811
    tmp_path: Path,
    psql_way: bool,
) -> None:
    marker = tmp_path / "pwned"
    for name, text in pg_attacks(marker).items():
        sql = tmp_path / f"{name}.sql"
        sql.write_text(text)
        with pytest.raises(DumpError) as caught:
            await load(pg_pod, POLICY, sql, replace=True)
        assert not marker.exists(), name
        assert caught.value.code == "dump_refused", (name, caught.value.message)
        assert "client command" in (caught.value.hint or "")
        # one transaction: what the dump did before the refused line is rolled back
        assert "public.pwned" not in await table_counts(pg_pod, POLICY), name


async def test_a_pg_dump_loads_both_ways(
    pg_pod: DbEndpoint,  # noqa: F811
    tmp_path: Path,
    psql_way: bool,
) -> None:
    """pg_dump's own output (with its own \\restrict lines, COPY data full of escapes,
    functions, odd names) loads whole through either guard. (The filter refuses any
    backslash in SQL text, so a name holding one loads only with \\restrict.)"""
    conn = await asyncpg.connect(
        host=pg_pod.host, port=pg_pod.port, user=pg_pod.username, password=pg_pod.password,
        database=pg_pod.name,
    )  # fmt: skip
    try:
        await conn.execute(
            'CREATE TABLE "we;ird" ( id int, t text, b bytea);'
            "CREATE FUNCTION f() RETURNS text LANGUAGE sql AS $body$ SELECT 'a;b' $body$;"
            "COMMENT ON TABLE \"we;ird\" IS 'it''s -- not /* a comment';"
        )
        await conn.executemany(
            'INSERT INTO "we;ird" VALUES ($1, $2, $3)',
            [
                (1, "back\\slash \\! touch x", b"\\x00"),
                (2, "tab\there\nnew line", b"\x00\xff"),
                (3, "\\.", None),
                (4, "time 12:30 and :x and ::y", b""),
                (5, None, b"`"),
                # longer than the guard's read size: read in pieces, an escape never cut
                (6, "x\\y\tz\n" * 700_000, b"\\" * 300_000),
            ],
        )
    finally:
        await conn.close()
    result = await dump(pg_pod, POLICY, tmp_path / "db.sql")
    assert b"\\restrict " in result.path.read_bytes()  # pg_dump 15.14+ writes its own
    loaded = await load(pg_pod, POLICY, result.path, replace=True)
    assert loaded.tables == result.tables == {"public.we;ird": 6}


async def test_the_filter_reads_an_overlong_line_whole(
    pg_pod: DbEndpoint,  # noqa: F811
    tmp_path: Path,
    psql_way: bool,
) -> None:
    """A backquote early in a COPY line longer than the read size and a backslash late in
    it are one line (as psql would read it without a COPY running): refused."""
    marker = tmp_path / "pwned"
    sql = tmp_path / "long.sql"
    sql.write_text(
        "CREATE TABLE t (x text);\nCOPY t (x) FROM stdin;\n"
        + "`" + "a" * 3_000_000 + "\\t\n\\.\n"
        + f"\\! touch {marker}\n"
    )  # fmt: skip
    with pytest.raises(DumpError) as caught:
        await load(pg_pod, POLICY, sql, replace=True)
    assert caught.value.code == "dump_refused"
    if not psql_way:
        assert "backquote" in caught.value.message
    assert not marker.exists()


async def test_mariadb_runs_no_command_of_a_dump(
    mysql_pod: DbEndpoint,  # noqa: F811
    tmp_path: Path,
) -> None:
    marker = tmp_path / "pwned"
    for name, text in mysql_attacks(marker).items():
        sql = tmp_path / f"{name}.sql"
        sql.write_text(text)
        with pytest.raises(DumpError) as caught:
            await load(mysql_pod, POLICY, sql, replace=True)
        assert not marker.exists(), name
        # a client command is refused by the client; the rest reaches the server as SQL
        # (`system …` is a syntax error there, LOCAL INFILE is off)
        want = "load_failed" if name in ("system", "local infile") else "dump_refused"
        assert caught.value.code == want, (name, caught.value.message)
    # nothing of the worker's environment reached the server's table
    rows = mysql_admin("SELECT COUNT(*) FROM leak;", database=mysql_pod.name)
    assert rows == ["0"]


# -- end to end: crafted snapshot, refresh, restore through the API and the worker --------


def plain_restic(env: dict[str, str], *args: str, cwd: Path | None = None) -> str:
    done = subprocess.run(
        ["restic", *args], env=env, cwd=cwd, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


async def craft_snapshot(
    client: httpx.AsyncClient, tenant: Tenant, pod_id: str, folder: Path, dumps: dict[str, str]
) -> str:
    """A snapshot made by the owner with plain restic (restore-kit password) holding
    ``database/<name>.sql`` files; refreshed into the service. Its full id."""
    kit = (await client.get(f"/v1/pods/{pod_id}/restore-kit", headers=tenant.headers)).json()
    (folder / "database").mkdir(parents=True)
    for name, text in dumps.items():
        (folder / "database" / f"{name}.sql").write_text(text)
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(folder),
        "RESTIC_REPOSITORY": kit["repository"],
        "RESTIC_PASSWORD": kit["password"],
        "RESTIC_CACHE_DIR": str(folder / "cache"),
    }
    # tags and host as the service writes them: neither proves anything
    plain_restic(
        env, "backup", "--json", "--host", pod_id, "--tag", f"pod:{pod_id}",
        "--tag", "trigger:manual", "database", cwd=folder,
    )  # fmt: skip
    listed = json.loads(plain_restic(env, "snapshots", "--json"))
    newest = max(listed, key=lambda s: s["time"])["id"]
    r = await client.post(f"/v1/pods/{pod_id}/snapshots/refresh", headers=tenant.headers)
    assert r.status_code == 202, r.text
    job = await wait_job(client, tenant.headers, r.json()["id"])
    assert job["status"] == "succeeded", job
    return str(newest)


async def restore_db(
    client: httpx.AsyncClient, tenant: Tenant, pod_id: str, snapshot_id: str, **extra: Any
) -> httpx.Response:
    body = {"snapshot_id": snapshot_id, "files": False, "database": True, "safety_backup": False}
    return await client.post(
        f"/v1/pods/{pod_id}/restores", json={**body, **extra}, headers=tenant.headers
    )


async def hostile_round(
    app: FastAPI,
    client: httpx.AsyncClient,
    admin_token: str,
    tenant: Tenant,
    tmp_path: Path,
    worker: WorkerProcess,  # noqa: F811
    db: DbEndpoint,
    attacks: dict[str, str],
    benign: str,
) -> None:
    pod = await create_pod(
        client,
        auth(admin_token),
        account_id=tenant.account_id,
        database=database_spec(db),
        target={"kind": "local", "path": str(tmp_path / "repo")},
    )
    pod_id = pod["id"]
    ours = await backup(client, tenant.headers, pod_id)
    assert ours["status"] == "succeeded", (ours, worker.logs()[-3000:])
    ours_id = ours["result"]["snapshot_id"]
    marker = tmp_path / "pwned"

    for i, (name, text) in enumerate(attacks.items()):
        snap_id = await craft_snapshot(
            client, tenant, pod_id, tmp_path / f"owner-{i}", {db.name: text}
        )
        got = await client.get(f"/v1/pods/{pod_id}/snapshots/{snap_id}", headers=tenant.headers)
        assert got.json()["database_dump"] == {"recorded": False, "file": None, "sha256": None}

        # not loaded without the owner's confirmation
        r = await restore_db(client, tenant, pod_id, snap_id)
        assert r.status_code == 409, r.text
        assert r.json()["error"] == "Conflict"
        assert "allow_unrecorded_dump" in r.json()["hint"]

        # confirmed: loaded, yet its client command never runs
        r = await restore_db(client, tenant, pod_id, snap_id, allow_unrecorded_dump=True)
        assert r.status_code == 202, r.text
        job = await wait_job(client, tenant.headers, r.json()["id"])
        assert job["status"] == "failed", (name, job)
        assert job["error"]["code"] in ("dump_refused", "load_failed"), (name, job["error"])
        assert not marker.exists(), (name, worker.logs()[-3000:])

    # the service's own snapshot: recorded, loads without confirmation
    got = await client.get(f"/v1/pods/{pod_id}/snapshots/{ours_id}", headers=tenant.headers)
    record = got.json()["database_dump"]
    assert record["recorded"] is True
    assert record["file"] == f"database/{db.name}.sql"
    done = await wait_job(
        client, tenant.headers, (await restore_db(client, tenant, pod_id, ours_id)).json()["id"]
    )
    assert done["status"] == "succeeded", (done, worker.logs()[-3000:])
    assert done["result"]["database"]["dump"]["recorded"] is True

    # the recorded dump's bytes no longer match its record (a pack rewritten with the
    # repository key): refused like an unrecorded one
    async with app.state.sessionmaker() as session:
        row = await session.scalar(select(Snapshot).where(Snapshot.id == ours_id))
        assert row is not None
        summary = dict(row.summary or {})
        summary["database"] = {**summary["database"], "sha256": "0" * 64}
        await session.execute(update(Snapshot).where(Snapshot.pk == row.pk).values(summary=summary))
        await session.commit()
    r = await restore_db(client, tenant, pod_id, ours_id)
    assert r.status_code == 202, r.text
    done = await wait_job(client, tenant.headers, r.json()["id"])
    assert done["status"] == "failed", done
    assert done["error"]["code"] == "dump_not_recorded"
    assert "differ" in done["error"]["message"]
    assert "allow_unrecorded_dump" in done["error"]["hint"]

    # a harmless dump from outside loads once confirmed, and says it was not recorded
    snap_id = await craft_snapshot(client, tenant, pod_id, tmp_path / "owner-ok", {db.name: benign})
    r = await restore_db(client, tenant, pod_id, snap_id, allow_unrecorded_dump=True)
    done = await wait_job(client, tenant.headers, r.json()["id"])
    assert done["status"] == "succeeded", (done, worker.logs()[-3000:])
    assert done["result"]["database"]["dump"]["recorded"] is False


@pytest.mark.timeout(300)
async def test_crafted_postgres_dump_from_a_refreshed_snapshot(
    app: FastAPI,
    client: httpx.AsyncClient,
    admin_token: str,
    tenant: Tenant,
    tmp_path: Path,
    worker: WorkerProcess,  # noqa: F811
    pg_pod: DbEndpoint,  # noqa: F811
) -> None:
    marker = tmp_path / "pwned"
    attacks = pg_attacks(marker)
    chosen = {k: attacks[k] for k in ("shell", "own restrict then shell", "after COPY data")}
    benign = "CREATE TABLE from_outside (x int);\nINSERT INTO from_outside VALUES (1);\n"
    await hostile_round(app, client, admin_token, tenant, tmp_path, worker, pg_pod, chosen, benign)


@pytest.mark.timeout(300)
async def test_crafted_mariadb_dump_from_a_refreshed_snapshot(
    app: FastAPI,
    client: httpx.AsyncClient,
    admin_token: str,
    tenant: Tenant,
    tmp_path: Path,
    worker: WorkerProcess,  # noqa: F811
    mysql_pod: DbEndpoint,  # noqa: F811
) -> None:
    marker = tmp_path / "pwned"
    attacks = mysql_attacks(marker)
    chosen = {k: attacks[k] for k in ("shell", "system")}
    benign = "CREATE TABLE from_outside (x int);\nINSERT INTO from_outside VALUES (1);\n"
    await hostile_round(
        app, client, admin_token, tenant, tmp_path, worker, mysql_pod, chosen, benign
    )


# -- the worker's environment ---------------------------------------------------------------


async def test_children_get_no_service_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("PODBACKUP_SECRET_KEYS", "PODBACKUP_DATABASE_URL", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, f"very-secret-{name}")
    lines: list[str] = []
    done = await sp.run(["env"], env={"PGPASSWORD": "for-this-child"}, on_stdout=lines.append)
    assert done.returncode == 0
    names = {line.split("=", 1)[0] for line in lines}
    assert "PGPASSWORD" in names
    assert "PATH" in names
    assert not any(n.startswith(("PODBACKUP_", "AWS_")) for n in names), names
    assert "very-secret" not in "\n".join(lines)


def test_secret_keys_file_and_not_both(tmp_path: Path, settings: Settings) -> None:  # noqa: F811
    keys = ",".join(k.get_secret_value() for k in settings.secret_keys)
    path = tmp_path / "keys"
    path.write_text(keys.replace(",", "\n") + "\n")
    loaded = Settings(_env_file=None, secret_keys_file=path)  # type: ignore[call-arg]
    assert [k.get_secret_value() for k in loaded.secret_keys] == keys.split(",")
    with pytest.raises(ValueError, match="not both"):
        Settings(_env_file=None, secret_keys_file=path, secret_keys=keys)  # type: ignore[call-arg]
    with pytest.raises(ValueError, match="cannot read"):
        Settings(_env_file=None, secret_keys_file=tmp_path / "missing")  # type: ignore[call-arg]


@pytest.mark.timeout(180)
async def test_worker_with_keys_from_a_file_has_them_in_no_environment(
    client: httpx.AsyncClient,
    admin_token: str,
    tenant: Tenant,
    tmp_path: Path,
    settings: Settings,  # noqa: F811
    pg_pod: DbEndpoint,  # noqa: F811
) -> None:
    keys = ",".join(k.get_secret_value() for k in settings.secret_keys)
    key_file = tmp_path / "keys"
    key_file.write_text(keys + "\n")
    key_file.chmod(0o400)
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", "/root"),
        "LANG": "C.UTF-8",
        **settings_env(settings),
        "PODBACKUP_SECRET_KEYS_FILE": str(key_file),
    }
    env.pop("PODBACKUP_SECRET_KEYS")
    workdir = tmp_path / "worker"
    workdir.mkdir()
    log = (workdir / "worker.log").open("ab")
    proc = subprocess.Popen(
        [sys.executable, "-m", "app.cli.__main__", "worker"],
        cwd=workdir, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    log.close()
    try:
        for _ in range(300):
            if "ready" in (workdir / "worker.log").read_text(errors="replace"):
                break
            assert proc.poll() is None, (workdir / "worker.log").read_text()
            await asyncio.sleep(0.1)
        environ = Path(f"/proc/{proc.pid}/environ").read_bytes()
        assert b"PODBACKUP_SECRET_KEYS_FILE=" in environ
        for key in keys.split(","):
            assert key.split(":", 1)[1].encode() not in environ
        # and it works: the pod's stored (encrypted) database password is decrypted
        pod = await create_pod(
            client,
            auth(admin_token),
            account_id=tenant.account_id,
            database=database_spec(pg_pod),
            target={"kind": "local", "path": str(tmp_path / "repo")},
        )
        job = await backup(client, tenant.headers, pod["id"])
        assert job["status"] == "succeeded", (job, (workdir / "worker.log").read_text()[-3000:])
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
