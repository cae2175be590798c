"""Example values of the read-only views (status, statistics, retention preview, restore
kit, providers, audit, webhook deliveries, the fleet) and of the job event stream."""

from __future__ import annotations

from app.apidoc.examples import (
    ACCOUNT_ID,
    CREATED,
    DELIVERY_ID,
    JOB_FAILED,
    JOB_ID,
    OLD_SNAPSHOT_ID,
    POD_ID,
    REPOSITORY,
    SNAPSHOT_ID,
    T1,
    T2,
    TOKEN_ID,
    WEBHOOK_ID,
    Json,
    page,
)

EVENT_STREAM = "\n".join(
    [
        "event: state",
        'data: {"id": "' + JOB_ID + '", "status": "running", "kind": "backup", "…": "…"}',
        "",
        "id: 4812",
        "event: progress",
        'data: {"percent": 42.5, "bytes_done": 445644800, "bytes_total": 1048576000, '
        '"phase": "uploading", "at": "2026-06-02T01:30:40Z"}',
        "",
        "id: 4813",
        "event: log",
        'data: {"level": "info", "message": "snapshot 4f1c9a2e saved", '
        '"at": "2026-06-02T01:31:11Z"}',
        "",
        "id: 4814",
        "event: state",
        'data: {"status": "succeeded", "final": true, "error": null, "result": {"short_id": '
        '"4f1c9a2e"}, "at": "2026-06-02T01:31:12Z"}',
        "",
        "event: state",
        'data: {"id": "' + JOB_ID + '", "status": "succeeded", "…": "…"}',
        "",
        "event: end",
        'data: {"status": "succeeded"}',
        "",
    ]
)

_KIT_ENV = {
    "RESTIC_REPOSITORY": REPOSITORY,
    "RESTIC_PASSWORD": "q7Vt2mZ9xR4pL8sK1wN6bH3cJ5fD0gYa",
    "AWS_ACCESS_KEY_ID": "003a1b2c3d4e5f60000000001",
    "AWS_SECRET_ACCESS_KEY": "<your secret access key>",
    "AWS_DEFAULT_REGION": "eu-central-003",
}
RESTORE_KIT = {
    "pod_id": POD_ID,
    "repository": REPOSITORY,
    "password": _KIT_ENV["RESTIC_PASSWORD"],
    "env": _KIT_ENV,
    "env_block": "\n".join(f"export {k}='{v}'" for k, v in _KIT_ENV.items()),
    "commands": [
        {"title": "List the snapshots", "command": "restic snapshots"},
        {"title": "Restore the latest one", "command": "restic restore latest --target ./restore"},
    ],
    "notes": ["The snapshot holds files/… and database/<name>.sql at its top."],
}

STATUS = {
    "pod_id": POD_ID,
    "plan": "owner",
    "configured": True,
    "schedule_enabled": True,
    "last_backup": {"at": T2, "status": "succeeded", "job_id": JOB_ID},
    "last_success_at": T2,
    "last_snapshot_id": SNAPSHOT_ID,
    "last_snapshot_kind": "backup",
    "next_run_at": "2026-06-03T01:12:00Z",
    "snapshot_count": 23,
    "repository_size_bytes": 2147483648,
    "repository_size_at": T2,
    "last_verification": {"at": CREATED, "ok": True},
    "active_job": None,
}

STATS = {
    "pod_id": POD_ID,
    "plan": "owner",
    "provider": "backblaze",
    "snapshot_count": 23,
    "repository_size_bytes": 2147483648,
    "repository_size_at": T2,
    "samples": [
        {"at": "2026-05-03T01:31:00Z", "size_bytes": 1932735283},
        {"at": T2, "size_bytes": 2147483648},
    ],
    "growth_30d": {
        "bytes": 214748365,
        "bytes_per_day": 7158278.8,
        "days": 30.0,
        "since": "2026-05-03T01:31:00Z",
        "until": T2,
    },
    "cost_estimate": {
        "provider": "backblaze",
        "provider_name": "Backblaze B2",
        "usd_per_tb_month": 6.0,
        "monthly_usd": 0.01,
        "free_bytes": 10000000000,
        "note": "list price; the first 10 GB are free",
    },
}


