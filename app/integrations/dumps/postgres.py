"""PostgreSQL: probe with asyncpg, dump with pg_dump, load with psql.

The password reaches the children only as PGPASSWORD in their environment; PGPASSFILE
points nowhere so a worker's own ~/.pgpass is never offered to a pod's server.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
from pathlib import Path

import asyncpg

from app.integrations.dumps import guard, pgacl
from app.integrations.dumps.clients import pg_client
from app.integrations.dumps.errors import DumpError, classify_pg
from app.integrations.dumps.model import Conn, ServerInfo
from app.kit import subprocess as sp

log = logging.getLogger(__name__)

CONNECT_TIMEOUT = 15
MAINTENANCE_DBS = ("postgres", "template1")

# Replace = drop what the database holds, inside the same transaction as the load (psql
# --single-transaction), so a load that fails leaves the old contents in place. Schemas
# the login may drop go whole; in schemas owned by someone else (public owned by a
# superuser before PostgreSQL 15) the login's own relations, routines and types go.
# Not DROP OWNED: it would also revoke the login's grants, CONNECT included.
# Schema public, when dropped, comes back with its owner (pg_database_owner since
# PostgreSQL 15) and its grants (USAGE for everyone), not as the login's private schema:
# other roles of the pod keep reaching the tables the dump then grants them.
WIPE_SQL = r"""
SET client_min_messages = warning;
DO $podbackup$
DECLARE r record; public_owner oid; public_acl aclitem[];
BEGIN
  SELECT nspowner, nspacl INTO public_owner, public_acl
    FROM pg_namespace WHERE nspname = 'public';
  FOR r IN SELECT nspname FROM pg_namespace
           WHERE nspname !~ '^pg_' AND nspname <> 'information_schema'
             AND pg_has_role(nspowner, 'USAGE') LOOP
    EXECUTE format('DROP SCHEMA %I CASCADE', r.nspname);
  END LOOP;
  FOR r IN SELECT c.oid::regclass::text AS name,
                  CASE c.relkind WHEN 'v' THEN 'VIEW' WHEN 'm' THEN 'MATERIALIZED VIEW'
                       WHEN 'S' THEN 'SEQUENCE' WHEN 'f' THEN 'FOREIGN TABLE'
                       ELSE 'TABLE' END AS what
           FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
           WHERE n.nspname !~ '^pg_' AND n.nspname <> 'information_schema'
             AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')
             AND pg_has_role(c.relowner, 'USAGE')
             AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass
                             AND d.objid = c.oid AND d.deptype IN ('e', 'a', 'i')) LOOP
    EXECUTE format('DROP %s IF EXISTS %s CASCADE', r.what, r.name);
  END LOOP;
  FOR r IN SELECT p.oid::regprocedure::text AS name
           FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
           WHERE n.nspname !~ '^pg_' AND n.nspname <> 'information_schema'
             AND pg_has_role(p.proowner, 'USAGE')
             AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_proc'::regclass
                             AND d.objid = p.oid AND d.deptype = 'e') LOOP
    EXECUTE format('DROP ROUTINE IF EXISTS %s CASCADE', r.name);
  END LOOP;
  FOR r IN SELECT t.oid::regtype::text AS name
           FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
           WHERE n.nspname !~ '^pg_' AND n.nspname <> 'information_schema'
             AND pg_has_role(t.typowner, 'USAGE')
             AND (t.typtype IN ('e', 'd', 'r')
                  OR (t.typtype = 'c' AND (SELECT relkind FROM pg_class
                                           WHERE oid = t.typrelid) = 'c'))
             AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_type'::regclass
                             AND d.objid = t.oid AND d.deptype = 'e') LOOP
    EXECUTE format('DROP TYPE IF EXISTS %s CASCADE', r.name);
  END LOOP;
  IF NOT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = 'public') THEN
    CREATE SCHEMA public;
    IF public_owner IS NOT NULL THEN
     BEGIN
      IF public_owner <> (SELECT oid FROM pg_roles WHERE rolname = current_user) THEN
        EXECUTE format('ALTER SCHEMA public OWNER TO %I',
                       (SELECT rolname FROM pg_roles WHERE oid = public_owner));
      END IF;
      IF public_acl IS NOT NULL THEN
        EXECUTE 'REVOKE ALL ON SCHEMA public FROM PUBLIC';
        FOR r IN SELECT a.privilege_type, a.is_grantable,
                        CASE WHEN a.grantee = 0 THEN 'PUBLIC'
                             ELSE quote_ident(g.rolname) END AS grantee
                 FROM aclexplode(public_acl) a LEFT JOIN pg_roles g ON g.oid = a.grantee
                 WHERE a.grantee = 0 OR g.oid IS NOT NULL LOOP
          EXECUTE format('GRANT %s ON SCHEMA public TO %s%s', r.privilege_type, r.grantee,
                         CASE WHEN r.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END);
        END LOOP;
      END IF;
     EXCEPTION WHEN insufficient_privilege OR invalid_grant_operation THEN
      RAISE WARNING 'podbackup: schema public now belongs to %, its owner and grants '
                    'could not be put back: %', current_user, SQLERRM;
     END;
    END IF;
  END IF;
