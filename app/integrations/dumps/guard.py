"""No client meta-command from a dump ever runs.

A dump in a snapshot may have been written by anyone holding the repository password (the
owner has it: restore kit). ``psql`` and ``mariadb`` both run client-side commands found
in their input (``\\! sh …``, ``\\o file``, ``system …``, ``source file``), as the
worker's user, next to every tenant's secrets. So:

- psql: a client that knows ``\\restrict`` (PostgreSQL 17.6, 16.10, 15.14, 14.19, 13.22
  and later) gets ``\\restrict <random key>`` ahead of the dump: from there it refuses
  every backslash command but ``\\unrestrict <that key>``, which the dump cannot know.
  An older client gets the dump through a strict filter (``PsqlFilter``) that refuses
  any backslash outside COPY data, any psql variable interpolation, and in COPY data any
  escape pg_dump does not write.
- mariadb/mysql: ``--binary-mode`` (no client command but ``\\C`` and ``delimiter`` in
  piped input), plus ``--sandbox`` where the client has it (MariaDB 10.5.25, 10.6.18,
  10.11.8, 11.x) and ``--local-infile=0`` (no client-side file reads for the server).
  ``--sandbox`` alone is not enough: it still allows ``\\e``, which starts an editor.
"""

from __future__ import annotations

import errno
import os
import re
import secrets
import threading
from collections.abc import Callable, Iterator

from app.integrations.dumps.errors import DumpError

CHUNK = 1 << 20
# (major, first minor with \restrict); 18 and later have it from .0
_RESTRICT_SINCE = {13: 22, 14: 19, 15: 14, 16: 10, 17: 6}
# pg_dump's own guard lines: dropped, since ours comes first and allows no second one
_PG_DUMP_GUARD = re.compile(rb"\\(?:un)?restrict [A-Za-z0-9]{1,128}\r?\n?")

REFUSED_HINT = (
    "the dump holds a client command (a backslash command or a psql variable), which "
    "podbackup never runs: a dump written by pg_dump/mariadb-dump has none. Inspect the "
    "dump (download …/download?path=/database) and load it by hand if you trust it"
)


def refused(why: str) -> DumpError:
    return DumpError("dump_refused", f"the dump was not loaded: {why}", hint=REFUSED_HINT)


def psql_version(text: str) -> tuple[int, int] | None:
    """(major, minor) from ``psql --version`` ("psql (PostgreSQL) 15.20 (Debian …)")."""
    match = re.search(r"\)\s+(\d+)(?:\.(\d+))?", text)
    if not match:
        return None
    return int(match.group(1)), int(match.group(2) or 0)


def psql_restricts(version_text: str) -> bool:
    """Whether this psql knows ``\\restrict`` (by its version)."""
    version = psql_version(version_text)
    if version is None:
        return False
    major, minor = version
    if major >= 18:
        return True
    since = _RESTRICT_SINCE.get(major)
    return since is not None and minor >= since


def restrict_key() -> str:
    return secrets.token_urlsafe(32).replace("-", "a").replace("_", "b")


def _lines(fd: int) -> Iterator[tuple[bool, bytes]]:
    """The file as (starts_a_line, piece) with every piece ending at a newline, except
    pieces of a line longer than CHUNK (memory stays flat whatever the line length)."""
    carry = b""
    at_start = True
    while True:
        data = os.read(fd, CHUNK)
        if not data:
            break
        buf = carry + data
        start = 0
        while True:
            end = buf.find(b"\n", start)
            if end < 0:
                break
            yield at_start, buf[start : end + 1]
            at_start = True
            start = end + 1
        carry = buf[start:]
        if len(carry) > CHUNK:
            yield at_start, carry
            at_start, carry = False, b""
    if carry:
        yield at_start, carry


# -- the fallback filter for psql without \restrict -----------------------------------------

# psql interpolates :NAME, :'NAME' and :"NAME" for every variable set, and reads the value
# again as input (a value holding a backslash becomes a command). The variables psql sets
# are all upper case; some carry server- or tenant-given text (SERVER_VERSION_NAME, DBNAME).
_VARIABLE = re.compile(rb""":['"]?[A-Z][A-Z0-9_]*(?![A-Za-z0-9_])""")
# COPY text data as pg_dump writes it: backslash escapes \\ \b \f \n \r \t \v and \N only.
# Read as commands (if a hostile server never started the COPY), these are unknown
# commands or harmless ones (\t, \timing, \f, \r, \restrict, \bind), whose arguments only
# matter with backquotes: a data line with a backslash may not hold one.
_COPY_ESCAPE = re.compile(rb"\\(.?)", re.DOTALL)
_COPY_OK = frozenset(b"\\bfnrtvN")
_COPY_START = re.compile(rb"^\s*COPY\s.*\sFROM\s+stdin\s*;\s*$", re.IGNORECASE | re.DOTALL)
_SQL_TOKEN = re.compile(
    rb"""(?P<q>')|(?P<d>")|(?P<line>--)|(?P<open>/\*)|(?P<close>\*/)|(?P<semi>;)"""
    rb"""|(?P<dollar>(?<![A-Za-z0-9_\x80-\xff$])\$(?:[A-Za-z_\x80-\xff][A-Za-z0-9_\x80-\xff]*)?\$)"""
)


