"""Verify a local (operator) target: the folder is allowed and writable, and what it holds."""

from __future__ import annotations

import asyncio
import logging
import os
import uuid
from pathlib import Path

from app.config import Settings
from app.integrations.restic import Restic
from app.kit.validators import under_roots
from app.models.shapes import LocalPlace
from app.targets import contents
from app.targets.checks import Checks, OutOfTime, VerifyInput
from app.targets.repository import make_repository
from app.targets.schemas import VerifyCheck

log = logging.getLogger(__name__)

LOCAL_CHECKS = ("path", "contents")


def _writable(path: Path) -> str | None:
    """None when a probe file can be written, read and removed under ``path`` (or its
    nearest existing parent, since restic creates the folder); otherwise why not."""
    base = path
    while not base.exists():
        if base.parent == base:
            return "no part of the path exists"
        base = base.parent
    if not base.is_dir():
        return f"'{base}' is not a folder"
    probe = base / f".podbackup-verify-{uuid.uuid4().hex}"
    try:
        probe.write_bytes(b"probe")
        ok = probe.read_bytes() == b"probe"
        probe.unlink()
    except OSError as exc:
        return f"cannot write in '{base}': {exc.strerror}"
    return None if ok else f"'{base}' does not read back what was written"


def _entries(path: Path) -> list[str]:
    if not path.is_dir():
        return []
    return sorted(p.name + ("/" if p.is_dir() else "") for p in path.iterdir())


async def verify_local(
    settings: Settings, inp: VerifyInput, restic: Restic | None
) -> tuple[bool, list[VerifyCheck]]:
    checks = Checks(LOCAL_CHECKS, settings.verify_budget_seconds)
    target = inp.resolved.target
    assert isinstance(target, LocalPlace), "S3 targets are verified by verify"
    path = Path(target.path)
    try:
        checks.current = "path"
        if not under_roots(str(path), settings.local_roots):
            checks.fail(
                "path",
                f"'{path}' is not under an allowed local root",
                "allowed roots: " + (", ".join(map(str, settings.local_roots)) or "none"),
            )
            checks.stop("not run: the path is not allowed")
            return checks.ok_overall, checks.result()
        problem = await checks.within(asyncio.to_thread(_writable, path))
        if problem:
            checks.fail("path", problem, "create the folder and make it writable for the workers")
            checks.stop("not run: the folder is not usable")
            return checks.ok_overall, checks.result()
        exists = "exists" if path.exists() else "will be created by the first backup"
        checks.ok("path", f"'{path}' {exists} and is writable (uid {os.getuid()})")
        checks.current = "contents"
        names = await checks.within(asyncio.to_thread(_entries, path))
        kind, others = contents.classify_keys(names)
        repo = None
        if inp.password is not None:
            repo = make_repository(inp.resolved, inp.password, inp.cache_dir)
        finding = await checks.within(
            contents.judge(
                kind,
                others,
                where=f"folder '{path}'",
                restic=restic,
                repo=repo,
                recorded_id=inp.recorded_id,
                recorded_snapshots=inp.recorded_snapshots,
                timeout=checks.left(),
            )
        )
        checks.record("contents", finding.level, finding.detail, finding.hint)
    except OutOfTime:
        checks.out_of_time()
    except Exception:
        log.exception("verify: unexpected failure during the %s check", checks.current)
        checks.crashed()
    return checks.ok_overall, checks.result()
