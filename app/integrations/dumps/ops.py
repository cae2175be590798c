"""dump(), load() and table_counts(): the entry points the jobs call."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import stat
import threading
import time
from pathlib import Path

from app.integrations.dumps.errors import DumpError
from app.integrations.dumps.manifest import scan_file
from app.integrations.dumps.model import Conn, DbEndpoint, DumpResult, LoadResult, family
from app.integrations.dumps.runner import Progress, backend, guarded, polling, resolve
from app.kit.netpolicy import Policy


def _open_dest(dest: Path) -> int:
    """Create ``dest`` afresh, 0600; refuse to write through anything but a plain file
    (a failed dump unlinks what it wrote, so this must never be a device or a link)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        mode = dest.lstat().st_mode
    except FileNotFoundError:
        pass
    else:
        if not stat.S_ISREG(mode):
            raise DumpError("dump_failed", f"{dest} exists and is not a regular file")
        dest.unlink()
    try:
        return os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            raise DumpError("disk_full", f"cannot create {dest}: {exc.strerror}") from None
        raise


async def dump(
    endpoint: DbEndpoint,
    policy: Policy,
    dest: Path,
    *,
    on_progress: Progress | None = None,
    cancel: asyncio.Event | None = None,
    timeout: float | None = None,
) -> DumpResult:
    """Dump the endpoint's database to ``dest`` (a .sql file, 0600), written by the client
    straight to disk; a reader thread follows the file as it grows for sha256,
    completeness and the row counts it contains (memory stays flat in the dump size).

    Any failure (non-zero exit, missing footer, cancel, timeout) removes ``dest``.
    """

    async def work() -> DumpResult:
        conn = await resolve(policy, endpoint)
        return await _dump(conn, Path(dest), on_progress)

    return await guarded(
        work(), cancel=cancel, timeout=timeout, what="dump", secret=endpoint.password
    )


async def _dump(conn: Conn, dest: Path, on_progress: Progress | None) -> DumpResult:
    impl = backend(conn.endpoint.kind)
    info = await impl.probe(conn)
    fd = _open_dest(dest)
    stop, written = threading.Event(), threading.Event()
    # read the file while the client writes it: hashing and counting overlap the dump
    scan = asyncio.ensure_future(
        asyncio.to_thread(scan_file, dest, conn.endpoint.kind, stop, written)
    )
    try:
        try:
            async with polling(lambda: os.fstat(fd).st_size, on_progress):
                client = await impl.run_dump(conn, info, fd, dest)
        finally:
            written.set()
            os.close(fd)
        manifest = await scan
        if not manifest.complete:
            raise DumpError(
                "dump_incomplete",
                f"the dump of '{conn.name}' is incomplete: {manifest.problem}",
            )
    except BaseException:
        stop.set()
        # the reader thread stops at its next chunk: let it, so no thread outlives the
        # dump reading a file about to be deleted; collect its outcome quietly
        scan.add_done_callback(lambda f: None if f.cancelled() else f.exception())
        await asyncio.wait({scan}, timeout=5)
        with contextlib.suppress(OSError):
            dest.unlink()
        raise
    if on_progress is not None:
        on_progress(manifest.bytes)
    return DumpResult(
        path=dest,
        bytes=manifest.bytes,
        sha256=manifest.sha256,
        server_version=info.version,
        client=client,
        tables=manifest.tables,
    )


async def load(
    endpoint: DbEndpoint,
    policy: Policy,
    sql_file: Path,
    *,
    replace: bool = True,
    on_progress: Progress | None = None,
    cancel: asyncio.Event | None = None,
    timeout: float | None = None,
) -> LoadResult:
    """Load ``sql_file`` into the endpoint's database with the matching client.

    Creates the database when missing (if the login may). ``replace``: first drop what
    the database holds, so a restore never fails or duplicates rows on existing tables.
    PostgreSQL does the drop and the load in one transaction (a failed load changes
    nothing); MySQL cannot roll DDL back, so there a failed load leaves a partial state.
    Returns exact row counts afterwards.
    """

    async def work() -> LoadResult:
        conn = await resolve(policy, endpoint)
        return await load_into(conn, Path(sql_file), replace=replace, on_progress=on_progress)

    return await guarded(
        work(), cancel=cancel, timeout=timeout, what="load", secret=endpoint.password
    )


async def load_into(
    conn: Conn, sql_file: Path, *, replace: bool, on_progress: Progress | None = None
) -> LoadResult:
    """load() for an already checked connection (drills use their configured server)."""
    impl = backend(conn.endpoint.kind)
    started = time.monotonic()
    try:
        fd = os.open(sql_file, os.O_RDONLY)
    except FileNotFoundError:
        raise DumpError("load_failed", f"the dump file {sql_file} does not exist") from None
    try:
        info = await impl.ensure_database(conn)
        # the child inherits the open file description, so its read offset is ours to poll
        async with polling(lambda: os.lseek(fd, 0, os.SEEK_CUR), on_progress):
            not_restored: list[str] = await impl.run_load(conn, info, fd, replace=replace)
        size = os.fstat(fd).st_size
    finally:
        os.close(fd)
    if on_progress is not None:
        on_progress(size)
    tables = await impl.counts(conn)
    return LoadResult(tables=tables, seconds=time.monotonic() - started, not_restored=not_restored)


async def table_counts(endpoint: DbEndpoint, policy: Policy) -> dict[str, int]:
    """Exact row counts of the endpoint's tables (keys as in the dump's manifest)."""
    family(endpoint.kind)

    async def work() -> dict[str, int]:
        conn = await resolve(policy, endpoint)
        counts: dict[str, int] = await backend(endpoint.kind).counts(conn)
        return counts

    return await guarded(work(), cancel=None, timeout=None, what="count", secret=endpoint.password)
