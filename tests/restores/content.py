"""Database contents that break naive dump/load paths, and exact readers of every row.

PostgreSQL goes through asyncpg (typed values compare exactly); MariaDB through the
`mariadb` client in batch mode with binary columns as HEX(), rows ordered by every
column, so two reads of equal tables give equal text.
"""

from __future__ import annotations

import os
from decimal import Decimal
from typing import Any

import asyncpg

from app.integrations.dumps import DbEndpoint
from tests.fixtures.databases import PgCluster, mysql_admin

TRICKY_TEXT = [
    'it\'s "quoted"',
    "line one\nline two\r\n\ttabbed \\ backslash",
    "ünïcödé 日本語 🎉",
    "'; DROP TABLE notes; --",
    "",
]


async def pg_connect(db: DbEndpoint) -> asyncpg.Connection:
    return await asyncpg.connect(
        host=db.host, port=db.port, user=db.username, password=db.password, database=db.name
    )


async def seed_pg(db: DbEndpoint) -> None:
    """Four tables: text with quotes/newlines/unicode, bytea with NUL bytes, NULLs,
    numeric/float/timestamps, jsonb, a mixed-case name, 2,000 generated rows."""
    conn = await pg_connect(db)
    try:
        await conn.execute(
            "CREATE TABLE notes (id int PRIMARY KEY, title text, body text, "
            "score numeric(12,4), created timestamptz, flag boolean);"
            "CREATE TABLE blobs (id serial PRIMARY KEY, data bytea, note text);"
            'CREATE TABLE "Mixed Case" (k text PRIMARY KEY, v jsonb);'
            "CREATE TABLE numbers (id bigint, n numeric, f double precision, i int);"
            "CREATE INDEX numbers_i ON numbers (i);"
        )
        await conn.executemany(
            "INSERT INTO notes VALUES "
            "($1::int, $2, $3, $4, now() - $1::int * interval '1 day', $5)",
            [
                (i + 1, text, TRICKY_TEXT[-1 - i], Decimal("1234.5678") * i, i % 2 == 0)
                for i, text in enumerate(TRICKY_TEXT)
            ]
            + [(100, None, None, None, None)],
        )
        await conn.executemany(
            "INSERT INTO blobs (data, note) VALUES ($1, $2)",
            [(b"\x00\x01\xff\x00'\"\\\n", "nul bytes"), (os.urandom(100_000), None), (None, "")],
        )
        await conn.execute(
            """INSERT INTO "Mixed Case" VALUES ('a', '{"x": [1, 2.5, null, "ü"]}'), ('b', NULL)"""
        )
        await conn.execute(
            "INSERT INTO numbers SELECT g, g * 1.5, g / 7.0, CASE WHEN g % 10 = 0 THEN NULL "
            "ELSE g END FROM generate_series(1, 2000) g"
        )
    finally:
        await conn.close()


async def pg_rows(db: DbEndpoint, name: str | None = None, cluster: PgCluster | None = None) -> Any:
    """{table: sorted rows} of every table in schema public (as the pod's login, or as the
    cluster's superuser on database ``name``)."""
    if cluster is not None:
        conn = await cluster.connect(name or db.name)
    else:
        conn = await pg_connect(db)
    try:
        tables = await conn.fetch(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1"
        )
        out: dict[str, list[tuple[Any, ...]]] = {}
        for t in tables:
            quoted = '"' + t["tablename"].replace('"', '""') + '"'
            rows = await conn.fetch(f"SELECT * FROM public.{quoted}")
            out[t["tablename"]] = sorted((tuple(r.values()) for r in rows), key=repr)
        return out
    finally:
        await conn.close()


async def damage_pg(db: DbEndpoint) -> None:
    """What a bad day does: a dropped table, changed and deleted rows, a new table."""
    conn = await pg_connect(db)
    try:
        await conn.execute(
            "DROP TABLE blobs; UPDATE notes SET title = 'overwritten'; "
            "DELETE FROM numbers WHERE id > 10; CREATE TABLE junk (x int); "
            "INSERT INTO junk VALUES (1)"
        )
    finally:
        await conn.close()


# -- MariaDB ------------------------------------------------------------------------------

MY_SEED = r"""
SET NAMES utf8mb4;
CREATE TABLE notes (id INT PRIMARY KEY, title VARCHAR(200), body TEXT, score DECIMAL(12,4),
  created DATETIME(6), flag TINYINT(1)) CHARSET utf8mb4;
INSERT INTO notes VALUES
  (1, 'it''s "quoted"', 'line one\nline two\r\n\ttabbed \\ backslash', 1234.5678,
   '2024-02-29 23:59:59.123456', 1),
  (2, 'ünïcödé 日本語 🎉', '''; DROP TABLE notes; --', -0.0001, '1999-12-31 00:00:00', 0),
  (3, '', NULL, NULL, NULL, NULL);
CREATE TABLE blobs (id INT AUTO_INCREMENT PRIMARY KEY, data LONGBLOB, note TEXT);
INSERT INTO blobs (data, note) VALUES (UNHEX('0001FF00275C0A22'), 'nul bytes'),
  (RANDOM_BYTES(1024), NULL), (NULL, '');
CREATE TABLE numbers (id BIGINT, n DECIMAL(20,6), f DOUBLE, i INT);
INSERT INTO numbers SELECT seq, seq * 1.5, seq / 7, IF(seq % 10 = 0, NULL, seq)
  FROM seq_1_to_2000;
"""
_BINARY = ("blob", "binary", "varbinary", "tinyblob", "mediumblob", "longblob")


def seed_mysql(db: DbEndpoint) -> None:
    mysql_admin(MY_SEED, database=db.name)


def my_rows(name: str) -> dict[str, list[str]]:
    """{table: rows as batch text} of every base table of database ``name`` (as root)."""
    cols = mysql_admin(
        "SELECT TABLE_NAME, COLUMN_NAME, DATA_TYPE FROM information_schema.COLUMNS "
        f"WHERE TABLE_SCHEMA = '{name}' ORDER BY TABLE_NAME, ORDINAL_POSITION;"
    )
    tables: dict[str, list[str]] = {}
    for line in cols:
        table, column, kind = line.split("\t")
        expr = f"HEX(`{column}`)" if kind in _BINARY else f"`{column}`"
        tables.setdefault(table, []).append(expr)
    out: dict[str, list[str]] = {}
    for table, exprs in tables.items():
        order = ", ".join(str(i + 1) for i in range(len(exprs)))
        out[table] = mysql_admin(
            f"SET NAMES utf8mb4; SELECT {', '.join(exprs)} FROM `{table}` ORDER BY {order};",
            database=name,
        )
    return out


def damage_mysql(db: DbEndpoint) -> None:
    mysql_admin(
        "DROP TABLE blobs; UPDATE notes SET title = 'overwritten'; "
        "DELETE FROM numbers WHERE id > 10; CREATE TABLE junk (x INT); "
        "INSERT INTO junk VALUES (1);",
        database=db.name,
    )
