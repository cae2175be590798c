"""Read a finished dump in one streaming pass: footer, tables and the rows each holds.

Memory stays flat: the file is read in 1 MiB chunks, row data is counted with
``bytes.count``/``re.search`` over the chunk, and only a bounded prefix of each SQL line
is kept (long lines are skipped past, never buffered).

PostgreSQL (plain pg_dump): every data row is one line between ``COPY <t> (...) FROM
stdin;`` and the ``\\.`` line (text COPY escapes newlines and backslashes, so a row never
spans lines and no row can be ``\\.``).

MySQL/MariaDB (mysqldump/mariadb-dump): rows are tuples of ``INSERT INTO `t` VALUES
(...),(...);`` statements, which may span lines (MariaDB 10.11 puts each tuple on its
own line). Values are literals — numbers, NULL, 0x hex, quoted strings — so outside
quoted strings every ``(`` opens exactly one row; strings are skipped with their
backslash escapes (a doubled ``''`` reads as two adjacent strings, same count).
Statements inside ``DELIMITER ;;`` blocks (triggers, routines, events) are ignored.
"""

from __future__ import annotations

import hashlib
import re
import threading
from pathlib import Path

from app.integrations.dumps.model import DumpManifest, family

CHUNK = 1 << 20
MAX_LINE = 256 * 1024  # a COPY header of 1600 long quoted column names fits

PG_HEADER = b"-- PostgreSQL database dump"
PG_FOOTER = b"-- PostgreSQL database dump complete"
MY_FOOTER = b"-- Dump completed"
TERMINATOR = b"\n\\.\n"  # the end of a COPY block: a line holding only \.

_PG_IDENT = rb'(?:"(?:[^"]|"")*"|[^".\s]+)'
_PG_COPY = re.compile(
    rb"COPY (?P<schema>" + _PG_IDENT + rb")\.(?P<table>" + _PG_IDENT + rb") (?:\(.*\) | )"
    rb"FROM stdin;"
)
_MY_IDENT = rb"`(?P<name>(?:[^`]|``)+)`"
_MY_INSERT = re.compile(rb"INSERT INTO " + _MY_IDENT + rb" VALUES")
_MY_CREATE = re.compile(rb"CREATE TABLE " + _MY_IDENT + rb" \(")
_MY_HEADER = re.compile(rb"^-- (MariaDB|MySQL) dump", re.MULTILINE)
_STR_SPECIAL = re.compile(rb"[\\']")
_CODE_SPECIAL = re.compile(rb"[(';]")


def _pg_unquote(ident: bytes) -> str:
    text = ident.decode("utf-8", "replace")
    if text.startswith('"'):
        return text[1:-1].replace('""', '"')
    return text


class _Lines:
    """Split a byte stream into lines, keeping at most MAX_LINE bytes of each."""

    def __init__(self) -> None:
        self.buf = bytearray()
        self.long = False

    def take(self, chunk: bytes, pos: int) -> tuple[int, bool]:
        """Append chunk[pos:] up to the next newline; return (new pos, line complete)."""
        nl = chunk.find(b"\n", pos)
        end = len(chunk) if nl < 0 else nl
        room = MAX_LINE - len(self.buf)
        if end - pos > room:
            self.long = True
        self.buf += chunk[pos : pos + min(end - pos, max(room, 0))]
        return (len(chunk), False) if nl < 0 else (nl + 1, True)

    def reset(self) -> None:
        self.buf.clear()
        self.long = False


