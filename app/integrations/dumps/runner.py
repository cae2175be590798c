"""Shared plumbing: address check, cancel/timeout guard, progress polling."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Coroutine
from types import ModuleType
from typing import Any, TypeVar

from app.integrations.dumps import mysql, postgres
from app.integrations.dumps.errors import DumpError
from app.integrations.dumps.model import Conn, DbEndpoint, family
from app.kit import netpolicy

log = logging.getLogger(__name__)

T = TypeVar("T")
Progress = Callable[[int], None]
PROGRESS_INTERVAL = 0.5


def backend(kind: str) -> ModuleType:
    """The module implementing probe/run_dump/run_load/counts/... for ``kind``."""
    return postgres if family(kind) == "postgres" else mysql


async def resolve(policy: netpolicy.Policy, endpoint: DbEndpoint) -> Conn:
    """Check the host against the outbound-address policy; connect only to the result.

    A refused address raises netpolicy.OutboundAddressRefused (a 422-style AppError).
    """
    try:
        addrs = await netpolicy.check_before_connect(
            policy, endpoint.host, endpoint.port, field="database.host"
        )
    except netpolicy.HostUnresolvable as exc:
        raise DumpError(
            "unreachable",
            str(exc),
            hint="check the database host name; the name may not be live in DNS yet",
        ) from None
    return Conn(endpoint, str(addrs[0]))


async def guarded(
    work: Coroutine[Any, Any, T],
    *,
    cancel: asyncio.Event | None,
    timeout: float | None,
    what: str,
    secret: str | None,
) -> T:
    """Run ``work`` until it finishes, ``cancel`` is set or ``timeout`` passes.

    Stopping cancels the work's task: kit.subprocess then interrupts and kills the
    child's process group, and the work's own cleanup (partial files) runs before this
    returns. Every DumpError leaving here has ``secret`` masked.
    """
    task = asyncio.ensure_future(work)
    waiter = asyncio.ensure_future(cancel.wait()) if cancel is not None else None
    try:
        waitset: set[asyncio.Future[Any]] = {task}
        if waiter is not None:
            waitset.add(waiter)
        done, _ = await asyncio.wait(waitset, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        if task not in done:
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
            if cancel is not None and cancel.is_set():
                raise DumpError("canceled", f"the {what} was canceled")
            raise DumpError("timeout", f"the {what} exceeded its time limit of {timeout:g} s")
        return task.result()
    except DumpError as exc:
        raise exc.scrub(secret) from None
    except BaseException:
        # our caller was cancelled (worker shutdown): never leave the child running
        if not task.done():
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
        raise
    finally:
        if waiter is not None:
            waiter.cancel()


@contextlib.asynccontextmanager
async def polling(read: Callable[[], int], report: Progress | None) -> AsyncIterator[None]:
    """Call ``report(read())`` about twice a second while the body runs."""
    if report is None:
        yield
        return

    async def loop() -> None:
        last = -1
        while True:
            await asyncio.sleep(PROGRESS_INTERVAL)
            try:
                value = read()
                if value != last:
                    report(value)
                    last = value
            except Exception:  # a progress sink must never fail the dump
                log.warning("progress callback failed", exc_info=True)

    task = asyncio.create_task(loop())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
