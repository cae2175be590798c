"""Every child process goes through here: argv lists, secrets only in a minimal env,
a timeout, cancellation that interrupts and then kills the whole process group.

``run()`` streams stdout line by line to a callback (restic's ``--json`` output, dump
progress) and keeps a bounded tail of stderr for error messages.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from app.kit.logging import redact

log = logging.getLogger(__name__)

LineCallback = Callable[[str], Awaitable[None] | None]

# Only these variables of the worker's own environment reach a child; never the
# service's keys or database URL.
_PASS_THROUGH = ("PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR", "SSL_CERT_FILE", "SSL_CERT_DIR")

_argv_log: Path | None = None


def set_argv_log(path: Path | None) -> None:
    """Append the argv of every spawned child to ``path`` (one JSON line each), for audits."""
    global _argv_log
    _argv_log = path


class HandedOver:
    """File descriptors the parent gives up once a child has inherited them (each closed
    exactly once, so a reused descriptor number is never closed by mistake)."""

    def __init__(self, *fds: int) -> None:
        self._fds = list(fds)

    def close(self) -> None:
        while self._fds:
            with contextlib.suppress(OSError):
                os.close(self._fds.pop())


class Cancelled(Exception):
    """The run was interrupted on request (SIGINT, then SIGKILL after the grace period)."""


class TimedOut(Exception):
    """The run exceeded its timeout and was killed."""


@dataclass
class Completed:
    argv: list[str]
    returncode: int
    stderr_tail: str
    duration: float
    stdout_tail: list[str] = field(default_factory=list)


def child_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k in _PASS_THROUGH if (v := os.environ.get(k)) is not None}
    env.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
    env.setdefault("LANG", "C.UTF-8")
    env.update(extra or {})
    return env


def die_with_parent() -> None:
    """In the child, before exec: get SIGTERM when the worker dies (even by SIGKILL), so no
    restic or dump process outlives the job that owns it."""
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _record_argv(argv: Sequence[str]) -> None:
    if _argv_log is None:
        return
    with contextlib.suppress(OSError), _argv_log.open("a") as fh:
        fh.write(json.dumps({"at": time.time(), "argv": list(argv)}) + "\n")


def _signal_group(proc: asyncio.subprocess.Process, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)


async def _pump(
    stream: asyncio.StreamReader,
    on_line: LineCallback | None,
    tail: deque[str],
    failures: list[Exception],
) -> None:
    """Read lines to the end. A callback that raises is not called again, but the stream
    is still drained (a child blocked on a full pipe would hang the job) and ``run()``
    raises the callback's error once the child has exited — never a silent half-read."""
    while True:
        try:
            raw = await stream.readuntil(b"\n")
        except asyncio.IncompleteReadError as exc:
            raw = exc.partial
            if not raw:
                return
        except asyncio.LimitOverrunError as exc:
            raw = await stream.readexactly(exc.consumed)
        line = raw.decode("utf-8", "replace").rstrip("\r\n")
        tail.append(line)
        if on_line is not None and not failures:
            try:
                result = on_line(line)
                if result is not None:
                    await result
            except Exception as exc:
                failures.append(exc)


