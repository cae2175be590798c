"""What made a snapshot: a backup, a restore's safety snapshot, or someone outside the
service (found in the repository by a refresh).

The service's own record decides first: the summary its backup or restore job wrote to
the snapshots table. The repository's tags alone prove nothing, since the owner holds the
repository password and can rewrite them; an unrecorded snapshot that carries the safety
tag is still treated as one, so that ``latest`` never picks it."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from app.snapshots.schemas import SnapshotKind

SAFETY_TAG = "safety:before-restore"

# ``service.kind_of`` in SQL, over the snapshots row ``s``: backup | safety | imported.
KIND_SQL = f"""CASE
    WHEN s.summary @> '{{"safety": true}}'::jsonb THEN 'safety'
    WHEN s.job_id IS NOT NULL AND jsonb_typeof(s.summary) = 'object'
         AND NOT s.summary @> '{{"imported": true}}'::jsonb THEN 'backup'
    WHEN s.tags @> ARRAY['{SAFETY_TAG}'] THEN 'safety'
    ELSE 'imported' END"""


def kind_of(summary: Any, tags: Sequence[str] | None, job_id: uuid.UUID | None) -> SnapshotKind:
    """backup | safety | imported, by the rule above; ``KIND_SQL`` is the same in SQL."""
    record = summary if isinstance(summary, dict) else None
    if record is not None and record.get("safety") is True:
        return "safety"
    if job_id is not None and record is not None and record.get("imported") is not True:
        return "backup"
    return "safety" if SAFETY_TAG in (tags or ()) else "imported"


def trigger_of(tags: Sequence[str] | None, job_id: uuid.UUID | None) -> str | None:
    """What started the job that made the snapshot, as that job tagged it; None for a
    snapshot no job of ours recorded (its tags prove nothing)."""
    if job_id is None:
        return None
    return next((t[8:] for t in tags or () if t.startswith("trigger:")), None)