END
$podbackup$;
RESET client_min_messages;
"""

_USER_TABLES = """
SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind = 'r' AND n.nspname !~ '^pg_' AND n.nspname <> 'information_schema'
  AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass
                  AND d.objid = c.oid AND d.deptype = 'e')
ORDER BY 1, 2
"""


def qident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _conninfo_value(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def conninfo(conn: Conn, database: str | None = None) -> str:
    """libpq keywords without the password; ``hostaddr`` pins the checked address while
    ``host`` keeps the name for TLS verification."""
    ep = conn.endpoint
    parts = {
        "host": ep.host,
        "hostaddr": conn.address,
        "port": str(ep.port),
        "dbname": database or ep.name,
        "user": ep.username,
        "connect_timeout": str(CONNECT_TIMEOUT),
        "application_name": "podbackup",
    }
    return " ".join(f"{k}={_conninfo_value(v)}" for k, v in parts.items())


def child_env(conn: Conn) -> dict[str, str]:
    env = {"PGPASSFILE": "/nonexistent/podbackup-no-passfile", "PGCONNECT_TIMEOUT": "15"}
    if conn.password is not None:
        env["PGPASSWORD"] = conn.password
    return env


async def connect(conn: Conn, database: str | None = None) -> asyncpg.Connection:
    ep = conn.endpoint
    name = database or ep.name
    try:
        return await asyncpg.connect(
            host=conn.address,
            port=ep.port,
            user=ep.username,
            password=ep.password,
            database=name,
            timeout=CONNECT_TIMEOUT,
            server_settings={"application_name": "podbackup"},
        )
    except (asyncpg.InvalidPasswordError, asyncpg.InvalidAuthorizationSpecificationError) as exc:
        raise DumpError("auth_failed", f"PostgreSQL at {conn.where}: {exc}") from None
    except asyncpg.InvalidCatalogNameError:
        raise DumpError(
            "database_not_found", f"PostgreSQL at {conn.where} has no database '{name}'"
        ) from None
    except asyncpg.InsufficientPrivilegeError as exc:
        raise DumpError("auth_failed", f"PostgreSQL at {conn.where}: {exc}") from None
    except asyncpg.PostgresError as exc:
        raise DumpError("unreachable", f"PostgreSQL at {conn.where}: {exc}") from None
    except (OSError, TimeoutError, asyncpg.InterfaceError) as exc:
        text = str(exc) or type(exc).__name__
        if "password" in text.lower():
            raise DumpError("auth_failed", f"PostgreSQL at {conn.where}: {text}") from None
        raise DumpError(
            "unreachable", f"cannot connect to PostgreSQL at {conn.where}: {text}"
        ) from None


async def _server_info(db: asyncpg.Connection) -> ServerInfo:
    version = str(await db.fetchval("SHOW server_version"))
    number = int(await db.fetchval("SHOW server_version_num"))
    return ServerInfo(version=version, major=number // 10000)


async def probe(conn: Conn) -> ServerInfo:
    """Log in to the endpoint's database: version, and early auth/not-found errors."""
    db = await connect(conn)
    try:
        return await _server_info(db)
    finally:
        await db.close()


async def run_dump(conn: Conn, info: ServerInfo, fd: int, path: Path) -> str:
    """pg_dump the database into ``path`` (already created, 0600; ``fd`` is open on it).

    ``-f`` rather than stdout: pg_dump ignores write errors on stdout (exit 0 on a full
    disk) but reports them for a file it opened itself.
    """
    binary, version = await pg_client("pg_dump", info.major)
    argv = [
        str(binary),
        "--format=plain",
        "--no-owner",  # loads into another login's database
        # privileges are kept: a restore gives other roles their access back (pgacl)
        "--encoding=UTF8",
        "--no-password",
        f"--file={path}",
        f"--dbname={conninfo(conn)}",
    ]
    done = await sp.run(argv, env=child_env(conn), stdout=asyncio.subprocess.DEVNULL)
    if done.returncode != 0:
        raise classify_pg(done.stderr_tail, "dump_failed")
    return f"{binary} ({version})"


async def ensure_database(conn: Conn) -> ServerInfo:
    """Probe, creating the database first when it does not exist (and the login may)."""
    try:
        return await probe(conn)
    except DumpError as exc:
        if exc.code != "database_not_found":
            raise
    await create_database(conn)
    return await probe(conn)


