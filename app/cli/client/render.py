"""How the CLI prints: rich tables for people, ``--json`` for scripts, exit codes."""

from __future__ import annotations

import functools
import json
import os
import re
import sys
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any, ParamSpec, TypeVar

import typer
from rich.console import Console, ConsoleDimensions, ConsoleOptions, RenderableType
from rich.filesize import decimal
from rich.segment import Segment
from rich.table import Table
from rich.text import Text

from app.cli.client.api import CliError

OK, FAILED, ERROR, PARTIAL = 0, 1, 2, 3
EXIT_CODES = (
    "Exit codes: 0 succeeded; 1 the job failed or was canceled (verify: a check failed); "
    "2 usage, network or API error (the message says which); 3 partial (the job finished "
    "but some files could not be read)."
)


# What a terminal obeys or reorders rather than shows: C0 and C1 controls (an escape
# sequence can recolour, move the cursor, clear the screen or retitle the window), DEL,
# zero-width spaces, bidirectional marks and overrides, line and paragraph separators
# (not the joiner inside emoji sequences).
_UNSAFE = re.compile(r"[\x00-\x1f\x7f-\x9f\u200b\u200e\u200f\u2028-\u202e\u2060-\u206f\ufeff]")
_UNSAFE_BUT_NEWLINE = re.compile(
    r"[\x00-\x09\x0b-\x1f\x7f-\x9f\u200b\u200e\u200f\u2028-\u202e\u2060-\u206f\ufeff]"
)


def _escape(match: re.Match[str]) -> str:
    return match.group().encode("unicode_escape").decode("ascii")


def printable(value: str) -> str:
    """Text from the API (names, paths, messages: a tenant or their servers chose them) as
    shown: every control or direction character as a visible escape (``\\x1b``, ``\\n``,
    ``\\u202e``)."""
    return _UNSAFE.sub(_escape, value)


class SafeConsole(Console):
    """Prints what the API returned as text, never as terminal commands: strings are not
    markup (a name like ``[red]x`` or ``[/]`` shows as typed) and control characters are
    escaped, in strings (``render_str``: printed strings and table cells) and, as a
    backstop, in every segment of text (``Text`` built from API values)."""

    def render_str(self, text: str, **kwargs: Any) -> Text:
        return super().render_str(printable(text), **kwargs)

    def render(
        self, renderable: RenderableType, options: ConsoleOptions | None = None
    ) -> Iterable[Segment]:
        for segment in super().render(renderable, options):
            if segment.control is None and _UNSAFE_BUT_NEWLINE.search(segment.text):
                yield Segment(_UNSAFE_BUT_NEWLINE.sub(_escape, segment.text), segment.style)
            else:
                yield segment


class _Console(SafeConsole):
    """The width is decided when something is printed, not when the module is imported (a
    test runner or a wrapper may swap the streams or the environment in between): `COLUMNS`
    when set, the terminal's when printing to one, else 200, so piped tables are wide lines
    rather than cropped at 80 columns."""

    @property
    def size(self) -> ConsoleDimensions:
        measured = super().size
        columns = os.environ.get("COLUMNS", "")
        if columns.isdigit() and int(columns) > 0:
            return ConsoleDimensions(int(columns), measured.height)
        if self.file.isatty():
            return measured
        return ConsoleDimensions(200, measured.height)

    @size.setter
    def size(self, new_size: tuple[int, int]) -> None:
        Console.size.fset(self, new_size)  # type: ignore[attr-defined]


def _console(stderr: bool) -> Console:
    return _Console(stderr=stderr, highlight=False, markup=False)


out = _console(stderr=False)
err = _console(stderr=True)

STATUS_STYLE = {
    "succeeded": "green",
    "partial": "yellow",
    "failed": "red",
    "canceled": "magenta",
    "running": "cyan",
    "queued": "dim",
}

P = ParamSpec("P")
R = TypeVar("R")


def exit_code(status: str) -> int:
    return {"succeeded": OK, "partial": PARTIAL}.get(status, FAILED)


