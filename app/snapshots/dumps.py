"""Whether the database dump in a snapshot is one the service recorded.

The owner holds the repository password (restore kit), so any snapshot in the bucket,
its tags and its `database/<name>.sql` may have been written by them. The service's own
record of a dump is the ``summary["database"]`` its backup job (or a restore's safety
backup) wrote to the snapshots table: file, SHA-256, tables. A refresh never writes one,
and nothing in the repository can; tags prove nothing. A dump that is not recorded, or
whose bytes differ from the recorded SHA-256, is loaded only on explicit confirmation
(``allow_unrecorded_dump``).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

UNRECORDED_HINT = (
    "podbackup did not make this snapshot's database dump (it was found in the repository "
    "by a refresh, or its bytes differ from the dump the backup recorded), so anyone with "
    "the repository password may have written it. Look at it first (GET "
    "…/snapshots/{id}/download?path=/database), then restore again with "
    '"allow_unrecorded_dump": true to load it, or restore the files only ("database": false)'
)


class DumpRecord(BaseModel):
    recorded: bool = Field(
        description="The service made this dump: its backup recorded the file and its "
        "SHA-256. `false` for snapshots found by a refresh (made outside the service): "
        "restoring their database needs `allow_unrecorded_dump: true`."
    )
    file: str | None = Field(None, description="The dump's path in the snapshot, if recorded")
    sha256: str | None = Field(None, description="The recorded SHA-256 of the dump")


def recorded_dump(summary: Any) -> dict[str, Any] | None:
    """The service's record of the snapshot's dump (``summary["database"]``), or None.
    (Not the job id: a record stays one if its job row is ever gone.)"""
    if not isinstance(summary, dict) or summary.get("imported") is True:
        return None
    database = summary.get("database")
    if not isinstance(database, dict):
        return None
    if not isinstance(database.get("sha256"), str) or not isinstance(database.get("file"), str):
        return None
    return database


def dump_record(summary: Any) -> DumpRecord:
    database = recorded_dump(summary)
    if database is None:
        return DumpRecord(recorded=False)
    return DumpRecord(recorded=True, file=database["file"], sha256=database["sha256"])


def made_by_service(summary: Any) -> bool:
    """A backup or safety snapshot the service recorded (it knows what its dump is, or
    that it has none), as opposed to one found by a refresh (no summary)."""
    return isinstance(summary, dict) and summary.get("imported") is not True
