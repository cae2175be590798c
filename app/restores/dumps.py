"""Only a dump the service recorded is loaded without the owner's confirmation (see
``app.snapshots.dumps``); either way no client command in it runs (``dumps.guard``)."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path
from typing import Any

from app.engine.context import JobContext
from app.engine.errors import JobFailure
from app.models import Snapshot
from app.snapshots.dumps import UNRECORDED_HINT, made_by_service, recorded_dump


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


async def vet_dump(ctx: JobContext, snapshot: Snapshot, dump_file: Path) -> dict[str, Any]:
    """``{"recorded", "sha256"}`` of the dump about to be loaded; raises JobFailure
    ``dump_not_recorded`` for a dump the service did not record (or whose bytes differ
    from its record) unless the restore was asked with ``allow_unrecorded_dump``."""
    record = recorded_dump(snapshot.summary)
    digest = await asyncio.to_thread(_sha256, dump_file)
    if record is not None and digest == record["sha256"]:
        return {"recorded": True, "sha256": digest}
    if record is not None:
        why = "its bytes differ from the dump the backup recorded (SHA-256)"
    elif made_by_service(snapshot.summary):
        why = "the snapshot's record holds no SHA-256 of a dump (an older safety snapshot)"
    else:
        why = "podbackup did not make it (the snapshot was found by a refresh)"
    if ctx.job.params.allow_unrecorded_dump:
        await ctx.log(
            f"loading a database dump podbackup did not record ({why}), as confirmed by "
            "allow_unrecorded_dump",
            level="warning",
        )
        return {"recorded": False, "sha256": digest}
    raise JobFailure(
        "dump_not_recorded",
        f"the database dump of snapshot {snapshot.short_id} was not loaded: {why}",
        hint=UNRECORDED_HINT,
        retryable=False,
    )
