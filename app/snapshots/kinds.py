"""What made a snapshot: a backup, a restore's safety snapshot, or someone outside the
service (found in the repository by a refresh).

The service's own record decides first: the summary its backup or restore job wrote to
the snapshots table. The repository's tags alone prove nothing, since the owner holds the
repository password and can rewrite them; an unrecorded snapshot that carries the safety
tag is still treated as one, so that ``latest`` never picks it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from app.snapshots.schemas import SnapshotKind

SAFETY_TAG = "safety:before-restore"

# ``kind_of`` in SQL, over the snapshots row ``s``: backup | safety | imported.
KIND_SQL = f"""CASE
    WHEN s.summary @> '{{"safety": true}}'::jsonb THEN 'safety'
    WHEN jsonb_typeof(s.summary) = 'object'
         AND NOT s.summary @> '{{"imported": true}}'::jsonb THEN 'backup'
    WHEN s.tags @> ARRAY['{SAFETY_TAG}'] THEN 'safety'
    ELSE 'imported' END"""


def recorded(summary: Any) -> bool:
    """Whether a job of ours recorded the snapshot: it wrote the summary (a refresh writes
    none). The summary alone decides, not the job id: a record stays one if its job row is
    ever gone (app.snapshots.dumps reads it the same way)."""
    return isinstance(summary, dict) and summary.get("imported") is not True


def kind_of(summary: Any, tags: Sequence[str] | None) -> SnapshotKind:
    """backup | safety | imported, by the rule above; ``KIND_SQL`` is the same in SQL."""
    if isinstance(summary, dict) and summary.get("safety") is True:
        return "safety"
    if recorded(summary):
        return "backup"
    return "safety" if SAFETY_TAG in (tags or ()) else "imported"


def trigger_of(summary: Any, tags: Sequence[str] | None) -> str | None:
    """What started the job that made the snapshot, as that job tagged it; None for a
    snapshot no job of ours recorded (its tags prove nothing)."""
    if not recorded(summary):
        return None
    return next((t[8:] for t in tags or () if t.startswith("trigger:")), None)
