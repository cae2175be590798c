"""MySQL/MariaDB: probe, query, dump and load with the mariadb/mysql command-line clients.

The login goes in a 0600 option file passed as ``--defaults-file`` (the first option;
unlike ``--defaults-extra-file`` it also keeps the worker's own ~/.my.cnf and
/etc/mysql options, which may hold other credentials, away from a pod's server).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

from app.integrations.dumps import guard
from app.integrations.dumps.clients import mysql_client, mysql_dumper, mysql_load_flags
from app.integrations.dumps.errors import DumpError, classify_mysql
from app.integrations.dumps.model import Conn, ServerInfo
from app.kit import subprocess as sp

MAX_PACKET = "--max-allowed-packet=1G"
_BATCH_ESCAPES = {"n": "\n", "t": "\t", "\\": "\\", "0": "\0", "r": "\r"}


def qident(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def _option_value(value: str) -> str:
    # double-quoted option-file value: \\ and \" are the escapes; '#' and spaces stay literal
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return '"' + escaped.replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t") + '"'


@contextlib.contextmanager
def option_file(conn: Conn) -> Iterator[Path]:
    """A private folder with a 0600 ``[client]`` file holding the login."""
    folder = Path(tempfile.mkdtemp(prefix="podbackup-my-"))  # 0700
    path = folder / "client.cnf"
    lines = ["[client]", f"user={_option_value(conn.endpoint.username)}"]
    if conn.password is not None:
        lines.append(f"password={_option_value(conn.password)}")
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write("\n".join(lines) + "\n")
        yield path
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _connection_args(conn: Conn, options: Path) -> list[str]:
    return [
        f"--defaults-file={options}",  # must come first
        f"--host={conn.address}",
        f"--port={conn.endpoint.port}",
        "--protocol=TCP",
    ]


def _unescape(field: str) -> str:
    return re.sub(r"\\(.)", lambda m: _BATCH_ESCAPES.get(m.group(1), m.group(1)), field)


async def query(
    conn: Conn, sql: str, *, database: str | None = "", code: str = "dump_failed"
) -> list[list[str]]:
    """Run ``sql`` (any length: it goes through stdin) and return the rows as text.

    ``database``: "" for the endpoint's database, None for no default database.
    """
    client = mysql_client()
    rows: list[list[str]] = []
    with option_file(conn) as options, tempfile.TemporaryFile() as script:
        script.write(sql.encode())
        script.seek(0)
        argv = [str(client), *_connection_args(conn, options), "--connect-timeout=15"]
        # no LOAD DATA LOCAL: a hostile server could ask for any file of the worker
        argv += ["--batch", "--skip-column-names", "--local-infile=0", MAX_PACKET]
        if database is not None:
            argv.append(f"--database={database or conn.name}")
        done = await sp.run(
            argv,
            stdin=script.fileno(),
            on_stdout=lambda line: rows.append([_unescape(f) for f in line.split("\t")]),
        )
    if done.returncode != 0:
        raise classify_mysql(done.stderr_tail, code)
    return rows


async def probe(conn: Conn) -> ServerInfo:
    rows = await query(conn, "SELECT VERSION();")
    version = rows[0][0] if rows and rows[0] else "unknown"
    match = re.match(r"(\d+)", version)
    return ServerInfo(version=version, major=int(match.group(1)) if match else 0)


async def run_dump(conn: Conn, info: ServerInfo, fd: int, path: Path) -> str:
    """mariadb-dump one database into ``fd``: consistent (one transaction), with routines,
    triggers and events, blobs as hex, and no CREATE DATABASE/USE so it loads into a
    database of any name. The child writes to ``fd`` (open on ``path``) itself; it
    reports write errors (errno 28) with a non-zero exit."""
    binary, version = await mysql_dumper()
    with option_file(conn) as options:
        argv = [
            str(binary),
            *_connection_args(conn, options),
            "--single-transaction",
            "--quick",  # rows streamed from the server, never buffered by the client
            "--routines",
            "--triggers",
            "--events",
            "--hex-blob",
            "--no-tablespaces",  # needs PROCESS otherwise (MySQL 8)
            "--default-character-set=utf8mb4",
            MAX_PACKET,
            "--",
            conn.name,
        ]
        done = await sp.run(argv, stdout=fd)
    if done.returncode != 0:
        raise classify_mysql(done.stderr_tail, "dump_failed")
    return f"{binary} ({version})"


async def create_database(conn: Conn, *, pristine: bool = False) -> None:
    """CREATE DATABASE IF NOT EXISTS (``pristine`` is PostgreSQL's concern only)."""
    try:
        await query(conn, f"CREATE DATABASE IF NOT EXISTS {qident(conn.name)};", database=None)
    except DumpError as exc:
        if exc.code in ("unreachable", "auth_failed"):
            raise
        raise DumpError(
            "database_not_found",
            f"the database '{conn.name}' does not exist and could not be created: {exc.message}",
            hint=f"create the database '{conn.name}', or grant the user CREATE on it",
        ) from None


async def drop_database(conn: Conn) -> None:
    await query(conn, f"DROP DATABASE IF EXISTS {qident(conn.name)};", database=None)


async def ensure_database(conn: Conn) -> ServerInfo:
    try:
        return await probe(conn)
    except DumpError as exc:
        if exc.code != "database_not_found":
            raise
    await create_database(conn)
    return await probe(conn)


_OBJECTS = """
SELECT TABLE_TYPE, TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE()
UNION ALL
SELECT ROUTINE_TYPE, ROUTINE_NAME FROM information_schema.ROUTINES
  WHERE ROUTINE_SCHEMA = DATABASE()
UNION ALL
SELECT 'EVENT', EVENT_NAME FROM information_schema.EVENTS WHERE EVENT_SCHEMA = DATABASE();
"""
_DROP = {
    "VIEW": "VIEW",
    "SEQUENCE": "SEQUENCE",
    "PROCEDURE": "PROCEDURE",
    "FUNCTION": "FUNCTION",
    "EVENT": "EVENT",
}


async def wipe(conn: Conn) -> None:
    """Drop every table, view, sequence, routine and event of the database (not the
    database itself: that needs more privileges and would lose its charset)."""
    rows = await query(conn, _OBJECTS, code="load_failed")
    statements = ["SET FOREIGN_KEY_CHECKS=0;"]
    for kind, name in ((r[0], r[1]) for r in rows if len(r) >= 2):
        what = _DROP.get(kind, "TABLE")
        statements.append(f"DROP {what} IF EXISTS {qident(name)};")
    if len(statements) > 1:
        await query(conn, "\n".join(statements), code="load_failed")


# Views, triggers, routines and events carry the account that created them
# (DEFINER=`root`@`localhost`); loading one as another account needs SUPER or SET USER,
# which a pod's login seldom has. Restored objects are owned by the loading login instead.
# Anchored at the start of the DDL lines mariadb-dump and mysqldump write: row data never
# starts a line there (newlines inside values are written as \n).
STRIP_DEFINER = (
    r"s/^((\/\*!5[0-9]{4} CREATE\*\/ )?\/\*!5[0-9]{4} |CREATE )"
    r"DEFINER=`([^`]|``)*`@`([^`]|``)*` ?/\1/"
)


# what --binary-mode / --sandbox answer to a client command in the input
_CLIENT_COMMAND = re.compile(r"Unknown command '\\|Not allowed in the sandbox mode")


async def run_load(conn: Conn, info: ServerInfo, fd: int, *, replace: bool) -> list[str]:
    if replace:
        await wipe(conn)
    client = mysql_client()
    safe = await mysql_load_flags(client)  # no client command of the dump runs
    with option_file(conn) as options:
        argv = [str(client), *_connection_args(conn, options), "--connect-timeout=15"]
        argv += ["--batch", *safe, MAX_PACKET, f"--database={conn.name}"]
        # dump file -> sed (definers out) -> client, streamed through a pipe
        read_end, write_end = os.pipe()
        feeder = sp.HandedOver(write_end)
        reader = sp.HandedOver(read_end)
        try:
            edit, done = await asyncio.gather(
                sp.run(
                    ["sed", "-E", "-e", STRIP_DEFINER],
                    env={"LC_ALL": "C"},
                    stdin=fd,
                    stdout=write_end,
                    handed_over=feeder,
                ),
                sp.run(
                    argv,
                    stdin=read_end,
                    stdout=asyncio.subprocess.DEVNULL,
                    handed_over=reader,
                ),
            )
        finally:
            feeder.close()
            reader.close()
    if done.returncode != 0:
        if _CLIENT_COMMAND.search(done.stderr_tail):
            raise guard.refused("it holds a client command (the client refused it)")
        raise classify_mysql(done.stderr_tail, "load_failed")
    if edit.returncode != 0:
        raise DumpError("load_failed", f"reading the dump failed: {edit.stderr_tail[-300:]}")
    # accounts and their grants are server-wide, never in a database's dump
    return ["accounts and grants are not part of a database's dump: those the server holds apply"]


_TABLES = (
    "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() "
    "AND TABLE_TYPE IN ('BASE TABLE', 'SYSTEM VERSIONED') ORDER BY TABLE_NAME;"
)


def _batches(items: Sequence[str], size: int) -> Iterator[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


async def counts(conn: Conn) -> dict[str, int]:
    """Exact row counts of every base table."""
    names = [row[0] for row in await query(conn, _TABLES) if row]
    result: dict[str, int] = {}
    for batch in _batches(names, 200):
        # index literals, not names: no quoting of names inside string literals needed
        sql = " UNION ALL ".join(
            f"SELECT {i}, COUNT(*) FROM {qident(name)}" for i, name in enumerate(batch)
        )
        for row in await query(conn, sql + ";"):
            result[batch[int(row[0])]] = int(row[1])
    return result
