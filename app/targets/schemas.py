"""Backup settings bodies and reads, verification results, restore kit, provider presets."""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from app.kit.validators import AbsolutePath, Body

_HHMM = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")


class MaintenanceKey(Body):
    access_key_id: str = Field(min_length=1, max_length=256, pattern=r"^\S+$")
    secret_access_key: SecretStr | None = Field(
        None,
        max_length=512,
        description=(
            "Write-only. Omit on update to keep the stored one (only while access_key_id "
            "stays the same); it is never returned."
        ),
    )


class Immutable(Body):
    """Lock mode: the backup key cannot delete; only the maintenance key prunes."""

    lock_days: int = Field(
        ge=1,
        le=36_500,
        description=(
            "The bucket's Object Lock retention (or how long deleted data must stay "
            "recoverable), in days. Retention must then keep at least this long: "
            "`retention.keep_within_days` >= `lock_days`."
        ),
    )
    maintenance_key: MaintenanceKey | None = Field(
        None,
        description=(
            "A second key that may delete, used only by the prune job (forget + prune). "
            "Without it, prune jobs are refused (`maintenance_key_missing`)."
        ),
    )


class S3Target(Body):
    kind: Literal["s3"]
    endpoint: str = Field(
        min_length=1,
        max_length=300,
        description=(
            "The provider's S3 hostname WITHOUT the bucket name, e.g. "
            "`s3.us-west-001.backblazeb2.com`; `https://` and a trailing `/` are accepted. "
            "Plain `http://` only for hosts inside PODBACKUP_ALLOW_NETWORKS (development)."
        ),
        examples=["s3.us-west-001.backblazeb2.com"],
    )
    bucket: str = Field(min_length=1, max_length=256, examples=["my-pod-backup-1"])
    region: str | None = Field(
        None,
        max_length=40,
        description="Optional: inferred from the endpoint for AWS, B2, iDrive e2 and OCI.",
    )
    access_key_id: str = Field(min_length=1, max_length=256, pattern=r"^\S+$")
    secret_access_key: SecretStr | None = Field(
        None,
        max_length=512,
        description=(
            "Write-only. Omit on update to keep the stored one (only while access_key_id "
            "stays the same); it is never returned."
        ),
    )
    immutable: Immutable | None = Field(
        None,
        description=(
            "Lock mode (append-only): this target's key cannot delete and pruning runs "
            "only with `maintenance_key`. null: off. Omitted: off on the first save, the "
            "stored lock mode kept on updates. See GET /v1/providers for the key policies."
        ),
    )


class LocalTarget(Body):
    kind: Literal["local"]
    path: AbsolutePath = Field(
        description="Admin only: a folder under one of PODBACKUP_LOCAL_ROOTS on the workers."
    )


Target = Annotated[S3Target | LocalTarget, Field(discriminator="kind")]


class Schedule(Body):
    enabled: bool = True
    window_start: str = Field("01:00", description="HH:MM, local to `timezone`.")
    window_end: str = Field("05:00", description="HH:MM; may be past midnight (22:00-04:00).")
    timezone: str = Field("UTC", max_length=64, description="IANA name, e.g. Europe/Berlin.")

    @field_validator("window_start", "window_end")
    @classmethod
    def _hhmm(cls, value: str) -> str:
        if not _HHMM.match(value):
            raise ValueError("use HH:MM (24-hour clock), e.g. 01:30")
        return value

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"'{value}' is not an IANA time zone (e.g. Europe/Berlin)") from exc
        return value

    @model_validator(mode="after")
    def _window(self) -> Schedule:
        if self.window_start == self.window_end:
            raise ValueError("window_start and window_end must differ")
        return self


KeepCount = Annotated[int, Field(ge=0, le=100_000)]


class Retention(Body):
    keep_last: KeepCount = 0
    keep_daily: KeepCount = 0
    keep_weekly: KeepCount = 0
    keep_monthly: KeepCount = 0
    keep_yearly: KeepCount = 0
    keep_within_days: KeepCount = Field(
        0,
        description=(
            "Keep every snapshot made within this many days of the newest one "
            "(`--keep-within Nd`); in lock mode at least `target.immutable.lock_days`."
        ),
    )

    @model_validator(mode="after")
    def _some_rule(self) -> Retention:
        if not any(getattr(self, k) for k in RETENTION_KEYS):
            raise ValueError("at least one keep rule must be greater than 0")
        return self


RETENTION_KEYS = (
    "keep_last",
    "keep_daily",
    "keep_weekly",
    "keep_monthly",
    "keep_yearly",
    "keep_within_days",
)
DEFAULT_RETENTION: dict[str, int] = {
    "keep_last": 0,
    "keep_daily": 7,
    "keep_weekly": 4,
    "keep_monthly": 6,
    "keep_yearly": 0,
    "keep_within_days": 0,
}


class Verification(Body):
    enabled: bool = True
    interval_days: int = Field(7, ge=1, le=365, description="How often a check job runs.")
    read_data_subsets: int = Field(
        12,
        ge=1,
        le=1000,
        description="N: each check reads the next 1/N of the data (`--read-data-subset n/N`).",
    )


class Prune(Body):
    interval_days: int = Field(7, ge=1, le=365, description="How often forget + prune runs.")