def _planned(snapshot_id: str, time: str, reasons: list[str]) -> Json:
    return {
        "id": snapshot_id,
        "short_id": snapshot_id[:8],
        "time": time,
        "hostname": POD_ID,
        "tags": [f"pod:{POD_ID}", "trigger:schedule"],
        "status": "succeeded",
        "kind": "backup",
        "reasons": reasons,
    }


PINNED_SNAPSHOT_ID = "5b2c" * 16

PREVIEW = {
    "pod_id": POD_ID,
    "policy": {"keep_last": 3, "keep_daily": 7},
    "scope": {"host": POD_ID, "tag": f"pod:{POD_ID}", "note": "only this pod's snapshots"},
    "keep": [
        _planned(SNAPSHOT_ID, T1, ["last snapshot", "daily snapshot"]),
        _planned(
            PINNED_SNAPSHOT_ID,
            "2026-04-02T01:30:00Z",
            ["pinned until unpinned: before update to 2.4.1"],
        ),
    ],
    "remove": [_planned(OLD_SNAPSHOT_ID, "2026-05-01T01:30:00Z", [])],
    "untouched": [],
    "protected_snapshot_id": SNAPSHOT_ID,
    "kept_because_pinned": [
        {
            "id": PINNED_SNAPSHOT_ID,
            "short_id": PINNED_SNAPSHOT_ID[:8],
            "time": "2026-04-02T01:30:00Z",
            "note": "before update to 2.4.1",
            "until": None,
        }
    ],
    "notes": [],
}

PROVIDERS = {
    "one_bucket_per_pod": "Give every pod a bucket of its own and a key limited to it.",
    "key_advice": "Create an application key that can only read and write this bucket.",
    "items": [
        {
            "id": "backblaze",
            "name": "Backblaze B2",
            "endpoint_pattern": "s3.<region>.backblazeb2.com",
            "example_endpoints": ["s3.eu-central-003.backblazeb2.com"],
            "region_from_endpoint": True,
            "path_style": False,
            "bucket_rules": "6-63 characters: letters, digits and hyphens; unique in B2",
            "where_to_find": "B2 Cloud Storage → Buckets: the bucket's Endpoint",
            "key_setup": {
                "steps": [
                    "Application Keys → Add a New Application Key",
                    "Allow access to: the one bucket; Type of access: Read and Write",
                ],
                "iam_policy": None,
                "iam_policy_text": None,
            },
            "notes": [],
        }
    ],
}

AUDIT = page(
    {
        "id": 8812,
        "at": CREATED,
        "actor": "account",
        "token_id": TOKEN_ID,
        "account_id": ACCOUNT_ID,
        "pod_id": POD_ID,
        "action": "restore_kit.read",
        "client": "203.0.113.7",
        "detail": {"repository": REPOSITORY},
    }
)

DELIVERY = {
    "id": DELIVERY_ID,
    "webhook_id": WEBHOOK_ID,
    "event": "job.failed",
    "status": "delivered",
    "attempts": 1,
    "payload": {"job_id": JOB_ID, "pod_id": POD_ID, "error": JOB_FAILED["error"]},
    "last_status_code": 200,
    "last_error": None,
    "next_attempt_at": None,
    "delivered_at": T2,
    "created_at": T2,
    "attempt_log": [{"at": T2, "status_code": 200, "duration_ms": 87, "error": None}],
}

FLEET = page(
    {
        "pod_id": POD_ID,
        "account_id": ACCOUNT_ID,
        "name": "wiki",
        "app": "wikijs",
        "last_status": "failed",
        "last_attempt_at": T2,
        "last_success_at": "2026-05-30T02:10:00Z",
        "next_run_at": "2026-06-03T02:00:00Z",
        "snapshot_count": 14,
    }
)