class PgScanner:
    def __init__(self) -> None:
        self.tables: dict[str, int] = {}
        self.footer = False
        self.header = False
        self._lines = _Lines()
        self._copy: str | None = None
        self._tail = b""  # last bytes of an open COPY block (already counted)

    def feed(self, chunk: bytes) -> None:
        pos = 0
        while pos < len(chunk):
            pos = self._feed_copy(chunk, pos) if self._copy else self._feed_sql(chunk, pos)

    def _feed_sql(self, chunk: bytes, pos: int) -> int:
        pos, complete = self._lines.take(chunk, pos)
        if complete:
            self._line(bytes(self._lines.buf))
            self._lines.reset()
        return pos

    def _line(self, line: bytes) -> None:
        if self.footer and line.strip() and not line.startswith((b"--", b"\\unrestrict")):
            self.footer = False  # the footer counts only at the end (a body may quote it)
        if line.startswith(b"-- PostgreSQL database dump"):
            self.header = True
            if line.rstrip() == PG_FOOTER:
                self.footer = True
            return
        if line.startswith(b"COPY ") and (m := _PG_COPY.fullmatch(line.rstrip(b"\r"))):
            key = f"{_pg_unquote(m['schema'])}.{_pg_unquote(m['table'])}"
            self.tables[key] = self.tables.get(key, 0)
            self._copy = key
            self._tail = b"\n"  # the header line's newline: the first row starts after it

    def _feed_copy(self, chunk: bytes, pos: int) -> int:
        assert self._copy is not None
        tail = self._tail
        if tail:
            # a terminator that starts in the bytes already seen (no big concatenation)
            joint = tail + chunk[pos : pos + 3]
            at = joint.find(TERMINATOR)
            if 0 <= at < len(tail):
                self._copy, self._tail = None, b""
                return pos + at + len(TERMINATOR) - len(tail)
        # rfind first: about twice as fast as find here, and most chunks hold no terminator
        end = chunk.find(TERMINATOR, pos) if chunk.rfind(TERMINATOR, pos) >= 0 else -1
        if end < 0:
            self.tables[self._copy] += chunk.count(b"\n", pos)
            self._tail = chunk[-3:] if len(chunk) - pos >= 3 else (tail + chunk[pos:])[-3:]
            return len(chunk)
        # rows end with the newlines up to and including the one before "\."
        self.tables[self._copy] += chunk.count(b"\n", pos, end + 1)
        self._copy, self._tail = None, b""
        return end + len(TERMINATOR)

    @property
    def complete(self) -> bool:
        return self.footer and self._copy is None


class MysqlScanner:
    def __init__(self) -> None:
        self.tables: dict[str, int] = {}
        self.footer = False
        self.header = False
        self._lines = _Lines()
        self._delimited = False  # inside DELIMITER ;; (routine/trigger/event bodies)
        self._insert: str | None = None
        self._in_str = False
        self._esc = False

    def feed(self, chunk: bytes) -> None:
        pos = 0
        while pos < len(chunk):
            pos = self._feed_insert(chunk, pos) if self._insert else self._feed_line(chunk, pos)

    def _feed_line(self, chunk: bytes, pos: int) -> int:
        start, before = pos, len(self._lines.buf)
        pos, complete = self._lines.take(chunk, pos)
        buf = self._lines.buf
        if not self._delimited and buf.startswith(b"INSERT INTO `"):
            m = _MY_INSERT.match(buf)
            if m:
                key = _my_unquote(m["name"])
                self.tables[key] = self.tables.get(key, 0)
                self._insert = key
                self._lines.reset()
                # go on right after "VALUES": buf[before:] came from chunk[start:]
                return start + max(m.end() - before, 0)
        if complete:
            self._line(bytes(buf))
            self._lines.reset()
        return pos

    def _line(self, line: bytes) -> None:
        line = line.rstrip(b"\r")
        if self.footer and line.strip() and not line.startswith(b"--"):
            self.footer = False  # the footer counts only at the end
        if line.startswith(b"DELIMITER "):
            self._delimited = line[len(b"DELIMITER ") :].strip() != b";"
        elif line.startswith(MY_FOOTER):
            self.footer = True
        elif line.startswith((b"-- MariaDB dump", b"-- MySQL dump")):
            self.header = True
        elif not self._delimited and line.startswith(b"CREATE TABLE `"):
            m = _MY_CREATE.match(line)
            if m:
                key = _my_unquote(m["name"])
                self.tables[key] = self.tables.get(key, 0)

    def _feed_insert(self, chunk: bytes, pos: int) -> int:
        assert self._insert is not None
        n = len(chunk)
        rows = 0
        in_str, esc = self._in_str, self._esc
        while pos < n:
            if esc:
                pos, esc = pos + 1, False
            elif in_str:
                m = _STR_SPECIAL.search(chunk, pos)
                if m is None:
                    pos = n
                elif chunk[m.start()] == 0x5C:  # backslash: skip the escaped byte
                    pos = m.start() + 2
                    if pos > n:
                        pos, esc = n, True
                else:
                    pos, in_str = m.start() + 1, False
            else:
                m = _CODE_SPECIAL.search(chunk, pos)
                if m is None:
                    pos = n
                    continue
                pos = m.start() + 1
                c = chunk[m.start()]
                if c == 0x28:  # "("
                    rows += 1
                elif c == 0x27:  # "'"
                    in_str = True
                else:  # ";" ends the statement
                    self.tables[self._insert] += rows
                    self._insert, self._in_str, self._esc = None, False, False
                    return pos
        self.tables[self._insert] += rows
        self._in_str, self._esc = in_str, esc
        return pos

    @property
    def complete(self) -> bool:
        return self.footer and self._insert is None


