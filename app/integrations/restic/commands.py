"""restic commands used by the service, for restic 0.14 (Debian 12) up to 0.18 (Debian 13)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from ipaddress import ip_network
from pathlib import Path
from typing import Any, TypeVar

from botocore.exceptions import BotoCoreError, ClientError

from app.integrations.egress import EgressProxy, EgressRefused, check_direct
from app.integrations.restic.errors import (
    ResticError,
    classify,
    missing_pack_retry,
    permanent_retry_error,
)
from app.integrations.restic.evidence import snapshot_in_storage
from app.integrations.restic.repository import Repository
from app.integrations.restic.version import ResticVersion, detect
from app.integrations.s3.errors import S3Failure
from app.integrations.s3.gateway import S3Gateway, needs_gateway
from app.kit import subprocess as sp
from app.kit.logging import redact
from app.kit.netpolicy import Policy

log = logging.getLogger(__name__)

JsonCallback = Callable[[dict[str, Any]], Awaitable[None] | None]
T = TypeVar("T")

# Without an egress policy restic reaches any address itself; so does the gateway for it.
_ANYWHERE = Policy(allow=(ip_network("0.0.0.0/0"), ip_network("::/0")))

UNLOCK_TIMEOUT = 120.0  # seconds for one `restic unlock` (it lists and reads the locks)

RETENTION_FLAGS = {
    "keep_last": "--keep-last",
    "keep_hourly": "--keep-hourly",
    "keep_daily": "--keep-daily",
    "keep_weekly": "--keep-weekly",
    "keep_monthly": "--keep-monthly",
    "keep_yearly": "--keep-yearly",
    "keep_within_days": "--keep-within",  # a duration: N days as "Nd"
}


@dataclass
class BackupOutcome:
    snapshot_id: str
    short_id: str
    summary: dict[str, Any]
    unreadable: list[dict[str, str]] = field(default_factory=list)
    snapshot: dict[str, Any] | None = None  # as `restic snapshots --json` lists it

    @property
    def partial(self) -> bool:
        return bool(self.unreadable)


@dataclass
class CheckOutcome:
    ok: bool
    output: list[str]
    errors: list[str]


class Restic:
    """One restic binary. ``stall_seconds``: give up on storage retries after this long.
    ``lock_wait_seconds``: how long a command that needs the repository alone (check,
    forget, prune) waits for other restic processes' locks to go (a restore or an index
    reading beside it) before it fails `repository_locked`."""

    def __init__(
        self,
        binary: str,
        version: ResticVersion,
        *,
        grace: float = 10.0,
        stall_seconds: float = 300.0,
        lock_wait_seconds: float = 180.0,
        egress: Policy | None = None,
    ) -> None:
        self.binary = binary
        self.version = version
        # restic's connections to S3 go through an egress proxy enforcing this policy.
        self.egress = egress
        self.grace = grace
        self.stall_seconds = stall_seconds
        self.lock_wait_seconds = lock_wait_seconds

    @classmethod
    async def detect(cls, binary: str, **kwargs: Any) -> Restic:
        return cls(binary, await detect(binary), **kwargs)

    # -- running -------------------------------------------------------------------------

    async def run(
        self,
        repo: Repository,
        args: Sequence[str],
        *,
        on_json: JsonCallback | None = None,
        on_line: Callable[[str], None] | None = None,
        cwd: Path | None = None,
        timeout: float | None = None,
        cancel: asyncio.Event | None = None,
        ok_codes: tuple[int, ...] = (0,),
        extra_env: Mapping[str, str] | None = None,
        source: Repository | None = None,
    ) -> sp.Completed:
        """Run one restic command; raise a classified ResticError unless its exit is ok.
        ``source``: the second repository of `copy` and `init --copy-chunker-params`
        (restic's ``--from-repo``; its location and password by environment)."""
        argv = [self.binary, *(() if repo.cache_dir else ("--no-cache",)), *args]
        stop = asyncio.Event()
        stalled = False
        permanent: ResticError | None = None
        retry_since: float | None = None

        async def _stdout(line: str) -> None:
            nonlocal retry_since
            if on_line is not None:
                on_line(line)
            if on_json is None or not line.startswith("{"):
                return
            try:
                message = json.loads(line)
            except ValueError:
                return
            if message.get("message_type") == "status":
                retry_since = None  # progress means storage answers again
            result = on_json(message)
            if result is not None:
                await result

        def _stderr(line: str) -> None:
            nonlocal retry_since, permanent
            if "retrying after" in line or "returned error, retrying" in line:
                retry_since = retry_since or time.monotonic()
                # restic 0.17+ also retries errors that no wait can heal (a local target
                # that is a file, a key the storage refuses): stop at the first one.
                problem = permanent_retry_error(line)
                if problem is not None and permanent is None:
                    permanent = problem
                    stop.set()

        async def _watch() -> None:
            nonlocal stalled
            while not stop.is_set():
                if cancel is not None and cancel.is_set():
                    stop.set()
                    return
                if retry_since and time.monotonic() - retry_since > self.stall_seconds:
                    stalled = True
                    stop.set()
                    return
                await asyncio.sleep(0.2)

        def _refused(message: str) -> None:
            nonlocal permanent
            permanent = permanent or ResticError("address_refused", message)
            stop.set()

        egress = contextlib.AsyncExitStack()
        try:
            source_env, direct = await egress.enter_async_context(
                self.source_env(repo, source, _refused)
            )
            proxy_env = await egress.enter_async_context(self.egress_env(repo, _refused, direct))
        except BaseException:
            await egress.aclose()
            raise
        watcher = asyncio.create_task(_watch())
        try:
            done = await sp.run(
                argv,
                env={**source_env, **repo.child_env(), **proxy_env, **(extra_env or {})},
                cwd=cwd,
                on_stdout=_stdout,
                on_stderr=_stderr,
                timeout=timeout,
                cancel=stop,
                grace=self.grace,
            )
        except sp.Cancelled as exc:
            if permanent is not None:
                raise permanent from exc
            if stalled:
                raise ResticError(
                    "storage_unreachable",
                    f"the storage kept failing for {int(self.stall_seconds)}s; gave up",
                ) from exc
            raise ResticError("interrupted", "canceled on request") from exc
        except sp.TimedOut as exc:
            raise ResticError("timeout", str(exc)) from exc
        finally:
            stop.set()
            watcher.cancel()
            await egress.aclose()
        if permanent is not None and done.returncode not in ok_codes:
            raise permanent
        if done.returncode not in ok_codes:
            raise classify(done.returncode, done.stderr_tail)
        return done

    @contextlib.asynccontextmanager
    async def source_env(
        self,
        repo: Repository,
        source: Repository | None,
        on_refused: Callable[[str], None] | None = None,
    ) -> AsyncIterator[tuple[dict[str, str], Repository | None]]:
        """The variables that name ``source`` (the other repository of a copy) to restic,
        and ``source`` again when restic reaches it itself (None otherwise).

        restic reads one set of AWS_* for both repositories: when the two S3 targets differ
        in key or region, restic keeps ``repo``'s and reads ``source`` through a re-signing
        gateway on 127.0.0.1 (``s3.gateway``), which signs with ``source``'s key and
        checks every connection with the outbound policy."""
        if source is None:
            yield {}, None
            return
        if source.s3 is None or not needs_gateway(repo.env, source.env):
            yield _source_env(source), source
            return
        policy = self.egress if self.egress is not None and not source.operator else _ANYWHERE
        async with S3Gateway(source.s3, source.s3_prefix, policy, on_refused=on_refused) as gw:
            yield (
                {
                    "RESTIC_FROM_REPOSITORY": gw.repository_url,
                    "RESTIC_FROM_PASSWORD": source.password,
                },
                None,
            )

    @contextlib.asynccontextmanager
    async def egress_env(
        self,
        repo: Repository,
        on_refused: Callable[[str], None] | None = None,
        source: Repository | None = None,
    ) -> AsyncIterator[dict[str, str]]:
        """The proxy variables for one restic process on ``repo`` (and ``source``, the
        other repository of a copy; none for local ones), its egress proxy serving while
        the block runs."""
        tenant = [
            r
            for r in (repo, source)
            if r is not None and not r.operator and r.url.startswith("s3:")
        ]
        if self.egress is None or not tenant:
            yield {}
            return
        try:
            for r in tenant:
                await check_direct(self.egress, r.url[len("s3:") :])
        except EgressRefused as exc:
            raise ResticError("address_refused", str(exc)) from None
        async with EgressProxy(self.egress, on_refused=on_refused) as proxy:
            yield proxy.env()

    async def exclusive(
        self,
        repo: Repository,
        attempt: Callable[[], Awaitable[T]],
        *,
        cancel: asyncio.Event | None = None,
    ) -> T:
        """Run ``attempt`` (one command that takes restic's exclusive lock) until no other
        restic process holds a lock, for up to ``lock_wait_seconds``.

        restic 0.14 fails at once when any lock is held (``--retry-lock`` came in 0.16), and
        readers (restores, exports, indexing, downloads) hold theirs only for their run.
        A process killed mid-run (a worker SIGKILLed, a machine lost) leaves its lock behind
        for good: before the command and after each refusal, locks that are provably stale
        by restic's own rules are removed (see ``unlock_stale``).

        Not ``--retry-lock`` on 0.16+: restic's own wait sleeps 5 s first (doubling to
        60 s), so a reader's lock of a second or two costs 5 s instead of 1, and it cannot
        remove a lock whose process dies while it waits.
        """
        deadline = time.monotonic() + self.lock_wait_seconds
        delay = 1.0
        await self.unlock_stale(repo, cancel=cancel)
        while True:
            try:
                return await attempt()
            except ResticError as exc:
                if exc.code != "repository_locked" or time.monotonic() + delay > deadline:
                    raise
                log.info("repository locked by another restic process; retrying in %.0fs", delay)
            if cancel is None:
                await asyncio.sleep(delay)
            else:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(cancel.wait(), timeout=delay)
                if cancel.is_set():
                    raise ResticError("interrupted", "canceled on request")
            # After the wait: a killed process's pid may take a moment to be reaped.
            await self.unlock_stale(repo, cancel=cancel)
            delay = min(delay * 2, 15.0)

    async def _json(self, repo: Repository, args: Sequence[str], **kw: Any) -> Any:
        lines: list[str] = []
        await self.run(repo, [*args, "--json"], on_line=lines.append, **kw)
        text = "\n".join(ln for ln in lines if ln.strip())
        try:
            return json.loads(text) if text else None
        except ValueError as exc:
            raise ResticError("failed", f"restic printed unreadable JSON for {args[0]}") from exc

    # -- repository ------------------------------------------------------------------------

    async def init(self, repo: Repository, source: Repository | None = None, **kw: Any) -> str:
        """Create the repository (compressed where supported); return its id.

        ``source``: ``repo`` is a second copy of it, with its chunker parameters
        (``--copy-chunker-params``), so files chunk alike and `restic copy` deduplicates.
        The same flags and environment from 0.14 on (0.14 renamed ``--repo2`` to
        ``--from-repo``; ``RESTIC_FROM_PASSWORD`` carries the source's password)."""
        args = ["init"]
        if source is not None:
            args.append("--copy-chunker-params")
            kw["source"] = source
        if self.version.compression:
            args += ["--repository-version", "2"]
        if self.version.init_json:
            # The full id in init's own answer: no second start (key derivation) to read it.
            lines: list[dict[str, Any]] = []
            await self.run(repo, [*args, "--json"], on_json=lines.append, **kw)
            ids = [m.get("id") for m in lines if m.get("message_type") == "initialized"]
            if len(ids) == 1 and isinstance(ids[0], str) and re.fullmatch(r"[0-9a-f]{64}", ids[0]):
                return ids[0]
        else:
            await self.run(repo, args, **kw)
        # 0.14's init prints only a 10-hex prefix of the id: read the whole id from the config.
        kw.pop("source", None)
        return await self.repository_id(repo, **kw)

    async def copy(self, repo: Repository, source: Repository, **kw: Any) -> list[str]:
        """`restic copy`: every snapshot of ``source`` not yet in ``repo`` is copied (restic
        skips those already there, recognised by their ``original``). Returns the lines
        restic printed (what it copied)."""
        lines: list[str] = []
        await self.run(repo, ["copy"], source=source, on_line=lines.append, **kw)
        return lines

    async def cat_config(self, repo: Repository, **kw: Any) -> dict[str, Any]:
        config = await self._json(repo, ["cat", "config"], **kw)
        if not isinstance(config, dict) or "id" not in config:
            raise ResticError("failed", "restic printed no repository config")
        return config

    async def repository_id(self, repo: Repository, **kw: Any) -> str:
        return str((await self.cat_config(repo, **kw))["id"])

    async def unlock(self, repo: Repository, **kw: Any) -> None:
        """Remove stale locks only (never `--remove-all`: a live process may hold one).

        restic's rule for stale: the lock is older than 30 minutes (a live process
        refreshes its lock every 5), or it was made on this host (the lock's hostname is
        the worker's) by a process that no longer exists."""
        await self.run(repo, ["unlock"], **kw)

    async def unlock_stale(self, repo: Repository, *, cancel: asyncio.Event | None = None) -> None:
        """``unlock`` before a command that a stale lock would refuse. A failure with a
        known cause (storage unreachable, key refused, no repository…) is the one that
        command would meet too: raised now, so it is not waited for twice. An unknown
        one is left for the command to report."""
        try:
            await self.unlock(repo, cancel=cancel, timeout=UNLOCK_TIMEOUT)
        except ResticError as exc:
            if exc.code != "failed":
                raise
            log.info("removing stale restic locks failed (%s); going on", exc.message)

    async def past_stale_locks(
        self,
        repo: Repository,
        attempt: Callable[[], Awaitable[T]],
        *,
        cancel: asyncio.Event | None = None,
    ) -> T:
        """Run ``attempt`` (a command taking a shared lock: backup, restore); refused by a
        lock, remove the stale ones and try once more. A process killed during a prune or
        check leaves an exclusive lock that would otherwise refuse every later backup."""
        try:
            return await attempt()
        except ResticError as exc:
            if exc.code != "repository_locked":
                raise
        await self.unlock_stale(repo, cancel=cancel)
        return await attempt()

    # -- snapshots -------------------------------------------------------------------------

    async def snapshots(
        self,
        repo: Repository,
        *,
        ids: Sequence[str] = (),
        host: str | None = None,
        tags: Sequence[str] = (),
        **kw: Any,
    ) -> list[dict[str, Any]]:
        args = ["snapshots"]
        if host:
            args += ["--host", host]
        for tag in tags:
            args += ["--tag", tag]
        result = await self._json(repo, [*args, *ids], **kw)
        return list(result or [])

    async def backup(
        self,
        repo: Repository,
        paths: Sequence[str],
        *,
        cwd: Path,
        host: str,
        tags: Sequence[str],
        parent: str | None = None,
        on_status: JsonCallback | None = None,
        mirrored: bool = True,
        policy: Policy | None = None,
        **kw: Any,
    ) -> BackupOutcome:
        """Back up ``paths`` (relative to ``cwd``, so the tree starts at them).

        Exit 3 (some files unreadable) still writes a snapshot: it comes back with
        ``unreadable`` listing the files, for the caller to report as partial.

        Evidence: the snapshot object is looked up in the storage (``policy`` given and the
        backend listable), else with `restic snapshots`. In the first case the snapshot's
        record is built from what we asked restic to do (time = when it started); the
        browse index later reads restic's own record and corrects it.
        """
        started = datetime.now(UTC)
        args = ["backup", "--json", "--host", host]
        for tag in tags:
            args += ["--tag", tag]
        if parent:
            args += ["--parent", parent]
        if mirrored:
            # A mirror re-created elsewhere keeps sizes and mtimes but not inodes/ctimes.
            args += ["--ignore-inode", "--ignore-ctime"]
        summary: dict[str, Any] = {}
        unreadable: list[dict[str, str]] = []

        async def _line(message: dict[str, Any]) -> None:
            kind = message.get("message_type")
            if kind == "summary":
                summary.update(message)
            elif kind == "error":
                err = message.get("error") or {}
                unreadable.append(
                    {
                        "path": str(message.get("item") or err.get("Path") or ""),
                        "during": str(message.get("during") or ""),
                        "error": _errno_text(err),
                    }
                )
            if on_status is not None:
                result = on_status(message)
                if result is not None:
                    await result

        await self.past_stale_locks(
            repo,
            lambda: self.run(
                repo, [*args, "--", *paths], on_json=_line, cwd=cwd, ok_codes=(0, 3), **kw
            ),
            cancel=kw.get("cancel"),
        )
        snap_id = str(summary.get("snapshot_id") or "")
        if not snap_id:
            raise ResticError("failed", "restic finished without naming a snapshot")
        full = await self._confirm(repo, snap_id, policy, kw.get("timeout"))
        if full is None:
            # Evidence from restic itself: the snapshot must be in the repository.
            found = await self.snapshots(repo, ids=[snap_id], timeout=kw.get("timeout"))
            if len(found) != 1:
                raise ResticError("failed", f"snapshot {snap_id} is not in the repository")
            full = found[0]
        else:
            full.update(
                # 0.17+ names the snapshot's own time (backup_start); 0.14 does not, and the
                # browse index corrects this from restic's record.
                time=str(summary.get("backup_start") or started.isoformat()),
                hostname=host,
                paths=[str(cwd / p) for p in paths],
                tags=list(tags),
                **({"parent": parent} if parent else {}),
            )
        return BackupOutcome(
            snapshot_id=full["id"],
            short_id=full.get("short_id") or full["id"][:8],
            summary={k: v for k, v in summary.items() if k != "message_type"},
            unreadable=unreadable,
            snapshot=full,
        )

    async def _confirm(
        self, repo: Repository, snap_id: str, policy: Policy | None, timeout: float | None
    ) -> dict[str, Any] | None:
        """``{"id", "short_id"}`` of the snapshot found in the storage; None when the
        storage cannot be listed here. Raises when the storage lacks it."""
        if policy is None:
            return None
        try:
            async with asyncio.timeout(timeout or 60):
                full_id = await snapshot_in_storage(repo, snap_id, policy)
        except (OSError, TimeoutError, S3Failure, BotoCoreError, ClientError) as exc:
            log.info("evidence from the storage failed (%s); asking restic", type(exc).__name__)
            return None
        if full_id is None:
            return None
        if not full_id:
            raise ResticError("failed", f"snapshot {snap_id} is not in the repository")
        return {"id": full_id, "short_id": full_id[:8]}

    # -- retention and maintenance ------------------------------------------------------

    def retention_args(self, policy: Mapping[str, int | None]) -> list[str]:
        args: list[str] = []
        for key, flag in RETENTION_FLAGS.items():
            value = policy.get(key)
            if value:
                args += [flag, f"{value}d" if key == "keep_within_days" else str(value)]
        if not args:
            raise ValueError("a retention policy needs at least one keep rule")
        return args

    async def forget(
        self,
        repo: Repository,
        policy: Mapping[str, int | None],
        *,
        host: str | None = None,
        tags: Sequence[str] = (),
        dry_run: bool = False,
        **kw: Any,
    ) -> list[dict[str, Any]]:
        args = ["forget", *self.retention_args(policy), "--group-by", "host"]
        if host:
            args += ["--host", host]
        for tag in tags:
            args += ["--tag", tag]
        if dry_run:
            args.append("--dry-run")
            result = await self._json(repo, args, **kw)
        else:
            result = await self.exclusive(
                repo, lambda: self._json(repo, args, **kw), cancel=kw.get("cancel")
            )
        return list(result or [])

    async def forget_ids(self, repo: Repository, ids: Sequence[str], **kw: Any) -> None:
        if ids:
            await self.exclusive(
                repo, lambda: self.run(repo, ["forget", *ids], **kw), cancel=kw.get("cancel")
            )

    async def prune(self, repo: Repository, **kw: Any) -> list[str]:
        lines: list[str] = []

        async def _once() -> None:
            lines.clear()
            await self.run(repo, ["prune"], on_line=lines.append, **kw)

        await self.exclusive(repo, _once, cancel=kw.get("cancel"))
        return lines

    async def check(
        self, repo: Repository, *, read_data_subset: str | None = None, **kw: Any
    ) -> CheckOutcome:
        args = ["check"]
        if read_data_subset:
            args.append(f"--read-data-subset={read_data_subset}")

        async def _once() -> CheckOutcome:
            lines: list[str] = []
            errors: list[str] = []
            done = await self.run(repo, args, on_line=lines.append, ok_codes=(0, 1), **kw)
            ok = done.returncode == 0
            if not ok:
                for line in done.stderr_tail.splitlines():
                    if line.strip() and not line.startswith(
                        ("using temporary cache", "created new cache")
                    ):
                        errors.append(line)
                problem = classify(done.returncode, done.stderr_tail)
                if problem.code in (
                    "wrong_password",
                    "storage_unreachable",
                    "repository_locked",
                    "repository_not_found",
                    "access_denied",
                ):
                    raise problem
            return CheckOutcome(ok=ok, output=lines, errors=errors)

        return await self.exclusive(repo, _once, cancel=kw.get("cancel"))

    async def stats(self, repo: Repository, mode: str = "raw-data", **kw: Any) -> dict[str, Any]:
        result = await self._json(repo, ["stats", "--mode", mode], **kw)
        return dict(result or {})

    # -- reading snapshots ---------------------------------------------------------------

    async def ls(
        self,
        repo: Repository,
        snapshot: str,
        on_node: JsonCallback,
        on_snapshot: Callable[[dict[str, Any]], None] | None = None,
        **kw: Any,
    ) -> None:
        """Stream every node of a snapshot (``struct_type == "node"``) to ``on_node``;
        restic's record of the snapshot itself (its first line) goes to ``on_snapshot``."""

        async def _line(message: dict[str, Any]) -> None:
            if message.get("struct_type") == "snapshot" and on_snapshot is not None:
                on_snapshot(message)
            elif message.get("struct_type") == "node":
                result = on_node(message)
                if result is not None:
                    await result

        await self.run(repo, ["ls", "--json", snapshot], on_json=_line, **kw)

    async def diff(
        self,
        repo: Repository,
        first: str,
        second: str,
        on_change: Callable[[str, str], Awaitable[None] | None],
        *,
        metadata: bool = False,
        **kw: Any,
    ) -> dict[str, Any]:
        """Stream what changed from snapshot ``first`` to ``second`` to ``on_change(path,
        modifier)`` (restic's ``change`` lines, 0.14 to 0.18): ``+`` added, ``-`` removed,
        ``M`` content changed, ``T`` type changed (may come with ``M`` or ``U``), ``U``
        metadata only (with ``metadata``). A directory's path ends with ``/``; a subtree
        whose tree id is unchanged is not read. Returns restic's statistics line."""
        stats: dict[str, Any] = {}

        async def _line(message: dict[str, Any]) -> None:
            kind = message.get("message_type")
            if kind == "change":
                path, modifier = message.get("path"), message.get("modifier")
                if isinstance(path, str) and isinstance(modifier, str):
                    result = on_change(path, modifier)
                    if result is not None:
                        await result
            elif kind == "statistics":
                stats.update(message)

        args = ["diff", "--json", *(["--metadata"] if metadata else []), first, second]
        await self.run(repo, args, on_json=_line, **kw)
        return stats

    async def restore(
        self,
        repo: Repository,
        snapshot: str,
        target: Path,
        *,
        include: Sequence[str] = (),
        on_status: JsonCallback | None = None,
        **kw: Any,
    ) -> dict[str, Any]:
        """Restore ``snapshot`` (or only the ``include`` paths, each taken literally: a
        file and, for a folder, everything below it) into ``target``."""
        args = ["restore", snapshot, "--target", str(target), "--json"]
        for path in include:
            args += ["--include", literal_pattern(path)]
        summary: dict[str, Any] = {}

        async def _line(message: dict[str, Any]) -> None:
            if message.get("message_type") == "summary":
                summary.update(message)
            if on_status is not None:
                result = on_status(message)
                if result is not None:
                    await result

        await self.past_stale_locks(
            repo, lambda: self.run(repo, args, on_json=_line, **kw), cancel=kw.get("cancel")
        )
        return summary

    @contextlib.asynccontextmanager
    async def dump_stream(
        self, repo: Repository, snapshot: str, path: str, *, archive: str | None = None
    ) -> AsyncIterator[asyncio.StreamReader]:
        """Yield restic dump's stdout (a file's bytes, or a tar of a folder), unbuffered."""
        args = ["dump", snapshot, path]
        if archive:
            args += ["--archive", archive]
        if not repo.cache_dir:
            args.insert(0, "--no-cache")
        refused: list[ResticError] = []
        running: list[asyncio.subprocess.Process] = []

        def _refused(message: str) -> None:  # the egress proxy refused: stop restic now
            refused.append(ResticError("address_refused", message))
            for child in running:
                if child.returncode is None:
                    child.kill()

        async with (
            self.egress_env(repo, _refused) as proxy_env,
            sp.stream([self.binary, *args], env={**repo.child_env(), **proxy_env}, grace=2) as proc,
        ):
            running.append(proc)
            assert proc.stdout is not None
            assert proc.stderr is not None
            tail: list[str] = []
            failed: list[ResticError] = []
            watcher = asyncio.create_task(_watch_dump_stderr(proc, tail, failed))
            try:
                yield proc.stdout
                if proc.stdout.at_eof():
                    # Read to the end: only restic's exit tells a whole stream from a cut one
                    # (a damaged pack ends the output early, exit 2).
                    await watcher
                    if (code := await proc.wait()) != 0:
                        failed[:0] = refused
                        raise failed[0] if failed else classify(code, "\n".join(tail)[-4000:])
            finally:
                watcher.cancel()
                # Ended before the stream's exit reads stderr to its end (one reader at a time).
                await asyncio.wait([watcher])


async def _watch_dump_stderr(
    proc: asyncio.subprocess.Process, tail: list[str], failed: list[ResticError]
) -> None:
    """Drain `restic dump`'s stderr (its last lines kept, redacted) and stop restic at the
    first retry no retry can heal (a pack gone, a key refused): it would retry it for
    minutes while the client of a download waits for its first byte."""
    assert proc.stderr is not None
    while True:
        try:
            raw = await proc.stderr.readline()
        except ValueError:  # an overlong line: skipped
            continue
        if not raw:
            return
        line = redact(raw.decode("utf-8", "replace").rstrip())
        tail.append(line)
        del tail[:-100]
        if not failed and (err := permanent_retry_error(line) or missing_pack_retry(line)):
            failed.append(err)
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGINT)  # restic removes its lock on SIGINT


_GLOB = re.compile(r"([\\*?\[\]])")


def _source_env(source: Repository) -> dict[str, str]:
    """The other repository of a copy, for restic's ``--from-repo``: location, password,
    and its storage's variables (restic reads one set of AWS_* for both repositories: the
    same key and region, or ``source`` is a local folder; otherwise ``Restic.source_env``
    takes the gateway)."""
    env = {**source.env, "RESTIC_FROM_REPOSITORY": source.url}
    env["RESTIC_FROM_PASSWORD"] = source.password
    return env


def literal_pattern(path: str) -> str:
    """A path as an --include pattern that matches only itself. restic matches each path
    component with Go's filepath.Match (0.14 to 0.18), where ``*``, ``?``, ``[``, ``]``
    and ``\\`` are special and a backslash escapes the next character; a component ``**``
    would also match any depth. Escaped, every component compares as plain text."""
    return _GLOB.sub(r"\\\1", path)


def _errno_text(err: Mapping[str, Any]) -> str:
    code = err.get("Err")
    names = {2: "no such file", 13: "permission denied", 5: "input/output error"}
    if isinstance(code, int):
        return names.get(code, f"errno {code}")
    return str(code or err.get("Op") or "unreadable")
