"""Example values of snapshot diffs and file version histories."""

from __future__ import annotations

from app.apidoc.examples import OLD_SNAPSHOT_ID, POD_ID, SNAPSHOT_ID, T0, T1, Json

_AFTER = {"id": SNAPSHOT_ID, "short_id": SNAPSHOT_ID[:8], "time": T1}
_BEFORE = {"id": OLD_SNAPSHOT_ID, "short_id": OLD_SNAPSHOT_ID[:8], "time": "2026-06-01T01:30:02Z"}
_NONE = {"files": 0, "bytes": 0, "entries": 0}

DIFF: Json = {
    "snapshot": _AFTER,
    "against": _BEFORE,
    "source": "index",
    "totals": {
        "added": {"files": 1, "bytes": 48213, "entries": 1},
        "removed": {"files": 1, "bytes": 912, "entries": 1},
        "modified": {"files": 2, "bytes": 1830412, "entries": 2},
        "metadata": {"files": 1, "bytes": 2201, "entries": 1},
        "type": _NONE,
    },
    "items": [
        {
            "path": "/database/wiki.sql",
            "change": "modified",
            "type": "file",
            "size_before": 1822004,
            "size_after": 1828211,
            "mtime_before": "2026-06-01T01:30:01Z",
            "mtime_after": "2026-06-02T01:30:02Z",
            "mode_before": 420,
            "mode_after": 420,
        },
        {
            "path": "/files/config/app.yml",
            "change": "metadata",
            "type": "file",
            "size_before": 2201,
            "size_after": 2201,
            "mtime_before": "2026-05-30T09:12:44Z",
            "mtime_after": "2026-05-30T09:12:44Z",
            "mode_before": 420,
            "mode_after": 384,
        },
        {
            "path": "/files/uploads/2024/06/logo.png",
            "change": "added",
            "type": "file",
            "size_before": None,
            "size_after": 48213,
            "mtime_before": None,
            "mtime_after": "2026-06-01T17:03:10Z",
            "mode_before": None,
            "mode_after": 420,
        },
    ],
    "total": 5,
    "limit": 3,
    "offset": 0,
    "pagination": {"total_count": 5, "max_page": 2},
    "database": [
        {
            "file": "/database/wiki.sql",
            "change": "modified",
            "size_before": 1822004,
            "size_after": 1828211,
            "sha256_before": "9f2c" + "0" * 60,
            "sha256_after": "5e1a" + "0" * 60,
            "tables": [
                {
                    "table": "public.pages",
                    "rows_before": 412,
                    "rows_after": 415,
                    "change": "changed",
                },
                {
                    "table": "public.users",
                    "rows_before": 12,
                    "rows_after": 12,
                    "change": "unchanged",
                },
            ],
        }
    ],
}

_PATH = "/files/config/app.yml"


def _version(snapshot: Json, first: Json, cid: str, size: int, count: int) -> Json:
    return {
        "content_id": cid,
        "exact": True,
        "type": "file",
        "size": size,
        "mtime": T0,
        "mode": 420,
        "first_snapshot": first,
        "last_snapshot": snapshot,
        "snapshots": count,
        "download": f"/v1/pods/{POD_ID}/snapshots/{snapshot['id']}/download?path={_PATH}",
        "restore": {"snapshot_id": snapshot["id"], "paths": [_PATH]},
    }


HISTORY: Json = {
    "path": _PATH,
    "versions": [
        _version(_AFTER, _AFTER, "6d0b1f4e9a2c7d3b8e5f1a0c4b7d2e9f", 2201, 1),
        _version(_BEFORE, _BEFORE, "c3a9e07d51b24f8a96d0e2b7f4c1a583", 2187, 14),
    ],
    "snapshots_scanned": 16,
    "snapshots_without_path": 1,
    "not_indexed": 0,
    "without_content_id": 0,
}
