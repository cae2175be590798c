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


def _split(buf: bytes) -> int:
    """Where to cut an overlong line: not right after a backslash (an escape stays whole)."""
    split = len(buf)
    while split > 0 and buf[split - 1] == 0x5C:
        split -= 1
    return split or len(buf)


def _segments(fd: int) -> Iterator[tuple[bool, bool, bytes]]:
    """The file as (whole, at_start, data). ``whole``: a run of complete lines (each
    ending in a newline, or the file's last line). Otherwise ``data`` is a piece of a
    line longer than CHUNK (memory stays flat whatever the line length), ``at_start`` for
    its first piece; a piece never ends inside an escape (right after a backslash)."""
    buf = b""
    in_line = False  # inside an overlong line, its first piece given already
    eof = False
    while True:
        if in_line:
            end = buf.find(b"\n")
            if end >= 0:
                yield False, False, buf[: end + 1]
                buf, in_line = buf[end + 1 :], False
            elif len(buf) > CHUNK:
                split = _split(buf)
                yield False, False, buf[:split]
                buf = buf[split:]
        if not in_line:
            cut = buf.rfind(b"\n") + 1
            if cut:
                yield True, True, buf[:cut]
                buf = buf[cut:]
            if len(buf) > CHUNK:
                split = _split(buf)
                yield False, True, buf[:split]
                buf, in_line = buf[split:], True
                continue
        if eof:
            if buf:
                yield (False, False, buf) if in_line else (True, True, buf)
            return
        data = os.read(fd, CHUNK)
        if data:
            buf += data
        else:
            eof = True


# -- the fallback filter for psql without \restrict -----------------------------------------

# psql interpolates :NAME, :'NAME' and :"NAME" for every variable set, and reads the value
# again as input (a value holding a backslash becomes a command). The variables psql sets
# are all upper case; some carry server- or tenant-given text (SERVER_VERSION_NAME, DBNAME).
_VARIABLE = re.compile(rb""":['"]?[A-Z][A-Z0-9_]*(?![A-Za-z0-9_])""")
# COPY text data as pg_dump writes it: backslash escapes \\ \b \f \n \r \t \v and \N only.
# Read as commands (if a hostile server never started the COPY), these are unknown
# commands or harmless ones (\t, \timing, \f, \r, \restrict, \bind), whose arguments only
# matter with backquotes: a data line with a backslash may not hold one.
# _BAD_ESCAPE (slow, to point at the line): an odd run of backslashes followed by anything
# but those letters or by nothing; _ESCAPE_CHECK the fast test (see _escapes_ok).
_BAD_ESCAPE = re.compile(rb"(?<!\\)(?:\\\\)*\\(?:[^\\bfnrtvN]|\Z)")
_ESCAPE_CHECK = re.compile(rb"\\(?:[^bfnrtvN]|\Z)")


def _copy_end(data: bytes, pos: int) -> tuple[int, int] | None:
    """(start, end) of the first ``\\.`` line at or after ``pos`` (a line start)."""
    at = data.find(b"\\.", pos)
    while at >= 0:
        if at == pos or data[at - 1] == 0x0A:
            tail = data[at + 2 : at + 4]
            if tail[:1] == b"\n" or tail == b"\r\n" or tail in (b"", b"\r"):
                end = at + 2 + (1 if tail[:1] == b"\n" else len(tail))
                return at, end
        at = data.find(b"\\.", at + 1)
    return None


def _escapes_ok(block: bytes) -> bool:
    """Only the escapes pg_dump writes. An escaped backslash (rare) is dropped first, left
    to right as COPY reads them, before looking again."""
    if _ESCAPE_CHECK.search(block) is None:
        return True
    return _ESCAPE_CHECK.search(block.replace(b"\\\\", b"")) is None


def _slash_and_quote(block: bytes) -> int:
    """Offset of a line holding both a backslash and a backquote, or -1."""
    at = block.find(b"`")
    while at >= 0:
        start = block.rfind(b"\n", 0, at) + 1
        end = block.find(b"\n", at)
        end = len(block) if end < 0 else end
        if b"\\" in block[start:end]:
            return start
        at = block.find(b"`", end)
    return -1


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
        self.slash = self.backquote = False  # seen in the current COPY line so far

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
        if at_start:
            self.slash = self.backquote = False
            if piece.rstrip(b"\r\n") == b"\\.":
                self.copy = False
                return piece
        self.slash = self.slash or b"\\" in piece
        self.backquote = self.backquote or b"`" in piece
        if self.slash and self.backquote:
            raise refused(f"line {self.line} (COPY data) holds a backslash and a backquote")
        if not _escapes_ok(piece):
            raise refused(f"line {self.line} (COPY data) holds an escape pg_dump does not write")
        return piece

    def copy_block(self, block: bytes) -> None:
        """Check whole lines of COPY data at once (the common case, at C speed)."""
        problem: tuple[int, str] | None = None
        if (match := _VARIABLE.search(block)) is not None:
            problem = (match.start(), "uses a psql variable")
        elif (at := _slash_and_quote(block)) >= 0:
            problem = (at, "(COPY data) holds a backslash and a backquote")
        elif not _escapes_ok(block):
            found = _BAD_ESCAPE.search(block)
            problem = (
                found.start() if found else 0,
                "(COPY data) holds an escape pg_dump does not write",
            )
        if problem is not None:
            line = self.line + block.count(b"\n", 0, problem[0]) + 1
            raise refused(f"line {line} {problem[1]}")
        self.line += block.count(b"\n")

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

