"""Example values for the OpenAPI document: one pod ("wiki") of one account, followed
through settings, a backup, its snapshot, a restore and an export. Each is checked against
its operation's schema by ``tests/test_apidoc.py``."""

from __future__ import annotations

from typing import Any

Json = dict[str, Any]

ACCOUNT_ID = "5b0c1d52-3f4e-4a8b-9c2d-7e6f5a4b3c21"
POD_ID = "0f9e8d7c-6b5a-4f3e-8d2c-1b0a9f8e7d6c"
JOB_ID = "3c2b1a09-8f7e-4d6c-9b5a-4f3e2d1c0b9a"
TOKEN_ID = "9e8d7c6b-5a4f-4e3d-8c2b-1a0f9e8d7c6b"
WEBHOOK_ID = "2d3c4b5a-6f7e-4d8c-9b0a-1f2e3d4c5b6a"
DELIVERY_ID = "8b7a6f5e-4d3c-4b2a-9f1e-0d9c8b7a6f5e"
EXPORT_ID = "6e5d4c3b-2a1f-4e0d-9c8b-7a6f5e4d3c2b"
SNAPSHOT_ID = "4f1c9a2e7b3d5c6a8e9f0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e"
SHORT_ID = SNAPSHOT_ID[:8]
OLD_SNAPSHOT_ID = "a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90"
T0 = "2026-06-02T01:30:00Z"
T1 = "2026-06-02T01:30:04Z"
T2 = "2026-06-02T01:31:12Z"
CREATED = "2026-05-20T09:12:45Z"


def page(*items: Json) -> Json:
    return {"items": list(items), "pagination": {"total_count": len(items), "max_page": 1}}


ACCOUNT = {"id": ACCOUNT_ID, "name": "acme", "email": "ops@acme.example", "created_at": CREATED}

TOKEN = {
    "id": TOKEN_ID,
    "name": "control panel",
    "scope": "account",
    "account_id": ACCOUNT_ID,
    "prefix": "pb_8Kq2",
    "created_at": CREATED,
    "last_used_at": T0,
    "revoked_at": None,
}

POD_CREATE = {
    "name": "wiki",
    "app": "wikijs",
    "files": {
        "kind": "sftp",
        "host": "sftp.wiki.example.net",
        "port": 22,
        "username": "wiki",
        "password": "correct-horse-battery",
        "path": "/srv/wiki",
    },
    "database": {
        "kind": "postgres",
        "host": "db.wiki.example.net",
        "port": 5432,
        "name": "wiki",
        "username": "wiki",
        "password": "s3cret-db-pass",
    },
    "hooks": None,
}

POD = {
    "id": POD_ID,
    "account_id": ACCOUNT_ID,
    "name": "wiki",
    "app": "wikijs",
    "files": {
        "kind": "sftp",
        "host": "sftp.wiki.example.net",
        "port": 22,
        "username": "wiki",
        "password_set": True,
        "private_key_set": False,
        "host_key": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIG7cQ2n9xq4Bq0v1Qm3s0y6bKp8f1W2e3R4t5Y6u",
        "path": "/srv/wiki",
    },
    "database": {
        "kind": "postgres",
        "host": "db.wiki.example.net",
        "port": 5432,
        "name": "wiki",
        "username": "wiki",
        "password_set": True,
    },
    "hooks": None,
    "created_at": CREATED,
    "updated_at": CREATED,
}

SETTINGS_WRITE = {
    "target": {
        "kind": "s3",
        "endpoint": "s3.eu-central-003.backblazeb2.com",
        "bucket": "acme-wiki-backups",
        "access_key_id": "003a1b2c3d4e5f60000000001",
        "secret_access_key": "K003abcdefghijklmnopqrstuvwxyz0123",
    },
    "schedule": {
        "enabled": True,
        "window_start": "01:00",
        "window_end": "05:00",
        "timezone": "Europe/Berlin",
    },
    "retention": {"keep_last": 3, "keep_daily": 7, "keep_weekly": 4, "keep_monthly": 12},
}

REPOSITORY = "s3:https://s3.eu-central-003.backblazeb2.com/acme-wiki-backups"

SETTINGS = {
    "pod_id": POD_ID,
    "target": {
        "kind": "s3",
        "endpoint": "s3.eu-central-003.backblazeb2.com",
        "bucket": "acme-wiki-backups",
        "region": "eu-central-003",
        "access_key_id": "003a1b2c3d4e5f60000000001",
        "secret_access_key_set": True,
        "provider": "backblaze",
        "provider_name": "Backblaze B2",
        "path_style": False,
    },
    "schedule": SETTINGS_WRITE["schedule"],
    "retention": {
        "keep_last": 3,
        "keep_daily": 7,
        "keep_weekly": 4,
        "keep_monthly": 12,
        "keep_yearly": 0,
    },
    "prune": {"interval_days": 7},
    "verification": {"enabled": True, "interval_days": 7, "read_data_subsets": 28},
    "repository": REPOSITORY,
    "repository_id": "e3b1c0a9f8d7e6c5b4a39281706f5e4d3c2b1a09f8e7d6c5b4a3928170615243",
    "initialized_at": T0,
    "verified_at": CREATED,
    "verified_ok": True,
    "created_at": CREATED,
    "updated_at": CREATED,
}

