"""The demo pod's content: a small app folder and a PostgreSQL database with rows.

Both are created once and reused: the folder as long as it exists, the database and its
login as long as they exist (the login's password is reset to the given one each time,
so a lost secrets file does not lock the demo out).
"""

from __future__ import annotations

import os
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import asyncpg

DB_NAME = "podbackup_demo_app"
DB_USER = "podbackup_demo"


def _png(width: int, height: int, seed: int) -> bytes:
    """A real (viewable) RGB PNG: a colour gradient."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    rows = b"".join(
        b"\x00"
        + bytes(
            v
            for x in range(width)
            for v in ((x * 255) // width, (y * 255) // height, (seed * 40 + x + y) % 256)
        )
        for y in range(height)
    )
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows, 9))
        + chunk(b"IEND", b"")
    )


_FILES: dict[str, str] = {
    "config/app.ini": (
        "[server]\nhost = 0.0.0.0\nport = 3000\nbase_url = https://wiki.example.com\n\n"
        "[database]\nengine = postgres\nname = podbackup_demo_app\n\n"
        "[uploads]\nmax_size_mb = 25\n"
    ),
    "config/settings.json": (
        '{\n  "title": "Team wiki",\n  "theme": "light",\n  "languages": ["en", "de"],\n'
        '  "features": {"comments": true, "search": true}\n}\n'
    ),
    ".env.example": "APP_SECRET=change-me\nSMTP_HOST=mail.example.com\n",
    "data/pages/welcome.md": "# Welcome\n\nThis wiki is backed up by podbackup.\n",
    "data/pages/how-we-work/onboarding.md": (
        "# Onboarding\n\n1. Read the handbook.\n2. Ask questions.\n"
    ),
    "data/pages/Zürich Büro - Notizen.md": (
        "# Zürich Büro\n\nÖffnungszeiten: Mo-Fr 9-17 Uhr. Café im 2. Stock ☕\n"
    ),
    "logs/app.log": "".join(
        f"2024-06-0{d} 12:00:0{d} INFO request served in {d * 7} ms\n" for d in range(1, 10)
    ),
}


def make_pod_files(root: Path) -> bool:
    """Fill ``root`` with the sample app folder unless it exists; True when created."""
    if root.exists() and any(root.iterdir()):
        return False
    tmp = root.with_name(root.name + ".tmp")
    for name, text in _FILES.items():
        path = tmp / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    uploads = tmp / "uploads"
    (uploads / "2024" / "05").mkdir(parents=True, exist_ok=True)
    (uploads / "2024" / "06").mkdir(parents=True, exist_ok=True)
    (uploads / "2024" / "05" / "team-photo.png").write_bytes(_png(160, 120, 1))
    (uploads / "2024" / "06" / "logo.png").write_bytes(_png(64, 64, 2))
    (uploads / "2024" / "06" / "diagram-ünïcode.png").write_bytes(_png(96, 96, 3))
    # Incompressible bytes: something for deduplication and the progress bar to show.
    (uploads / "2024" / "06" / "backup-of-old-site.bin").write_bytes(os.urandom(2_000_000))
    (tmp / "data" / "cache").mkdir(parents=True, exist_ok=True)
    (tmp / "data" / "cache" / "search-index.bin").write_bytes(os.urandom(300_000))
    if root.exists():
        root.rmdir()
    tmp.replace(root)
    return True


@dataclass
class DemoDatabase:
    host: str
    port: int
    name: str
    username: str
    created: bool


_SCHEMA = """
CREATE TABLE IF NOT EXISTS authors (
    id serial PRIMARY KEY, name text NOT NULL, email text UNIQUE NOT NULL
);
CREATE TABLE IF NOT EXISTS pages (
    id serial PRIMARY KEY, author_id int REFERENCES authors(id), title text NOT NULL,
    body text NOT NULL, updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS comments (
    id serial PRIMARY KEY, page_id int REFERENCES pages(id) ON DELETE CASCADE,
    body text NOT NULL, created_at timestamptz NOT NULL DEFAULT now()
);
"""

_ROWS = """
INSERT INTO authors (name, email) VALUES
    ('Ada', 'ada@example.com'),
    ('Jürgen Groß', 'juergen@example.com'),
    ('Li Wei', 'li@example.com');
INSERT INTO pages (author_id, title, body) VALUES
    (1, 'Welcome', 'This wiki is backed up by podbackup.'),
    (2, 'Zürich Büro', 'Öffnungszeiten: Mo-Fr 9-17 Uhr.'),
    (3, 'Onboarding', 'Read the handbook, then ask questions.');
INSERT INTO comments (page_id, body)
    SELECT 1 + (n % 3), 'comment number ' || n FROM generate_series(1, 50) AS n;
"""


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


async def ensure_database(
    host: str,
    port: int,
    admin_user: str,
    admin_password: str | None,
    password: str,
    name: str = DB_NAME,
    owner: str = DB_USER,
) -> DemoDatabase:
    """The database ``name`` and its owner login ``owner`` on the PostgreSQL server at
    host:port (``admin_user`` may create roles and databases), with a few tables of rows.
    Names are SQL identifiers chosen by the caller (plain lowercase), never user input."""
    admin = await asyncpg.connect(
        host=host,
        port=port,
        user=admin_user,
        password=admin_password,
        database="postgres",
        timeout=10,
    )
    try:
        verb = (
            "ALTER"
            if await admin.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", owner)
            else "CREATE"
        )
        await admin.execute(f'{verb} ROLE "{owner}" LOGIN PASSWORD {_literal(password)}')
        created = not await admin.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
        if created:
            await admin.execute(f'CREATE DATABASE "{name}" OWNER "{owner}"')
    finally:
        await admin.close()
    # As the owner, so that the owner's dumps and restores can read and replace everything.
    conn = await asyncpg.connect(
        host=host, port=port, user=owner, password=password, database=name, timeout=10
    )
    try:
        await conn.execute(_SCHEMA)
        if not await conn.fetchval("SELECT count(*) FROM authors"):
            await conn.execute(_ROWS)
    finally:
        await conn.close()
    return DemoDatabase(host=host, port=port, name=name, username=owner, created=created)