class PsqlFilter:
    """Passes a plain-format PostgreSQL dump through, refusing what psql would run on the
    client. Its SQL lexer only decides where COPY data starts (so pg_dump's dumps load);
    the rules on each kind of line keep the client safe even where it guesses wrong."""

    def __init__(self) -> None:
        self.copy = False
        self.statement = bytearray()
        self.quote: bytes | None = None  # b"'", b'"', a dollar tag, or None
        self.comment = 0  # depth of /* */ nesting
        self.line = 0

    def check(self, at_start: bool, piece: bytes) -> bytes:
        """The piece to pass on (b"" to drop it); raises DumpError(dump_refused)."""
        if at_start:
            self.line += 1
        if _VARIABLE.search(piece):
            raise refused(f"line {self.line} uses a psql variable")
        if self.copy:
            return self._copy_line(at_start, piece)
        if at_start and not self.statement.strip() and _PG_DUMP_GUARD.fullmatch(piece):
            return b""
        if b"\\" in piece:
            raise refused(f"line {self.line} holds a backslash command")
        self._lex(piece)
        return piece

    def _copy_line(self, at_start: bool, piece: bytes) -> bytes:
        if at_start and piece.rstrip(b"\r\n") == b"\\.":
            self.copy = False
            return piece
        if b"\\" in piece:
            if b"`" in piece:
                raise refused(f"line {self.line} (COPY data) holds a backslash and a backquote")
            for match in _COPY_ESCAPE.finditer(piece):
                following = match.group(1)
                if not following or following[0] not in _COPY_OK:
                    raise refused(
                        f"line {self.line} (COPY data) holds an escape pg_dump does not write"
                    )
        return piece

    def _lex(self, piece: bytes) -> None:
        pos = 0
        while pos < len(piece):
            if self.comment:
                end_open = piece.find(b"/*", pos)
                end_close = piece.find(b"*/", pos)
                if end_close < 0:
                    return
                if 0 <= end_open < end_close:
                    self.comment += 1
                    pos = end_open + 2
                    continue
                self.comment -= 1
                pos = end_close + 2
                continue
            if self.quote is not None:
                end = piece.find(self.quote, pos)
                if end < 0:
                    self.statement += piece[pos:]
                    return
                self.statement += piece[pos : end + len(self.quote)]
                pos = end + len(self.quote)
                self.quote = None
                continue
            match = _SQL_TOKEN.search(piece, pos)
            if match is None:
                self.statement += piece[pos:]
                return
            self.statement += piece[pos : match.start()]
            kind = match.lastgroup
            pos = match.end()
            if kind == "line":
                return
            if kind == "open":
                self.comment = 1
            elif kind == "semi":
                text = bytes(self.statement)
                self.statement.clear()
                if _COPY_START.match(text + b";") and not piece[pos:].strip():
                    self.copy = True
                    return
            elif kind != "close":  # a quote or dollar tag opens
                self.statement += match.group(0)
                self.quote = match.group(0)


# -- the feeder ----------------------------------------------------------------------------


def feed_psql(
    src: int,
    dst: int,
    key: str | None,
    *,
    on_refused: Callable[[], None],
    psql_gone: threading.Event,
    edit: Callable[[bool, bytes], bytes] | None = None,
) -> None:
    """Copy the dump from ``src`` to ``dst`` (psql's stdin), guarded: with ``key``, psql
    reads ``\\restrict <key>`` first; without, every piece passes PsqlFilter.

    ``dst`` is closed here: at once when the whole dump went through (psql sees EOF and
    commits) or psql has gone; on a refusal, ``on_refused()`` asks the caller to stop psql
    and ``dst`` stays open until ``psql_gone`` is set, so psql never reads an early EOF
    and commits half a dump: killed, its transaction rolls back. ``edit(at_start, piece)``:
    what to pass on of a piece that passed the guard (b"" drops it).
    """
    try:
        if key is not None:
            _write(dst, f"\\restrict {key}\n".encode())
        guard = None if key is not None else PsqlFilter()
        for at_start, piece in _lines(src):
            if guard is not None:
                piece = guard.check(at_start, piece)
            elif at_start and piece.startswith(b"\\") and _PG_DUMP_GUARD.fullmatch(piece):
                continue
            if piece and edit is not None:
                piece = edit(at_start, piece)
            if piece:
                _write(dst, piece)
    except BrokenPipeError:
        pass  # psql exited first; its own error explains why
    except BaseException:
        on_refused()
        psql_gone.wait(300)
        raise
    finally:
        os.close(dst)


def _write(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            written = os.write(fd, view)
        except OSError as exc:
            if exc.errno == errno.EPIPE:
                raise BrokenPipeError from None
            raise
        view = view[written:]
