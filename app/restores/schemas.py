"""The shape of a restore preview (``job.result.preview`` of a ``dry_run`` restore), for
the OpenAPI document; the worker writes it as plain JSON (``preview.build``)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

EntryType = Literal["file", "dir", "link", "other"]
Reason = Literal["type", "size", "content", "mode", "mtime"]


class PreviewAdd(BaseModel):
    path: str = Field(description="`/files/<path in the pod's folder>`")
    type: EntryType
    size: int = Field(description="Bytes of the snapshot's file (0 for folders and links)")


class PreviewOverwrite(BaseModel):
    path: str
    type: EntryType = Field(description="The snapshot's kind of entry")
    reasons: list[Reason] = Field(
        description="How the pod's entry differs from the snapshot's: `type` (another kind), "
        "`size`, `content` (bytes compared exactly, or a link's text), `mode`, `mtime` (as "
        "the restore sets it: to the nanosecond in a local folder, whole seconds over SFTP). "
        "Folders are listed for `type` and `mode` only."
    )


class PreviewDelete(BaseModel):
    path: str
    type: EntryType


class PreviewPath(BaseModel):
    path: str = Field(description="`/files/<path in the pod's folder>`")


class PreviewCounts(BaseModel):
    add: int
    overwrite: int
    delete: int
    unchanged: int


class PreviewBytes(BaseModel):
    add: int = Field(description="Bytes of the files added")
    overwrite: int = Field(description="Bytes of the files whose content is written again")


class PreviewDatabase(BaseModel):
    dump_file: str = Field(description="The dump in the snapshot, e.g. `/database/wiki.sql`")
    target_database: str = Field(description="The pod's database the dump replaces")
    kind: str
    replaces: list[str] = Field(
        description="Tables the dump holds (from its manifest). The load replaces the whole "
        "database: what the dump lacks is dropped."
    )
    rows: dict[str, int] = Field(description="Rows per table in the dump")
    tables_total: int
    dump_complete: bool = Field(description="The dump ends with its completion footer")
    recorded: bool = Field(description="The service recorded this dump (see `DumpRecord`)")


class RestorePreview(BaseModel):
    """What a restore would change, without changing anything: `result.preview` of a restore
    job asked with `dry_run: true`. Lists hold at most 1,000 entries each (`truncated`
    says when one was cut); `counts` and `bytes` are exact. `delete` lists what mirror mode
    removes (and what lies below a folder a file or link replaces)."""

    model_config = {
        "json_schema_extra": {
            "examples": [
                {
                    "add": [
                        {"path": "/files/uploads/2024/logo.png", "type": "file", "size": 48213}
                    ],
                    "overwrite": [
                        {"path": "/files/config/app.yml", "type": "file", "reasons": ["content"]},
                        {"path": "/files/app/secret.key", "type": "file", "reasons": ["mode"]},
                    ],
                    "delete": [{"path": "/files/uploads/new.txt", "type": "file"}],
                    "unchanged": 1520,
                    "counts": {"add": 1, "overwrite": 2, "delete": 1, "unchanged": 1520},
                    "bytes": {"add": 48213, "overwrite": 311},
                    "truncated": False,
                    "database": {
                        "dump_file": "/database/wiki.sql",
                        "target_database": "wiki",
                        "kind": "postgres",
                        "replaces": ["public.pages", "public.users"],
                        "rows": {"public.pages": 1200, "public.users": 14},
                        "tables_total": 2,
                        "dump_complete": True,
                        "recorded": True,
                    },
                }
            ]
        }
    }

    add: list[PreviewAdd]
    overwrite: list[PreviewOverwrite]
    delete: list[PreviewDelete]
    unchanged: int = Field(description="Entries of the snapshot the pod already holds as is")
    counts: PreviewCounts
    bytes: PreviewBytes
    truncated: bool
    unreadable: list[PreviewPath] = Field(
        default_factory=list,
        description="Folders of the pod the restore removes whose contents could not be read: "
        "`counts.delete` leaves out what lies below them, and the restore would fail there",
    )
    database: PreviewDatabase | None = Field(
        description="What the database load would replace; null when the database is not restored"
    )
