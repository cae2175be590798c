"""What starts and follows jobs: backups, jobs, status, snapshots, restores, exports,
retention, checks."""

from __future__ import annotations

from app.apidoc import examples as ex
from app.apidoc import examples_history as history
from app.apidoc import examples_views as views
from app.apidoc.causes import STORAGE_DOWN, Cause
from app.apidoc.op import (
    ACCOUNT_SHARE,
    ANY,
    JOB_NEXT,
    POD_BUSY,
    SLOTS_FULL,
    Op,
    error_cause,
    no_settings,
)

PIN = {
    "note": "before the big import",
    "until": "2026-09-01T02:00:00Z",
    "at": ex.T2,
    "by": "account",
}
PINNED_SNAPSHOT = {**ex.SNAPSHOT, "pinned": True, "pin": PIN}

BEFORE_UPDATE_FAILED = Cause(
    409,
    "backup_failed",
    "The backup before the update failed: refuse the update",
    "The backup job failed, was canceled or is `partial`: `code` is its error code (or "
    "`partial`), `job` the job. Nothing was pinned.",
    {
        "error": "BackupBeforeUpdateFailed",
        "detail": "the backup before the update failed (auth_failed): the SFTP server refused "
        "the login of 'wiki'",
        "hint": "check the SFTP username and password (or key) in the pod settings; do not "
        "update the app until a backup before the update has succeeded",
        "code": "auth_failed",
        "job": {**ex.JOB_FAILED, "trigger": "before-update"},
    },
)