Edit = Callable[[bool, bytes], bytes]
_INTEREST = re.compile(
    rb"^(?:\\|COPY |GRANT |REVOKE |ALTER DEFAULT PRIVILEGES |SET SESSION AUTHORIZATION"
    rb"|RESET SESSION AUTHORIZATION)",
    re.MULTILINE,
)
_COPY_LINE = re.compile(rb"COPY\s.*\sFROM\s+stdin\s*;\s*$", re.IGNORECASE | re.DOTALL)


class _Restricted:
    """With \\restrict, psql itself refuses the dump's commands: pass whole runs of lines
    through, looking only at lines that start a COPY, end one, are pg_dump's own guard
    lines (dropped) or privilege statements (``edit``)."""

    def __init__(self, edit: Edit | None) -> None:
        self.copy = False
        self.edit = edit

    def feed(self, whole: bool, at_start: bool, data: bytes) -> bytes:
        if not whole:
            return data  # a piece of an overlong line: data or SQL, psql judges
        if self.copy and _copy_end(data, 0) is None:
            return data  # the common case: a run of COPY data
        out = bytearray()
        pos, size = 0, len(data)
        while pos < size:
            if self.copy:
                found = _copy_end(data, pos)
                if found is None:
                    out += data[pos:]
                    break
                out += data[pos : found[1]]
                pos, self.copy = found[1], False
                continue
            match = _INTEREST.search(data, pos)
            if match is None:
                out += data[pos:]
                break
            out += data[pos : match.start()]
            end = data.find(b"\n", match.start())
            pos = size if end < 0 else end + 1
            line = data[match.start() : pos]
            if line.startswith(b"\\"):
                if not _PG_DUMP_GUARD.fullmatch(line):
                    out += line  # psql refuses it
            elif line.startswith(b"COPY ") and _COPY_LINE.match(line):
                self.copy = True
                out += line
            else:
                out += self.edit(True, line) if self.edit is not None else line
        return bytes(out)


class _Filtered:
    """Without \\restrict: every line passes PsqlFilter; runs of COPY data lines are
    checked as one block."""

    def __init__(self, edit: Edit | None) -> None:
        self.sql = PsqlFilter()
        self.edit = edit

    def feed(self, whole: bool, at_start: bool, data: bytes) -> bytes:
        sql = self.sql
        if not whole:
            return sql.check(at_start, data)
        out = bytearray()
        pos, size = 0, len(data)
        while pos < size:
            if sql.copy:
                found = _copy_end(data, pos)
                stop = size if found is None else found[0]
                sql.copy_block(data[pos:stop])
                out += data[pos:stop]
                if found is None:
                    break
                out += sql.check(True, data[found[0] : found[1]])
                pos = found[1]
                continue
            end = data.find(b"\n", pos)
            end = size if end < 0 else end + 1
            line = sql.check(True, data[pos:end])
            pos = end
            if line and self.edit is not None and not sql.copy:
                line = self.edit(True, line)
            out += line
        return bytes(out)


def feed_psql(
    src: int,
    dst: int,
    key: str | None,
    *,
    on_refused: Callable[[], None],
    psql_gone: threading.Event,
    edit: Edit | None = None,
) -> None:
    """Copy the dump from ``src`` to ``dst`` (psql's stdin), guarded: with ``key``, psql
    reads ``\\restrict <key>`` first; without, every piece passes PsqlFilter.

    ``dst`` is closed here: at once when the whole dump went through (psql sees EOF and
    commits) or psql has gone; on a refusal, ``on_refused()`` asks the caller to stop psql
    and ``dst`` stays open until ``psql_gone`` is set, so psql never reads an early EOF
    and commits half a dump: killed, its transaction rolls back. ``edit(at_start, line)``:
    what to pass on of an SQL line that passed the guard (b"" drops it).
    """
    try:
        if key is not None:
            _write(dst, f"\\restrict {key}\n".encode())
        engine = _Restricted(edit) if key is not None else _Filtered(edit)
        for whole, at_start, data in _segments(src):
            out = engine.feed(whole, at_start, data)
            if out:
                _write(dst, out)
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
