"""Health, accounts and tokens, pods, backup settings, the operator's views, webhooks."""

from __future__ import annotations

from app.apidoc import examples as ex
from app.apidoc import examples_views as views
from app.apidoc.op import ADMIN, ANY, NOT_READY, POD_GONE, Op, error_cause

SERVICE_OPERATIONS: dict[str, Op] = {
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
            error_cause(
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
        f"object, key scope, the repository in the bucket (`contents`), versioning and "
        f"Object Lock (also as the `immutability` facts; a provider that does not answer "
        f"gives `unknown`, never a failure), in lock mode the maintenance key "
        f"(`maintenance_key`), and the "
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
        response=views.RESTORE_KIT,
    ),
    "GET /v1/providers": Op(
        "S3 provider presets: endpoint patterns and examples, bucket rules, where to find "
        "the values, and how to make a key limited to one bucket. **Who**: any valid token. "
        "`?bucket=` fills the bucket name into the key policies.",
        response=views.PROVIDERS,
    ),
    # -- platform, audit, webhooks -------------------------------------------------------------
    "GET /v1/platform/fleet": Op(
        f"Pods without a successful platform backup in the last `hours` (or every pod with "
        f"`all_pods`), for the operator's server-wide recovery plan. {ADMIN}",
        response=views.FLEET,
    ),
    "GET /v1/audit": Op(
        f"The audit trail of every account, newest first: settings saved, verifications, "
        f"restore-kit reads, restores, tokens; filter by account, pod and action. {ADMIN}",
        response=views.AUDIT,
    ),
    "GET /v1/pods/{pod_id}/audit": Op(
        f"The pod's audit trail, newest first (who saved settings, read the restore kit, "
        f"restored). {ANY}",
        response=views.AUDIT,
    ),
    "GET /v1/webhooks": Op(f"The webhooks this token sees. {ANY}", response=ex.page(ex.WEBHOOK)),
    "POST /v1/webhooks": Op(
        f"Subscribe a URL to events (`job.succeeded`, `job.partial`, `job.failed`, "
        f"`backup.stale`, `copy.lagging`, `check.failed`, `restore.finished`, "
        f"`target.unavailable`, `target.recovered`). {ANY} The URL is checked "
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
            error_cause(
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
        response=ex.page(views.DELIVERY),
    ),
    "POST /v1/webhooks/{webhook_id}/test": Op(
        f"Queue a `webhook.test` delivery to this webhook. {ANY}",
        response={
            **views.DELIVERY,
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