def _my_unquote(ident: bytes) -> str:
    return ident.decode("utf-8", "replace").replace("``", "`")


def detect_kind(head: bytes) -> str:
    if PG_HEADER in head:
        return "postgres"
    if _MY_HEADER.search(head):
        return "mysql"
    return "unknown"


def scan_file(
    path: Path,
    kind: str | None = None,
    stop: threading.Event | None = None,
    writer_done: threading.Event | None = None,
) -> DumpManifest:
    """Stream ``path`` once: sha256, size, tables and row counts, completeness.

    ``kind``: "postgres"/"mysql"/"mariadb", or None to detect it from the header.
    ``stop``: set it to abandon the scan (raises InterruptedError).
    ``writer_done``: follow a file that is still being written (the dump client runs
    meanwhile, so reading overlaps writing); at end of file wait for more until this is
    set, then read what is left. Needs ``kind``.
    """
    digest = hashlib.sha256()
    size = 0
    scanner: PgScanner | MysqlScanner | None = None
    if kind is not None:
        scanner = PgScanner() if family(kind) == "postgres" else MysqlScanner()
    with path.open("rb", buffering=0) as fh:
        while True:
            if stop is not None and stop.is_set():
                raise InterruptedError("scan abandoned")
            finished = writer_done is None or writer_done.is_set()
            chunk = fh.read(CHUNK)
            if not chunk:
                if finished:
                    break
                assert writer_done is not None
                writer_done.wait(0.05)
                continue
            if scanner is None:
                detected = detect_kind(chunk[:8192])
                if detected == "unknown":
                    return _unknown(path)
                scanner = PgScanner() if detected == "postgres" else MysqlScanner()
            digest.update(chunk)
            size += len(chunk)
            scanner.feed(chunk)
    if scanner is None or size == 0:
        return DumpManifest("unknown", False, {}, 0, digest.hexdigest(), "the dump file is empty")
    name = "postgres" if isinstance(scanner, PgScanner) else "mysql"
    problem = None
    if not scanner.complete:
        problem = (
            "the dump file has no completion footer (it was cut short)"
            if not scanner.footer
            else "the dump file ends inside a table's data"
        )
    return DumpManifest(
        name, scanner.complete, dict(scanner.tables), size, digest.hexdigest(), problem
    )


def _unknown(path: Path) -> DumpManifest:
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return DumpManifest(
        "unknown", False, {}, size, digest.hexdigest(), "not a pg_dump or mysqldump SQL file"
    )


def read_manifest(sql_file: Path) -> DumpManifest:
    """Footer present? Tables and row counts contained in the dump, and its kind."""
    return scan_file(Path(sql_file))