async def run_load(
    conn: Conn, info: ServerInfo, fd: int, *, replace: bool, restrict: bool | None = None
) -> list[str]:
    """psql the SQL read from ``fd`` into the database, in one transaction, with no client
    command of the dump ever run (see ``guard``). ``restrict``: force (True) or skip
    (False) the ``\\restrict`` way; by default the client's version decides. Returns what
    was not restored (owners; privileges the login may not set: see ``pgacl``)."""
    binary, version = await pg_client("psql", info.major)
    argv = [
        str(binary),
        "-X",  # no ~/.psqlrc
        "-q",
        "--no-password",
        "-v",
        "ON_ERROR_STOP=1",
        "--single-transaction",
        f"--dbname={conninfo(conn)}",
    ]
    if replace:
        argv += ["-c", WIPE_SQL]
    argv += ["-f", "-"]
    if restrict is None:
        restrict = guard.psql_restricts(version)
    key = guard.restrict_key() if restrict else None
    privileges = pgacl.PrivilegeFilter(await _roles(conn), conn.endpoint.username)
    loop = asyncio.get_running_loop()
    stop, gone = asyncio.Event(), threading.Event()
    read_end, write_end = os.pipe()

    def on_refused() -> None:  # in the feeder's thread
        loop.call_soon_threadsafe(stop.set)

    feeder = asyncio.ensure_future(
        asyncio.to_thread(
            guard.feed_psql,
            fd,
            write_end,
            key,
            on_refused=on_refused,
            psql_gone=gone,
            edit=privileges.edit,
        )
    )
    try:
        done = await sp.run(
            argv,
            env=child_env(conn),
            stdin=read_end,
            stdout=asyncio.subprocess.DEVNULL,
            handed_over=sp.HandedOver(read_end),
            cancel=stop,
            grace=2,
        )
    except sp.Cancelled:
        done = None
    finally:
        gone.set()
        # the feeder ends once psql has gone (a broken pipe at worst): collect it
        await asyncio.wait({feeder})
    feeder.result()  # a refusal (DumpError) or a read error of the dump
    if done is None:
        raise DumpError("load_failed", "psql was stopped")
    if done.returncode != 0:
        if "backslash commands are restricted" in done.stderr_tail:
            raise guard.refused("it holds a backslash command (psql refused it)")
        raise classify_pg(done.stderr_tail, "load_failed")
    warnings = [
        line.split("podbackup: ", 1)[1]
        for line in done.stderr_tail.splitlines()
        if "WARNING:  podbackup: " in line
    ]
    return privileges.notes() + warnings


async def _roles(conn: Conn) -> dict[str, bool]:
    """Every role on the server -> whether the login is a member of it (may act as it)."""
    db = await connect(conn)
    try:
        rows = await db.fetch(
            "SELECT rolname, pg_has_role(current_user, oid, 'MEMBER') AS member FROM pg_roles"
        )
        return {str(r["rolname"]): bool(r["member"]) for r in rows}
    finally:
        await db.close()


async def counts(conn: Conn) -> dict[str, int]:
    """Exact row counts of every ordinary table (``schema.table``), like COPY dumps them."""
    db = await connect(conn)
    try:
        result: dict[str, int] = {}
        for row in await db.fetch(_USER_TABLES):
            schema, table = row["nspname"], row["relname"]
            sql = f"SELECT count(*) FROM ONLY {qident(schema)}.{qident(table)}"
            result[f"{schema}.{table}"] = int(await db.fetchval(sql))
        return result
    finally:
        await db.close()


async def _maintenance(conn: Conn) -> asyncpg.Connection:
    error: DumpError | None = None
    for name in MAINTENANCE_DBS:
        try:
            return await connect(conn, name)
        except DumpError as exc:
            if exc.code not in ("database_not_found", "auth_failed"):
                raise
            error = error or exc
    assert error is not None
    raise error


async def create_database(conn: Conn, *, pristine: bool = False) -> None:
    """CREATE DATABASE; ``pristine`` copies template0, so a drill's scratch database holds
    nothing the server's template1 may have gained."""
    db = await _maintenance(conn)
    template = " TEMPLATE template0" if pristine else ""
    try:
        await db.execute(f"CREATE DATABASE {qident(conn.name)}{template}")
    except asyncpg.DuplicateDatabaseError:
        pass
    except asyncpg.PostgresError as exc:
        raise DumpError(
            "database_not_found",
            f"the database '{conn.name}' does not exist and could not be created: {exc}",
            hint=f"create the database '{conn.name}', or allow the user to (CREATEDB)",
        ) from None
    finally:
        await db.close()


async def drop_database(conn: Conn) -> None:
    db = await _maintenance(conn)
    try:
        number = int(await db.fetchval("SHOW server_version_num"))
        force = " WITH (FORCE)" if number >= 130000 else ""
        await db.execute(f"DROP DATABASE IF EXISTS {qident(conn.name)}{force}")
    finally:
        with contextlib.suppress(Exception):
            await db.close()