VERIFY = {
    "ok": True,
    "saved": True,
    "repository": REPOSITORY,
    "verified_at": CREATED,
    "checks": [
        {"name": "address_policy", "ok": True, "level": "ok", "detail": "a public address"},
        {"name": "connect", "ok": True, "level": "ok", "detail": "TLS, answered in 84 ms"},
        {"name": "credentials", "ok": True, "level": "ok", "detail": "the key was accepted"},
        {"name": "write", "ok": True, "level": "ok", "detail": "a probe object was written"},
        {
            "name": "key_scope",
            "ok": True,
            "level": "warning",
            "detail": "the key can also list 2 other buckets",
            "hint": "limit the key to this one bucket (see GET /v1/providers)",
        },
        {"name": "contents", "ok": True, "level": "ok", "detail": "this pod's repository"},
        {
            "name": "object_lock",
            "ok": True,
            "level": "ok",
            "detail": "Object Lock is enabled: every object restic writes is locked for 30 "
            "day(s) (GOVERNANCE mode); …; retention keeps snapshots 30 day(s), so pruning "
            "never targets locked data",
        },
        {
            "name": "maintenance_key",
            "ok": True,
            "level": "ok",
            "detail": "the maintenance key deleted the probe: prune can run with it",
        },
        {"name": "pod_files", "ok": True, "level": "ok", "detail": "logged in, /srv/wiki"},
    ],
    "immutability": {
        "versioning": "enabled",
        "object_lock": {"status": "enabled", "mode": "GOVERNANCE", "days": 30},
        "lock_mode": True,
    },
}

PROGRESS = {
    "percent": 42.5,
    "bytes_done": 445644800,
    "bytes_total": 1048576000,
    "files_done": 1830,
    "files_total": 4310,
    "phase": "uploading",
    "seconds_remaining": 52.0,
}


def job(status: str = "queued", kind: str = "backup", **over: Any) -> Json:
    value: Json = {
        "id": JOB_ID,
        "pod_id": POD_ID,
        "plan": "owner",
        "kind": kind,
        "status": status,
        "trigger": "manual",
        "progress": {"phase": "queued"},
        "result": None,
        "error": None,
        "attempt": 1,
        "max_attempts": 3,
        "cancel_requested": False,
        "params": {},
        "created_at": T0,
        "started_at": None,
        "finished_at": None,
        "run_after": None,
    }
    return {**value, **over}


JOB_RUNNING = job("running", started_at=T1, progress=PROGRESS)
JOB_SUCCEEDED = job(
    "succeeded",
    started_at=T1,
    finished_at=T2,
    progress={**PROGRESS, "percent": 100.0, "phase": "done", "seconds_remaining": 0.0},
    result={
        "snapshot_id": SNAPSHOT_ID,
        "short_id": SHORT_ID,
        "repository_id": SETTINGS["repository_id"],
        "summary": {"files_new": 12, "files_changed": 3, "data_added": 5242880},
        "unreadable": [],
        "unreadable_count": 0,
    },
)
JOB_FAILED = job(
    "failed",
    started_at=T1,
    finished_at=T2,
    progress={"phase": "failed"},
    error={
        "code": "auth_failed",
        "message": "the SFTP server refused the login of 'wiki'",
        "hint": "check the SFTP username and password (or key) in the pod settings",
    },
)

SNAPSHOT = {
    "id": SNAPSHOT_ID,
    "short_id": SHORT_ID,
    "time": T1,
    "hostname": POD_ID,
    "paths": [f"/var/cache/podbackup/stage/{POD_ID}"],
    "tags": [f"pod:{POD_ID}", "app:wikijs", "trigger:manual", f"job:{JOB_ID}"],
    "summary": {"files_new": 12, "files_changed": 3, "data_added": 5242880},
    "job_id": JOB_ID,
    "plan": "owner",
    "kind": "backup",
    "trigger": "manual",
    "file_count": 4310,
    "index_status": "ready",
    "database_dump": {"recorded": True, "file": "database/wiki.sql", "sha256": "9f" * 32},
}

FILES = page(
    {
        "name": "logo.png",
        "path": "/files/uploads/2024/06/logo.png",
        "type": "file",
        "size": 48213,
        "mode": 420,
        "mtime": "2024-06-11T08:15:02Z",
    },
    {
        "name": "attachments",
        "path": "/files/uploads/2024/06/attachments",
        "type": "dir",
        "size": None,
        "mode": 493,
        "mtime": "2024-06-12T17:40:33Z",
    },
)

EXPORT = {
    "id": EXPORT_ID,
    "pod_id": POD_ID,
    "job_id": JOB_ID,
    "snapshot_id": SNAPSHOT_ID,
    "status": "ready",
    "size_bytes": 734003200,
    "sha256": "3a" * 32,
    "download_url": f"https://backup.example.net/v1/exports/{EXPORT_ID}/download"
    f"?expires=1780448400&signature={'5d' * 32}",
    "expires_at": "2026-06-03T01:40:00Z",
    "created_at": T0,
}

WEBHOOK = {
    "id": WEBHOOK_ID,
    "account_id": ACCOUNT_ID,
    "url": "https://hooks.acme.example/podbackup",
    "description": "backups to the ops channel",
    "events": ["job.failed", "backup.stale", "check.failed"],
    "active": True,
    "secret_set": True,
    "created_at": CREATED,
}