def handles_errors(fn: Callable[P, R]) -> Callable[P, R]:
    """Turn ``CliError`` (API, network, usage) into a message and its exit code:
    ``error: <detail>`` and ``hint: …`` on stderr; with ``--json``, the error envelope
    ``{"error", "detail", "hint"?, "status"?}`` as JSON on stdout (where a script reads)."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except CliError as exc:
            if kwargs.get("as_json"):
                print_json(exc.body())
            else:
                err.print(Text.assemble(("error: ", "bold red"), exc.message))
                if exc.hint:
                    err.print(Text.assemble(("hint: ", "bold"), exc.hint))
            raise typer.Exit(exc.code) from None

    return wrapper


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")
    sys.stdout.flush()


def print_json_line(data: Any) -> None:
    """One JSON document on one line (a stream of events)."""
    sys.stdout.write(json.dumps(data, ensure_ascii=False, default=str) + "\n")
    sys.stdout.flush()


def status(value: str | None) -> Text:
    return Text(value or "-", style=STATUS_STYLE.get(value or "", ""))


def size(value: Any) -> str:
    return decimal(int(value)) if isinstance(value, int | float) else "-"


def when(value: str | None, seconds: bool = True) -> str:
    """An API time (RFC 3339, UTC) in this machine's local time."""
    if not value:
        return "-"
    try:
        shown = datetime.fromisoformat(value).astimezone()
        return shown.strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M")
    except ValueError:
        return value


def duration(value: float | None) -> str:
    if value is None:
        return "-"
    seconds = round(value)
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def job_seconds(job: dict[str, Any]) -> float | None:
    start, end = job.get("started_at"), job.get("finished_at")
    if not start:
        return None
    stop = datetime.fromisoformat(end) if end else datetime.now().astimezone()
    return (stop - datetime.fromisoformat(start)).total_seconds()


class SafeTable(Table):
    """A table whose ``Text`` cells show control characters escaped too, measured as
    shown (string cells are escaped by ``SafeConsole.render_str``)."""

    def add_row(self, *renderables: RenderableType | None, **kwargs: Any) -> None:
        cells = [
            Text(printable(r.plain), style=r.style)
            if isinstance(r, Text) and _UNSAFE.search(r.plain)
            else r
            for r in renderables
        ]
        super().add_row(*cells, **kwargs)


def table(*columns: str) -> Table:
    t = SafeTable(show_edge=False, header_style="bold", pad_edge=False)
    for i, name in enumerate(columns):
        last = i == len(columns) - 1
        t.add_column(name, overflow="fold", no_wrap=not last)
    return t


def key_values(rows: list[tuple[str, Any]]) -> Table:
    t = Table.grid(padding=(0, 2))
    t.add_column(style="bold")
    t.add_column(overflow="fold")
    for key, value in rows:
        t.add_row(key, value if isinstance(value, Text) else Text(printable(str(value))))
    return t


def record(obj: dict[str, Any]) -> Table:
    """An API object as key/value lines, ``-`` for null (show commands without a layout of
    their own)."""
    return key_values([(k, "-" if v is None else v) for k, v in obj.items()])


def snapshot_label(snap: dict[str, Any]) -> str:
    """What made a snapshot, in words: ``backup (manual)``, ``safety (before a restore)``,
    ``imported (made outside the service)``."""
    kind = snap.get("kind") or "-"
    if kind == "backup":
        return f"backup ({snap['trigger']})" if snap.get("trigger") else "backup"
    if kind == "safety":
        return "safety (the pod before a restore)"
    if kind == "imported":
        return "imported (made outside the service)"
    return kind


def job_line(job: dict[str, Any]) -> Text:
    """``backup 1a2b3c4d succeeded in 12s`` (+ the error)."""
    text = Text.assemble(
        f"{job['kind']} {job['id'][:8]} ",
        status(job["status"]),
        f" in {duration(job_seconds(job))}",
    )
    if job.get("error"):
        e = job["error"]
        text.append(f"\n  {e.get('code')}: {e.get('message')}", style="red")
        if e.get("hint"):
            text.append(f"\n  hint: {e['hint']}")
    return text