_SETTINGS_EXAMPLE: dict[str, Any] = {
    "target": {
        "kind": "s3",
        "endpoint": "s3.us-west-001.backblazeb2.com",
        "bucket": "my-pod-backup-1",
        "access_key_id": "0015a1b2c3d4e5f0000000001",
        "secret_access_key": "K001abcdefghijklmnopqrstuvwxyz0",
    },
    "schedule": {
        "enabled": True,
        "window_start": "01:00",
        "window_end": "05:00",
        "timezone": "Europe/Berlin",
    },
    "retention": {
        "keep_last": 0,
        "keep_daily": 7,
        "keep_weekly": 4,
        "keep_monthly": 6,
        "keep_yearly": 0,
    },
    "verification": {"enabled": True, "interval_days": 7, "read_data_subsets": 12},
    "prune": {"interval_days": 7},
}


class BackupSettingsWrite(Body):
    """The whole settings. ``target`` is required the first time; later, an omitted
    section keeps its stored value. Omitted on the first save, schedule, retention,
    verification and prune get their defaults."""

    model_config = ConfigDict(
        extra="forbid",
        str_strip_whitespace=True,
        json_schema_extra={"examples": [_SETTINGS_EXAMPLE]},
    )

    target: Target | None = None
    schedule: Schedule | None = None
    retention: Retention | None = None
    verification: Verification | None = None
    prune: Prune | None = None


class MaintenanceKeyRead(BaseModel):
    access_key_id: str
    secret_access_key_set: bool


class ImmutableRead(BaseModel):
    lock_days: int
    maintenance_key: MaintenanceKeyRead | None = Field(
        description="null: no maintenance key, so prune jobs are refused"
    )


class S3TargetRead(BaseModel):
    kind: Literal["s3"]
    endpoint: str = Field(description="As normalised; `http://` shown when plain http is used.")
    bucket: str
    region: str
    provider: str = Field(description="aws | b2 | idrive_e2 | oci | generic")
    provider_name: str
    path_style: bool
    access_key_id: str
    secret_access_key_set: bool
    immutable: ImmutableRead | None = Field(
        None, description="Lock mode, when declared (null: off)."
    )


class LocalTargetRead(BaseModel):
    kind: Literal["local"]
    path: str


class BackupSettingsRead(BaseModel):
    pod_id: uuid.UUID
    target: S3TargetRead | LocalTargetRead
    repository: str = Field(description="`s3:https://<endpoint>/<bucket>` or the local path.")
    repository_id: str | None = Field(description="restic's repository id, once initialised.")
    initialized_at: datetime | None
    schedule: Schedule
    retention: Retention
    verification: Verification
    prune: Prune
    verified_at: datetime | None
    verified_ok: bool | None
    created_at: datetime
    updated_at: datetime


class VerifyCheck(BaseModel):
    name: str = Field(
        description=(
            "address_policy, connect, credentials, bucket, write, read, list, delete, "
            "key_scope, contents, versioning, object_lock, maintenance_key (local targets: "
            "path, contents); then the "
            "pod's own side: pod_files (SFTP login and a listing of the folder, or the "
            "local folder) when the pod has files, pod_database (login, database, a dump "
            "client that fits the server) when it has a database"
        )
    )
    ok: bool
    level: Literal["ok", "warning", "error", "skipped"] = Field(
        description="`ok` overall is false only when an `error` check failed; `skipped` "
        "checks did not run because an earlier one failed."
    )
    detail: str
    hint: str | None = None


class ObjectLockRead(BaseModel):
    status: Literal["enabled", "off", "unknown"] = Field(
        description="`unknown`: the provider or the key does not answer GetObjectLockConfiguration"
    )
    mode: str | None = Field(None, description="GOVERNANCE | COMPLIANCE (default retention)")
    days: int | None = Field(None, description="The default retention period in days")


class Immutability(BaseModel):
    """What the bucket does with deleted and overwritten objects (S3 targets only)."""

    versioning: Literal["enabled", "suspended", "off", "unknown"] = Field(
        description="`unknown`: the provider or the key does not answer GetBucketVersioning"
    )
    object_lock: ObjectLockRead
    lock_mode: bool = Field(description="The settings declare lock mode (`target.immutable`).")


class VerifyResult(BaseModel):
    ok: bool
    checks: list[VerifyCheck]
    immutability: Immutability | None = Field(
        None,
        description="S3 targets, when the verification reached the bucket: versioning and "
        "Object Lock as the server reports them.",
    )
    repository: str
    saved: bool = Field(description="True when the stored settings were verified (and marked).")
    verified_at: datetime


class RestoreCommand(BaseModel):
    title: str
    command: str


class RestoreKit(BaseModel):
    pod_id: uuid.UUID
    repository: str
    password: str = Field(description="The restic repository password. Keep it safe.")
    env: dict[str, str] = Field(
        description="The variables plain restic needs (the S3 secret is a placeholder)."
    )
    env_block: str = Field(description="`export` lines to paste into a shell.")
    commands: list[RestoreCommand]
    notes: list[str]


class KeySetup(BaseModel):
    steps: list[str]
    iam_policy: dict[str, Any] | None = None
    iam_policy_text: str | None = None


class LockModeSetup(BaseModel):
    """Lock mode (`target.immutable`): a backup key that cannot delete, a maintenance key
    that can, and the bucket's Object Lock."""

    bucket: list[str]
    backup_key: list[str]
    maintenance_key: list[str]
    backup_policy: dict[str, Any] | None = None
    maintenance_policy: dict[str, Any] | None = None


class ProviderPreset(BaseModel):
    id: str
    name: str
    endpoint_pattern: str
    example_endpoints: list[str]
    where_to_find: str
    region_from_endpoint: bool
    path_style: bool
    bucket_rules: str
    key_setup: KeySetup
    lock_mode: LockModeSetup | None = Field(
        None, description="How to set up lock mode (immutable backups) at this provider."
    )
    notes: list[str] = []


class ProvidersRead(BaseModel):
    items: list[ProviderPreset]
    one_bucket_per_pod: str
    key_advice: str