async def run(
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    cwd: str | Path | None = None,
    on_stdout: LineCallback | None = None,
    on_stderr: LineCallback | None = None,
    stdin: int | None = asyncio.subprocess.DEVNULL,
    stdout: int | None = asyncio.subprocess.PIPE,
    timeout: float | None = None,
    cancel: asyncio.Event | None = None,
    grace: float = 10.0,
    stderr_lines: int = 200,
    handed_over: HandedOver | None = None,
) -> Completed:
    """Run ``argv`` to completion. Raises Cancelled or TimedOut after killing the group.

    ``env`` is added to a minimal environment; put secrets there, never in ``argv``.
    ``handed_over``: pipe ends the child now owns, closed here once it has started (or
    failed to), so the process at the other end sees EOF when this one exits.
    """
    argv = [str(a) for a in argv]
    _record_argv(argv)
    started = time.monotonic()
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=stdin,
            stdout=stdout,
            stderr=asyncio.subprocess.PIPE,
            env=child_env(env),
            cwd=str(cwd) if cwd else None,
            start_new_session=True,  # own process group: signals reach restic and its helpers
            preexec_fn=die_with_parent,
            limit=1 << 20,
        )
    finally:
        if handed_over is not None:
            handed_over.close()
    err_tail: deque[str] = deque(maxlen=stderr_lines)
    out_tail: deque[str] = deque(maxlen=50)
    failures: list[Exception] = []
    pumps = [asyncio.create_task(_pump(proc.stderr, on_stderr, err_tail, failures))]  # type: ignore[arg-type]
    if proc.stdout is not None:
        pumps.append(asyncio.create_task(_pump(proc.stdout, on_stdout, out_tail, failures)))
    waiter = asyncio.create_task(proc.wait())
    cancel_task = asyncio.create_task(cancel.wait()) if cancel else None
    outcome: type[Exception] | None = None
    try:
        pending = {waiter} | ({cancel_task} if cancel_task else set())
        done, _ = await asyncio.wait(pending, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        if waiter not in done:
            outcome = Cancelled if cancel_task in done else TimedOut
            _signal_group(proc, signal.SIGINT)
            try:
                await asyncio.wait_for(asyncio.shield(waiter), timeout=grace)
            except TimeoutError:
                _signal_group(proc, signal.SIGKILL)
                await waiter
    except BaseException:
        # Our own task was cancelled (worker shutting down): never leave a child behind.
        _signal_group(proc, signal.SIGINT)
        with contextlib.suppress(BaseException):
            await asyncio.wait_for(asyncio.shield(waiter), timeout=grace)
        _signal_group(proc, signal.SIGKILL)
        raise
    finally:
        if cancel_task:
            cancel_task.cancel()
        with contextlib.suppress(BaseException):
            await asyncio.wait_for(asyncio.gather(*pumps, return_exceptions=True), timeout=5)
        for task in pumps:
            task.cancel()
    duration = time.monotonic() - started
    if outcome is not None:
        log.info("%s %s after %.1fs", argv[0], outcome.__name__.lower(), duration)
        what = "interrupted" if outcome is Cancelled else "killed after its timeout"
        raise outcome(f"{Path(argv[0]).name} was {what}")
    if failures:
        raise failures[0]
    return Completed(
        argv=argv,
        returncode=proc.returncode if proc.returncode is not None else -1,
        stderr_tail=redact("\n".join(err_tail)),
        duration=duration,
        stdout_tail=list(out_tail),
    )


@contextlib.asynccontextmanager
async def stream(
    argv: Sequence[str], *, env: Mapping[str, str] | None = None, grace: float = 2.0
) -> AsyncIterator[asyncio.subprocess.Process]:
    """Start ``argv`` with stdout piped for the caller to read; always reaped on exit.

    A caller that stops reading early (a client closed the download) gets the whole
    process group interrupted, then killed, while what the child still writes is read
    and dropped (see ``_stop``).
    """
    argv = [str(a) for a in argv]
    _record_argv(argv)
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=child_env(env),
        start_new_session=True,
        preexec_fn=die_with_parent,
        limit=1 << 20,
    )
    try:
        yield proc
    finally:
        await _stop(proc, grace)


async def _discard(reader: asyncio.StreamReader | None) -> None:
    if reader is None:
        return
    with contextlib.suppress(Exception):
        while await reader.read(1 << 20):
            pass


async def _exited(proc: asyncio.subprocess.Process, timeout: float) -> bool:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(asyncio.shield(proc.wait()), timeout=timeout)
    return proc.returncode is not None


async def _stop(proc: asyncio.subprocess.Process, grace: float) -> None:
    """Interrupt the group (then kill it after ``grace``), reading the child's pipes to
    their end meanwhile. Unread pipes made this wait forever: a reader over its limit
    stops reading, so the child blocks in write(2) — restic 0.17+ then never acts on
    SIGINT (it cancels its command's context, which a blocked write never checks; 0.14
    exited from the signal handler) — and on Python 3.11 ``Process.wait()`` returns only
    once every pipe has closed, so even a killed child was never seen to end."""
    drains = [asyncio.create_task(_discard(r)) for r in (proc.stdout, proc.stderr)]
    try:
        if proc.returncode is None:
            _signal_group(proc, signal.SIGINT)
            if not await _exited(proc, grace):
                _signal_group(proc, signal.SIGKILL)
                await _exited(proc, 5)
        # The pipes' ends (a helper outside the group may hold one a little longer).
        await asyncio.wait(drains, timeout=5)
    except BaseException:
        _signal_group(proc, signal.SIGKILL)
        raise
    finally:
        for task in drains:
            task.cancel()