def job_result(job: dict[str, Any]) -> list[str]:
    """What a finished job produced, in a few lines."""
    result = job.get("result") or {}
    lines: list[str] = []
    if result.get("snapshot_id") and job["kind"] == "backup":
        summary = result.get("summary") or {}
        lines.append(
            f"snapshot {result.get('short_id') or result['snapshot_id'][:8]}: "
            f"{summary.get('total_files_processed', '?')} files, "
            f"{size(summary.get('total_bytes_processed'))} processed, "
            f"{size(summary.get('data_added'))} added"
        )
        db = result.get("database")
        if db:
            lines.append(f"database {db.get('name')}: {size(db.get('bytes'))} dump")
    for item in (result.get("unreadable") or [])[:10]:
        lines.append(f"unreadable: {item.get('path')} ({item.get('error', 'not readable')})")
    if (result.get("unreadable_count") or 0) > 10:
        lines.append(f"… and {result['unreadable_count'] - 10} more unreadable")
    if job["kind"] == "export" and result.get("size_bytes") is not None:
        lines.append(f"export {result.get('export_id')}: {size(result['size_bytes'])}")
    if job["kind"] == "restore":
        lines += _restore_lines(result)
    return lines


def _restore_lines(result: dict[str, Any]) -> list[str]:
    lines = []
    f = result.get("files")
    if isinstance(f, dict):
        written = f.get("files_written", f.get("files_uploaded", 0))
        nbytes = f.get("bytes_written", f.get("bytes_uploaded"))
        lines.append(
            f"files: {f.get('files_total', '?')} in the snapshot's paths, "
            f"{written} written ({size(nbytes)}), {f.get('files_deleted', 0)} deleted"
        )
        if "files_compared" in f:
            lines.append(
                f"files: {f['files_compared']} compared by content (same size and mtime), "
                f"{f.get('files_rewritten', 0)} differed and were rewritten; "
                f"{f.get('files_verified', 0)} verified after writing"
            )
    db = result.get("database")
    if isinstance(db, dict):
        lines.append(f"database {db.get('name')}: loaded in {duration(db.get('seconds'))}")
    if result.get("undo_of"):
        lines.append(f"undid restore {str(result['undo_of'])[:8]}")
    if result.get("safety_snapshot_id"):
        short = str(result["safety_snapshot_id"])[:8]
        lines.append(
            f"safety snapshot {short} holds the pod as it was before "
            f"(to undo: podbackup undo JOB_ID)"
        )
    return lines


PREVIEW_ROWS = 40


def print_preview(preview: dict[str, Any]) -> None:
    """A restore preview: what it adds, overwrites (and why) and deletes, then the database."""
    counts, nbytes = preview.get("counts") or {}, preview.get("bytes") or {}
    out.print(
        f"would add {counts.get('add', 0)} ({size(nbytes.get('add'))}), overwrite "
        f"{counts.get('overwrite', 0)} ({size(nbytes.get('overwrite'))} rewritten), delete "
        f"{counts.get('delete', 0)}; {counts.get('unchanged', 0)} unchanged"
    )
    rows = [("add", i, size(i.get("size"))) for i in preview.get("add") or []]
    rows += [
        ("overwrite", i, ", ".join(i.get("reasons") or [])) for i in preview.get("overwrite") or []
    ]
    rows += [("delete", i, "") for i in preview.get("delete") or []]
    if rows:
        t = table("change", "path", "why / size")
        for action, item, why in rows[:PREVIEW_ROWS]:
            t.add_row(action, printable(str(item.get("path"))), why)
        out.print(t)
    shown = min(len(rows), PREVIEW_ROWS)
    total = sum(int(counts.get(k, 0)) for k in ("add", "overwrite", "delete"))
    if total > shown:
        out.print(f"… and {total - shown} more (--json lists up to 1,000 of each)")
    db = preview.get("database")
    if isinstance(db, dict):
        tables = db.get("replaces") or []
        out.print(
            f"database {printable(str(db.get('target_database')))}: replaced whole by "
            f"{printable(str(db.get('dump_file')))} ({db.get('tables_total', len(tables))} "
            f"tables: {printable(', '.join(tables[:10]))}{' …' if len(tables) > 10 else ''})"
        )