JOB_OPERATIONS: dict[str, Op] = {
    # -- backups and jobs ----------------------------------------------------------------------
    "POST /v1/pods/{pod_id}/backups": Op(
        f"Back up the pod now: a `backup` job (files, a fresh database dump, `restic "
        f"backup`, evidence of the snapshot). {ANY} A backup already queued or running is "
        "returned instead of a second one; another job changing the pod answers 409 "
        f"`PodBusy`. 409 `NotConfigured` without backup settings. {JOB_NEXT}",
        request={"trigger": "api"},
        response=ex.job(),
        causes=(POD_BUSY, no_settings("verify it and back up")),
    ),
    "POST /v1/pods/{pod_id}/before-update": Op(
        f"Back up the pod before its app is updated or migrated, and answer only when the "
        f"snapshot exists: a `backup` job (trigger `before-update`) tagged `before-update` "
        f"and `app-version=<app_version>`, waited for in the request (up to "
        f"`timeout_seconds`). A backup or other job already holding the pod is waited for "
        f"first, then this one starts (an earlier backup is not mistaken for it). {ANY}\n\n"
        "- **201**: the snapshot (pinned for `pin_days`, note `before update to <v>`), the "
        "job, and `rollback`: the one `POST /v1/pods/{pod_id}/restores` call (files and "
        "database, `mode: mirror`, a safety backup first) that puts the pod back.\n"
        "- **409 `BackupBeforeUpdateFailed`**: the backup failed or is `partial`; `code` is "
        "the job's error code (or `partial`), `job` the job: **refuse the update**. Nothing "
        "is pinned.\n"
        "- **409 `PodBusy`**: another job still held the pod at the timeout; nothing started.\n"
        "- **202**: still running at the timeout; it goes on and pins its snapshot when it "
        "succeeds: poll `GET /v1/jobs/{job_id}` and do not update before it has succeeded.",
        request={"app_version": "2.4.1", "note": "to 2.5.0", "pin_days": 30},
        response={
            "snapshot": {
                **PINNED_SNAPSHOT,
                "tags": [
                    f"pod:{ex.POD_ID}",
                    "app:wikijs",
                    "trigger:before-update",
                    "before-update",
                    "app-version=2.4.1",
                ],
                "trigger": "before-update",
                "pin": {**PIN, "note": "before update to 2.4.1: to 2.5.0", "by": "before-update"},
            },
            "job": {**ex.JOB_SUCCEEDED, "trigger": "before-update"},
            "rollback": {
                "method": "POST",
                "path": f"/v1/pods/{ex.POD_ID}/restores",
                "body": {
                    "snapshot_id": ex.SNAPSHOT_ID,
                    "files": True,
                    "database": True,
                    "mode": "mirror",
                    "safety_backup": True,
                },
            },
        },
        causes=(BEFORE_UPDATE_FAILED, POD_BUSY, no_settings("verify it and back up")),
    ),
    "GET /v1/pods/{pod_id}/jobs": Op(
        f"The pod's jobs, newest first; filter by `kind` and `status`. {ANY}",
        response=ex.page(ex.JOB_SUCCEEDED, ex.JOB_FAILED),
    ),
    "GET /v1/jobs": Op(
        f"Jobs of every pod this token sees, newest first; filter by `kind` and `status`. {ANY}",
        response=ex.page(ex.JOB_RUNNING),
    ),
    "GET /v1/jobs/{job_id}": Op(
        f"One job: `status`, `progress` (percent, bytes, files, phase, seconds remaining), "
        f"`result` when done (a backup's snapshot id and summary, the files it could not "
        f"read for `partial`), `error` `{{code, message, hint}}` when failed (`code`: see "
        f"`JobErrorCode`), `attempt`/`max_attempts` and `run_after` for a retry. {ANY} "
        "Served from PostgreSQL (cached until the row changes): poll it freely.",
        response=ex.JOB_SUCCEEDED,
    ),
    "POST /v1/jobs/{job_id}/cancel": Op(
        f"Cancel a job: a queued one ends `canceled` at once; a running one gets "
        f"`cancel_requested` and its worker stops restic and ends it `canceled` within "
        f"seconds (the pod's start hook still runs). {ANY} 409 `JobAlreadyFinished` once it "
        "has finished.",
        response=ex.job(
            "canceled",
            finished_at=ex.T1,
            error={"code": "canceled", "message": "canceled before it started", "hint": None},
        ),
    ),
    "GET /v1/jobs/{job_id}/events": Op(
        f"A Server-Sent Events stream of the job. {ANY}\n\n"
        "| event | data | when |\n|---|---|---|\n"
        "| `state` | `JobRead` | first, the job as it is; last, the job as it ended |\n"
        "| `state` | `JobStateChange` | each transition (queued, running, retry, final) |\n"
        "| `progress` | `JobProgressEvent` | while running, about once a second |\n"
        "| `log` | `JobLogEvent` | a line of the job's log |\n"
        "| `end` | `JobEndEvent` | the last event; the server closes the stream |\n"
        "| `error` | `ErrorBody` | the token was revoked or the job deleted: the stream ends |\n"
        "\nRecorded events carry `id:`; reconnect with `Last-Event-ID` to resume after it "
        "(`Last-Event-ID: 0` replays the whole history). A comment line (`: keep-alive`) "
        "comes every 15 s of silence. A finished job answers its state and `end` at once.",
        response=views.EVENT_STREAM,
    ),
    # -- status and statistics -----------------------------------------------------------------
    "GET /v1/pods/{pod_id}/status": Op(
        f"The pod's backup overview from PostgreSQL: last backup and last success, next "
        f"scheduled run, snapshot count, repository size and growth, last verification, the "
        f"active job. {ANY} Admins pass `plan=platform` for the operator's plan.",
        response=views.STATUS,
    ),
    "GET /v1/pods/{pod_id}/stats": Op(
        f"Repository size samples over `days`, growth over the last 30 days and a monthly "
        f"cost estimate at the provider's list price. {ANY}",
        response=views.STATS,
    ),
    # -- snapshots -----------------------------------------------------------------------------
    "GET /v1/pods/{pod_id}/snapshots": Op(
        f"The pod's snapshots, newest first, from PostgreSQL (restic is not asked); filter "
        f"by `tag` and `kind` (`backup`, `safety` taken before a restore, `imported` by a "
        f"refresh). {ANY} **Next**: browse one with `…/snapshots/{{snapshot_id}}/files`.",
        response=ex.page(ex.SNAPSHOT),
    ),
    "POST /v1/pods/{pod_id}/snapshots/refresh": Op(
        f"Re-read the repository in a `refresh` job: snapshots made outside the service are "
        f"added (`imported`), forgotten ones dropped. {ANY} {JOB_NEXT}",
        response=ex.job(kind="refresh", trigger="api"),
    ),
    "GET /v1/pods/{pod_id}/snapshots/{snapshot_id}": Op(
        f"One snapshot by its 64-hex id, its 8-hex short id, or `latest` (the newest backup, "
        f"never a safety snapshot): time, tags, summary, the recorded database dump and its "
        f"browse index status. {ANY}",
        response=ex.SNAPSHOT,
    ),
    "PUT /v1/pods/{pod_id}/snapshots/{snapshot_id}/pin": Op(
        f"Pin a snapshot (full or short id, or `latest`): retention keeps it, whatever the "
        f"policy says, for `days` from now or until unpinned (no `days`), with an optional "
        f"plain-text `note`. Pinning again replaces the pin. The retention preview lists "
        f"what it keeps only because of a pin (`kept_because_pinned`). {ANY} Audited. "
        "Admins pass `plan=platform` for the operator's plan.",
        request={"note": "before the big import", "days": 90},
        response=PINNED_SNAPSHOT,
    ),
    "DELETE /v1/pods/{pod_id}/snapshots/{snapshot_id}/pin": Op(
        f"Unpin a snapshot: retention treats it like any other again (the next prune may "
        f"forget it). {ANY} Audited.",
        response={**ex.SNAPSHOT, "pinned": False, "pin": None},
    ),
    "GET /v1/pods/{pod_id}/snapshots/{snapshot_id}/files": Op(
        f"The children of a folder (`path`, `/` by default: `files/` and `database/`) from the "
        f"snapshot's browse index, paginated. {ANY} 409 `SnapshotNotIndexed` while the index "
        "is built (retry shortly). **Next**: download a file or folder with `…/download`.",
        response=ex.FILES,
    ),
    "GET /v1/pods/{pod_id}/snapshots/{snapshot_id}/download": Op(
        f"Stream a file as it is, or a folder as a tar archive, read from the repository by "
        f"restic. {ANY} Errors before the first byte keep the error envelope: 409 "
        "`RepositoryUnreadable` (password, missing repository, damage: the restic code is in "
        "`detail`), 502 `BadGateway`, 503 when the storage does not answer. A client that "
        "stops reading for PODBACKUP_DOWNLOAD_IDLE_SECONDS is cut off.",
        response="(the file's bytes, or a tar archive of the folder)",
        causes=(SLOTS_FULL, ACCOUNT_SHARE, STORAGE_DOWN),
    ),
    "GET /v1/pods/{pod_id}/snapshots/{snapshot_id}/diff": Op(
        f"What changed from snapshot `against` (default: this snapshot's parent, else the "
        f"one before it; 409 `NoEarlierSnapshot` for the first) to this one: entries "
        f"`added`, `removed`, `modified` (content), `metadata` (mode or mtime only) or of "
        f"another `type`, by path, paginated and filtered by `change`; totals per change; "
        f"the database dump's change with its tables' row counts as the backups recorded "
        f"them. Folders show only when added, removed or of another type. {ANY} "
        f"`source: index` when both snapshots are indexed with content ids (milliseconds: "
        f"SQL); else `restic diff` runs here (a download slot, "
        f"PODBACKUP_DIFF_TIMEOUT_SECONDS) and indexing is requested. From the index, a "
        f"file changed and changed back between two distant snapshots shows as modified; "
        f"`source=restic` compares content exactly for any pair. **Next**: "
        f"`…/download?path=` a file, `POST …/restores` with `paths` to put it back.",
        response=history.DIFF,
        causes=(
            SLOTS_FULL,
            ACCOUNT_SHARE,
            STORAGE_DOWN,
            error_cause(
                409,
                "no_earlier",
                "The snapshot is the pod's first and no `against` was given.",
                "NoEarlierSnapshot",
                "snapshot 4f1c9a2e is the pod's first: there is nothing before it",
                "compare it with a later snapshot: …/snapshots/{later}/diff?against=4f1c9a2e",
            ),
            error_cause(
                409,
                "diff_not_indexed",
                "`source=index` while a snapshot is not indexed with content ids.",
                "DiffNotIndexed",
                "snapshots 4f1c9a2e and a1b2c3d4 are not both indexed with content ids",
                "use source=restic (or auto), or retry once both are indexed",
            ),
        ),
    ),
    "GET /v1/pods/{pod_id}/files/history": Op(
        f"Every version of one `path` (e.g. `/files/uploads/logo.png`) across the pod's "
        f"snapshots, newest first, from the browse index (one SQL query): the first and "
        f"last snapshot that hold it, size, mtime, content id, a download link and the "
        f"restore body that puts it back. Consecutive snapshots with the same content id "
        f"are one version; a deleted and recreated file is a new one. Rows indexed before "
        f"content ids existed are grouped by size and mtime (`exact: false`). Snapshots "
        f"whose index is not ready are counted in `not_indexed`, never skipped silently. "
        f"{ANY} 404 when no indexed snapshot holds the path.",
        response=history.HISTORY,
    ),
    # -- restores, exports, retention, checks --------------------------------------------------
    "POST /v1/pods/{pod_id}/restores": Op(
        f"Restore a snapshot in a `restore` job: everything, chosen `paths` below `files/`, "
        f"or the database only (`files: false`); into the pod or `target_pod_id` (another "
        f"pod of the account). A safety backup of the pod as it is comes first "
        f"(`safety_backup`), so a restore can be undone. `mode: mirror` also deletes files "
        f"the snapshot lacks. A dump the service did not record is refused "
        f"(`dump_not_recorded`) unless `allow_unrecorded_dump`. The safety snapshot is pinned "
        f"for PODBACKUP_RESTORE_UNDO_DAYS: `POST /v1/restores/{{job_id}}/undo` puts the pod "
        f"back as it was.\n\n"
        f"**Preview** with `dry_run: true`: the job restores the snapshot into scratch and "
        f"compares it with the pod (bytes compared exactly), writes nothing (no safety "
        f"backup, no hooks, no database load) and answers in `result.preview` "
        f"(`RestorePreview`): `add`, `overwrite` with `reasons` (`type`, `size`, `content`, "
        f"`mode`, `mtime`), `delete` (mirror mode), `unchanged`, exact `counts` and `bytes`, "
        f"lists capped at 1,000 (`truncated`), and `database` (the dump, the tables it "
        f"replaces, the target database). {ANY} {JOB_NEXT}",
        request={"snapshot_id": "latest", "paths": ["uploads/2024"], "dry_run": True},
        response=ex.job(kind="restore", params={"snapshot_id": ex.SNAPSHOT_ID, "dry_run": True}),
        causes=(POD_BUSY,),
    ),
    "POST /v1/restores/{job_id}/undo": Op(
        f"Undo a succeeded restore: a `restore` job from the safety snapshot it took, over "
        f"the same scope (its `paths`, files in `mirror` mode so what the restore added goes; "
        f"the database when it loaded one), with a safety backup of its own, so the undo can "
        f"be undone too. Its `params.undo_of` and `result.undo_of` name the restore; the "
        f"audit trail records `restore.undo`. 409 `NotUndoable` when the job is not a "
        f"finished, succeeded restore (or a preview), or took no safety snapshot "
        f"(`safety_backup: false`); 410 `SafetySnapshotGone` when retention has forgotten "
        f"the safety snapshot (it is pinned PODBACKUP_RESTORE_UNDO_DAYS). {ANY} {JOB_NEXT}",
        response=ex.job(
            kind="restore",
            params={
                "source_pod_id": ex.POD_ID,
                "snapshot_id": ex.SNAPSHOT_ID,
                "mode": "mirror",
                "undo_of": ex.JOB_ID,
            },
        ),
        causes=(
            POD_BUSY,
            error_cause(
                409,
                "no_safety_snapshot",
                "The restore took no safety snapshot, or cannot be undone.",
                "NotUndoable",
                "restore 6f1c2a9e took no safety snapshot (safety_backup: false, or the pod "
                "had no backup target then)",
                "there is nothing to go back to; restore an older snapshot of the pod instead",
            ),
            error_cause(
                410,
                "safety_forgotten",
                "The safety snapshot was forgotten by retention.",
                "SafetySnapshotGone",
                "the safety snapshot 9d2e41b7 of restore 6f1c2a9e was forgotten",
                "the undo window is PODBACKUP_RESTORE_UNDO_DAYS days; restore an older "
                "snapshot of the pod instead",
            ),
        ),
    ),
    "POST /v1/pods/{pod_id}/exports": Op(
        f"Build a one-time archive (tar.gz) of the pod's files and database dump in an "
        f"`export` job: of a snapshot (`snapshot_id`: id, short id or `latest`), or of the "
        f"pod as it is now when omitted. {ANY} **Next**: poll `GET "
        "/v1/exports/{export_id}` until `status` is `ready`, then fetch its `download_url` "
        "before `expires_at`.",
        request={"snapshot_id": ex.SHORT_ID},
        response={
            **ex.EXPORT,
            "status": "pending",
            "size_bytes": None,
            "sha256": None,
            "download_url": None,
            "expires_at": None,
        },
    ),
    "GET /v1/exports/{export_id}": Op(
        f"An export: `status` (`pending`, `ready`, `failed`, `expired`), size, SHA-256 and, "
        f"once ready, a signed `download_url` valid until `expires_at`. {ANY}",
        response=ex.EXPORT,
    ),
    "GET /v1/exports/{export_id}/download": Op(
        "Download an export's archive with the signed link from `download_url`. **Who**: "
        "whoever holds the link, no token, until it expires (403 `BadSignature` for a wrong "
        "or expired signature, 410 `Gone` once the archive was deleted).",
        response="(the tar.gz archive)",
    ),
    "POST /v1/pods/{pod_id}/retention/preview": Op(
        f"What `forget` would keep and remove under the pod's policy (or the one in the "
        f"body), with each kept snapshot's reasons; nothing is deleted. Reads the repository "
        f"with restic. {ANY} **Next**: `POST …/prune` applies the stored policy.",
        request={"keep_last": 3, "keep_daily": 7},
        response=views.PREVIEW,
        causes=(STORAGE_DOWN,),
    ),
    "POST /v1/pods/{pod_id}/prune": Op(
        f"Forget snapshots by the pod's retention policy, then prune unused data, in a "
        f"`prune` job. The newest backup is never removed. {ANY} {JOB_NEXT}",
        response=ex.job(kind="prune"),
        causes=(POD_BUSY, no_settings("set its retention")),
    ),
    "POST /v1/pods/{pod_id}/checks": Op(
        f"Check the repository in a `check` job: `restic check` with a rotating read-data "
        f"subset (or the one asked), sample files restored and compared, and a trial restore "
        f"of the database dump into a scratch database. {ANY} A problem ends the job "
        f"`failed` with `repository_damaged` or `check_failed` and the report in `result`. "
        f"{JOB_NEXT}",
        request={"read_data_subset": "1/28", "trial_restore": True},
        response=ex.job(kind="check", params={"read_data_subset": "1/28"}),
        causes=(POD_BUSY, no_settings("back up first")),
    ),
}
