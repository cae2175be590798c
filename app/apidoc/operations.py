"""What each operation's description says — what it does, who may call it, what it
starts, what to do next — with an example request and/or response, keyed "VERB /path".

An endpoint's own docstring (or ``description=``) stays and follows this text. Every
operation has an entry and every entry an operation (``tests/test_apidoc.py``); examples
are checked against the operation's schemas there too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from app.apidoc import examples as ex
from app.apidoc.causes import STORAGE_DOWN, Cause

Json = dict[str, Any]

ADMIN = "**Who**: admin tokens."
ANY = "**Who**: admin tokens, and account tokens for their own account's resources "
ANY += "(another account's answers 404, like a missing one)."
JOB_NEXT = (
    "**Next**: follow the job with `GET /v1/jobs/{job_id}/events` (Server-Sent Events) or "
    "poll `GET /v1/jobs/{job_id}` (the `Location` header) until `status` is final "
    "(`succeeded`, `partial`, `failed`, `canceled`); a failed job's `error.code` is one of "
    "the `JobErrorCode` values."
)


@dataclass(frozen=True)
class Op:
    text: str
    request: Json | None = None
    response: Json | str | None = None
    causes: tuple[Cause, ...] = ()


def _error(status: int, name: str, when: str, error: str, detail: str, hint: str) -> Cause:
    return Cause(status, name, when, when, {"error": error, "detail": detail, "hint": hint})


POD_GONE = _error(
    404,
    "not_found",
    "No such pod, or it belongs to another account.",
    "NotFound",
    "Pod not found",
    "check the pod id",
)
SLOTS_FULL = Cause(
    429,
    "slots_full",
    "Every download slot is taken",
    "Every download slot of this API process is taken (PODBACKUP_DOWNLOAD_CONCURRENCY).",
    {
        "error": "TooManyRequests",
        "detail": "too many downloads are running",
        "hint": "retry in a few seconds",
    },
    retry_after=5,
)
ACCOUNT_SHARE = Cause(
    429,
    "account_share",
    "The account's share of download slots is taken",
    "This account already holds its share of the download slots (PODBACKUP_DOWNLOAD_PER_ACCOUNT).",
    {
        "error": "TooManyRequests",
        "detail": "this account already runs 2 download(s) at once",
        "hint": "let a running download finish, then retry",
    },
    retry_after=5,
)
NOT_READY = Cause(
    503,
    "not_ready",
    "PostgreSQL or Redis does not answer",
    "PostgreSQL or Redis does not answer; `checks` says which.",
    {
        "status": "unavailable",
        "checks": {"postgres": "ok", "redis": "unreachable: ConnectionError"},
        "error": "ServiceUnavailable",
        "detail": "unreachable: redis",
        "hint": "start the service, or fix PODBACKUP_DATABASE_URL / PODBACKUP_REDIS_URL",
    },
    retry_after=5,
)

OPERATIONS: dict[str, Op] = {
    # -- health --------------------------------------------------------------------------------
    "GET /healthz": Op(
        "The process is alive (no backing service is asked). **Who**: anyone, no token. "
        "Use it as the liveness probe; use `/readyz` to decide whether to send traffic.",
        response={"status": "ok"},
    ),
    "GET /readyz": Op(
        "PostgreSQL and Redis both answer (3 s each). **Who**: anyone, no token. Use it as "
        "the readiness probe of an API replica: 503 takes it out of the load balancer.",
        response={"status": "ok", "checks": {"postgres": "ok", "redis": "ok"}},
        causes=(NOT_READY,),
    ),
    "GET /metrics": Op(
        "Prometheus text: HTTP requests, queued and running jobs by kind and status (read "
        "from PostgreSQL), the age of the oldest queued job, read-cache gauges. **Who**: "
        "anyone who can reach the port; keep it off the public network. A database outage "
        "does not fail it: the job gauges keep their last values.",
        response="# HELP podbackup_jobs_active Queued and running jobs (from PostgreSQL)\n"
        "# TYPE podbackup_jobs_active gauge\n"
        'podbackup_jobs_active{kind="backup",status="running"} 2.0\n',
    ),
    # -- accounts and tokens -------------------------------------------------------------------
    "GET /v1/me": Op(
        "Who this token is: its id, scope (`admin` or `account`) and account. **Who**: any "
        "valid token. The CLI's `login` calls it to check a token.",
        response={"token_id": ex.TOKEN_ID, "scope": "account", "account_id": ex.ACCOUNT_ID},
    ),
    "GET /v1/accounts": Op(f"Every account, oldest first. {ADMIN}", response=ex.page(ex.ACCOUNT)),
    "POST /v1/accounts": Op(
        f"Create an account (a tenant). {ADMIN} **Next**: give it a token with "
        "`POST /v1/accounts/{account_id}/tokens`, then create its pods.",
        request={"name": "acme", "email": "ops@acme.example"},
        response=ex.ACCOUNT,
    ),
    "GET /v1/accounts/{account_id}": Op(f"One account. {ADMIN}", response=ex.ACCOUNT),
    "GET /v1/accounts/{account_id}/tokens": Op(
        f"The account's tokens with their prefix and last use; never the token itself. {ADMIN}",
        response=ex.page(ex.TOKEN),
    ),
    "POST /v1/accounts/{account_id}/tokens": Op(
        f"A new account token. {ADMIN} The `token` is in this response only (it is stored "
        "hashed): hand it to the account's client, which sends `Authorization: Bearer "
        "<token>`.",
        request={"name": "control panel"},
        response={
            **{
                k: v
                for k, v in ex.TOKEN.items()
                if k not in ("prefix", "last_used_at", "revoked_at")
            },
            "token": "pb_8Kq2ZxV4nT7yR1wE5uI9oP3aS6dF0gHj",
        },
    ),
    "DELETE /v1/tokens/{token_id}": Op(
        "Revoke a token: it stops working at once on this API process, and within "
        "PODBACKUP_TOKEN_CACHE_SECONDS on the others; open event streams end. **Who**: "
        "admin tokens, and an account token for its own account's tokens.",
        causes=(
            _error(
                404,
                "not_found",
                "No such token, or another account's.",
                "NotFound",
                "Token not found",
                "check the token id",
            ),
        ),
    ),
    # -- pods ----------------------------------------------------------------------------------
    "GET /v1/pods": Op(
        f"The pods this token sees, oldest first. {ANY} Admins may filter by `account_id`.",
        response=ex.page(ex.POD),
    ),
    "POST /v1/pods": Op(
        "Register a pod: where its files are read (`files`: SFTP, or an admin-only `local` "
        "folder), its database (`database`) and its stop/start `hooks`. Passwords and keys "
        "are write-only (stored encrypted; reads say `password_set`). Hosts are checked "
        "against the outbound-address policy (422 `OutboundAddressRefused`). **Who**: "
        "account tokens (for their account) and admin tokens (which must give "
        "`account_id`). **Next**: save its backup settings with `PUT "
        "/v1/pods/{pod_id}/backup-settings`.",
        request=ex.POD_CREATE,
        response=ex.POD,
    ),
    "GET /v1/pods/{pod_id}": Op(f"One pod, secrets as `*_set` flags. {ANY}", response=ex.POD),
    "PATCH /v1/pods/{pod_id}": Op(
        f"Change a pod: only the fields sent change; a section sent replaces that section, "
        f"except that its omitted secrets keep their stored values, as long as the host, "
        f"port and login stay the same (a stored password is never sent to a new place: "
        f"send it again, or `''` to drop it). {ANY} The next job uses the new values.",
        request={
            "hooks": {
                "stop_url": "https://wiki.example.net/maintenance/on",
                "start_url": "https://wiki.example.net/maintenance/off",
            }
        },
        response={
            **ex.POD,
            "hooks": {
                "stop_url": "https://wiki.example.net/maintenance/on",
                "start_url": "https://wiki.example.net/maintenance/off",
            },
        },
    ),
    "DELETE /v1/pods/{pod_id}": Op(
        f"Delete a pod with its settings, jobs and snapshot records, and destroy its stored "
        f"secrets (SFTP and database passwords, S3 secret, repository password). {ANY} The "
        "backups in the owner's bucket are not touched: keep the restore kit first if they "
        "are still wanted. Its job records go with it; a job still running stops.",
        causes=(POD_GONE,),
    ),
    # -- backup settings -----------------------------------------------------------------------
    "GET /v1/pods/{pod_id}/backup-settings": Op(
        f"The pod's target (never the secret: `secret_access_key_set`), the detected "
        f"`provider`, the `repository` URL, schedule, retention, prune and verification "
        f"settings, and the last verification. {ANY}",
        response=ex.SETTINGS,
    ),
    "PUT /v1/pods/{pod_id}/backup-settings": Op(
        f"Save where and when the pod is backed up. {ANY} The endpoint is normalised and "
        "checked (a bucket name inside it, a region, the address policy). **Next**: `POST "
        "…/backup-settings/verify` proves the target works; the schedule only runs for "
        "verified settings.",
        request=ex.SETTINGS_WRITE,
        response=ex.SETTINGS,
    ),
    "DELETE /v1/pods/{pod_id}/backup-settings": Op(
        f"Forget the pod's target: scheduled backups stop and the stored S3 secret and "
        f"repository password are destroyed. {ANY}",
        causes=(POD_GONE,),
    ),
    "POST /v1/pods/{pod_id}/backup-settings/verify": Op(
        f"A real round trip within PODBACKUP_VERIFY_BUDGET_SECONDS: the address policy, "
        f"connect (TLS), credentials, bucket and region, write/read/list/delete of a probe "
        f"object, key scope, the repository in the bucket (`contents`), versioning, and the "
        f"pod's SFTP folder and database (`pod_files`, `pod_database`). {ANY} Each check "
        "has a `level` and a `hint`. **Next**: fix what failed and verify again; then back up.",
        request={
            "kind": "s3",
            "endpoint": "s3.eu-central-003.backblazeb2.com",
            "bucket": "acme-wiki-backups",
            "access_key_id": "003a1b2c3d4e5f60000000001",
            "secret_access_key": "K003abcdefghijklmnopqrstuvwxyz0123",
        },
        response=ex.VERIFY,
    ),
    "GET /v1/pods/{pod_id}/restore-kit": Op(
        f"Everything plain restic needs to restore without this service: repository URL, "
        f"password, the environment block and commands. {ANY} Every read is audited "
        "(`restore_kit.read`).",
        response=ex.RESTORE_KIT,
    ),
    "GET /v1/providers": Op(
        "S3 provider presets: endpoint patterns and examples, bucket rules, where to find "
        "the values, and how to make a key limited to one bucket. **Who**: any valid token. "
        "`?bucket=` fills the bucket name into the key policies.",
        response=ex.PROVIDERS,
    ),
    # -- backups and jobs ----------------------------------------------------------------------
    "POST /v1/pods/{pod_id}/backups": Op(
        f"Back up the pod now: a `backup` job (files, a fresh database dump, `restic "
        f"backup`, evidence of the snapshot). {ANY} A backup already queued or running is "
        "returned instead of a second one; another job changing the pod answers 409 "
        f"`PodBusy`. 409 `NotConfigured` without backup settings. {JOB_NEXT}",
        request={"trigger": "api"},
        response=ex.job(),
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
        response=ex.EVENT_STREAM,
    ),
    # -- status and statistics -----------------------------------------------------------------
    "GET /v1/pods/{pod_id}/status": Op(
        f"The pod's backup overview from PostgreSQL: last backup and last success, next "
        f"scheduled run, snapshot count, repository size and growth, last verification, the "
        f"active job. {ANY} Admins pass `plan=platform` for the operator's plan.",
        response=ex.STATUS,
    ),
    "GET /v1/pods/{pod_id}/stats": Op(
        f"Repository size samples over `days`, growth over the last 30 days and a monthly "
        f"cost estimate at the provider's list price. {ANY}",
        response=ex.STATS,
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
    # -- restores, exports, retention, checks --------------------------------------------------
    "POST /v1/pods/{pod_id}/restores": Op(
        f"Restore a snapshot in a `restore` job: everything, chosen `paths` below `files/`, "
        f"or the database only (`files: false`); into the pod or `target_pod_id` (another "
        f"pod of the account). A safety backup of the pod as it is comes first "
        f"(`safety_backup`), so a restore can be undone. `mode: mirror` also deletes files "
        f"the snapshot lacks. A dump the service did not record is refused "
        f"(`dump_not_recorded`) unless `allow_unrecorded_dump`. {ANY} {JOB_NEXT}",
        request={"snapshot_id": "latest", "paths": ["uploads/2024/06/logo.png"]},
        response=ex.job(kind="restore", params={"snapshot_id": ex.SNAPSHOT_ID}),
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
        response=ex.PREVIEW,
        causes=(STORAGE_DOWN,),
    ),
    "POST /v1/pods/{pod_id}/prune": Op(
        f"Forget snapshots by the pod's retention policy, then prune unused data, in a "
        f"`prune` job. The newest backup is never removed. {ANY} {JOB_NEXT}",
        response=ex.job(kind="prune"),
    ),
    "POST /v1/pods/{pod_id}/checks": Op(
        f"Check the repository in a `check` job: `restic check` with a rotating read-data "
        f"subset (or the one asked), sample files restored and compared, and a trial restore "
        f"of the database dump into a scratch database. {ANY} A problem ends the job "
        f"`failed` with `repository_damaged` or `check_failed` and the report in `result`. "
        f"{JOB_NEXT}",
        request={"read_data_subset": "1/28", "trial_restore": True},
        response=ex.job(kind="check", params={"read_data_subset": "1/28"}),
    ),
    # -- platform, audit, webhooks -------------------------------------------------------------
    "GET /v1/platform/fleet": Op(
        f"Pods without a successful platform backup in the last `hours` (or every pod with "
        f"`all_pods`), for the operator's server-wide recovery plan. {ADMIN}",
        response=ex.FLEET,
    ),
    "GET /v1/audit": Op(
        f"The audit trail of every account, newest first: settings saved, verifications, "
        f"restore-kit reads, restores, tokens; filter by account, pod and action. {ADMIN}",
        response=ex.AUDIT,
    ),
    "GET /v1/pods/{pod_id}/audit": Op(
        f"The pod's audit trail, newest first (who saved settings, read the restore kit, "
        f"restored). {ANY}",
        response=ex.AUDIT,
    ),
    "GET /v1/webhooks": Op(f"The webhooks this token sees. {ANY}", response=ex.page(ex.WEBHOOK)),
    "POST /v1/webhooks": Op(
        f"Subscribe a URL to events (`job.succeeded`, `job.partial`, `job.failed`, "
        f"`backup.stale`, `check.failed`, `restore.finished`). {ANY} The URL is checked "
        "against the outbound-address policy. **Next**: `POST /v1/webhooks/{webhook_id}/test` "
        "and watch its deliveries.",
        request={
            "url": "https://hooks.acme.example/podbackup",
            "events": ["job.failed", "backup.stale", "check.failed"],
            "description": "backups to the ops channel",
        },
        response={**ex.WEBHOOK, "secret": "whsec_4Nf8Qm2Zr7Xc1Vb9Lk3Jh6Gd"},
    ),
    "GET /v1/webhooks/{webhook_id}": Op(
        f"One webhook (never its secret). {ANY}", response=ex.WEBHOOK
    ),
    "DELETE /v1/webhooks/{webhook_id}": Op(
        f"Delete a webhook; its pending deliveries are dropped. {ANY}",
        causes=(
            _error(
                404,
                "not_found",
                "No such webhook, or another account's.",
                "NotFound",
                "Webhook not found",
                "check the webhook id",
            ),
        ),
    ),
    "GET /v1/webhooks/{webhook_id}/deliveries": Op(
        f"The webhook's deliveries, newest first, each with its attempts (status code, "
        f"duration, error) and the next retry. {ANY}",
        response=ex.page(ex.DELIVERY),
    ),
    "POST /v1/webhooks/{webhook_id}/test": Op(
        f"Queue a `webhook.test` delivery to this webhook. {ANY}",
        response={
            **ex.DELIVERY,
            "event": "webhook.test",
            "status": "pending",
            "attempts": 0,
            "payload": {"webhook_id": ex.WEBHOOK_ID},
            "last_status_code": None,
            "delivered_at": None,
            "next_attempt_at": ex.T2,
            "attempt_log": [],
        },
    ),
}
