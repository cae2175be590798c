"""What a target already holds: nothing, this pod's restic repository, another one, or
other files — judged the same way for buckets and local folders."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass

from app.integrations.restic import Repository, Restic, ResticError
from app.targets.repository import REPOSITORY_GONE_HINT

log = logging.getLogger(__name__)

PROBE_PREFIX = ".podbackup-verify/"
RESTIC_DIRS = ("keys/", "data/", "snapshots/", "index/", "locks/")

ONE_BUCKET = (
    "one bucket can only keep the backups of one pod: create a new, empty bucket for this "
    "pod (and a key limited to it), or empty this one if its data is no longer needed"
)


@dataclass(frozen=True)
class Finding:
    level: str  # ok | warning | error
    detail: str
    hint: str | None = None


def classify_keys(keys: Iterable[str]) -> tuple[str, list[str]]:
    """("empty" | "restic" | "restic_partial" | "other", the other keys) for top-level
    names of a target (a folder's entries end with '/')."""
    names = [k for k in keys if not k.startswith(PROBE_PREFIX)]
    if not names:
        return "empty", []
    restic_like = [k for k in names if k == "config" or k.startswith(RESTIC_DIRS)]
    others = [k for k in names if k not in restic_like]
    if "config" in names:
        return "restic", others
    if restic_like and not others:
        return "restic_partial", []
    return "other", others


async def judge(
    kind: str,
    others: list[str],
    *,
    where: str,
    restic: Restic | None,
    repo: Repository | None,
    recorded_id: str | None,
    timeout: float,
    recorded_snapshots: int = 0,
) -> Finding:
    """The contents check's result for what ``classify_keys`` found.

    A pod with a recorded repository needs that repository there: without its config the
    next backup fails `repository_mismatch` (it never starts a new repository silently),
    so an empty or other target is an error here too, with the same hint."""
    if recorded_id and kind != "restic":
        on_record = f" ({recorded_snapshots} snapshots on record)" if recorded_snapshots else ""
        now = {
            "empty": "it is empty",
            "restic_partial": "restic folders are left but no repository config",
        }.get(kind, "it holds other files")
        return Finding(
            "error",
            f"the repository {recorded_id[:8]} recorded for this pod{on_record} is gone from "
            f"{where}: {now}; every backup fails (repository_mismatch) until this is settled",
            REPOSITORY_GONE_HINT,
        )
    if kind == "empty":
        return Finding("ok", f"{where} is empty: ready for this pod's first backup")
    if kind == "restic_partial":
        return Finding(
            "warning",
            f"{where} holds restic folders but no repository config (a damaged or "
            "half-deleted repository?)",
            "empty it, or use a new bucket for this pod",
        )
    if kind == "other":
        sample = ", ".join(f"'{k}'" for k in others[:3])
        return Finding(
            "warning",
            f"{where} already holds other files ({sample}{', …' if len(others) > 3 else ''})",
            "restic adds its own folders beside them, but a bucket of its own for this pod "
            "keeps backups and other data apart",
        )
    return await _judge_repository(where, restic, repo, recorded_id, timeout)


async def _judge_repository(
    where: str,
    restic: Restic | None,
    repo: Repository | None,
    recorded_id: str | None,
    timeout: float,
) -> Finding:
    if repo is None:
        return Finding(
            "error",
            f"{where} holds a restic repository, and this pod has no repository password "
            "yet, so it cannot be this pod's",
            ONE_BUCKET,
        )
    if restic is None:
        return Finding(
            "warning",
            f"{where} holds a restic repository; restic is not available here to tell whose",
            "run the verification again once restic is installed on the API hosts",
        )
    try:
        found = await restic.repository_id(repo, timeout=max(timeout, 1.0))
    except ResticError as exc:
        if exc.code == "wrong_password":
            return Finding(
                "error",
                f"{where} holds a restic repository of another pod or an unknown owner "
                "(this pod's password does not open it)",
                ONE_BUCKET,
            )
        log.info("verify: restic could not read the repository config: %s", exc.code)
        return Finding(
            "warning",
            f"{where} holds a restic repository that could not be opened ({exc.code})",
            exc.hint,
        )
    if recorded_id and found != recorded_id:
        return Finding(
            "error",
            f"{where} holds repository {found[:8]}, not {recorded_id[:8]} recorded for this pod",
            ONE_BUCKET,
        )
    if recorded_id:
        return Finding("ok", f"{where} holds this pod's repository {found[:8]}: ready")
    return Finding(
        "ok",
        f"{where} holds a repository ({found[:8]}) this pod's password opens: it will be "
        "used (and its id recorded on the first backup)",
    )
