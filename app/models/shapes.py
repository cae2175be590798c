"""The JSON kept in pods and backup settings, as typed values (``app.models.types``).

Every field an older row may lack has a default, and unknown keys are kept; what a
value was not given is not written back (see ``Stored``). These are the stored forms;
the API's bodies (``app/pods/schemas.py``, ``app/targets/schemas.py``) validate more
strictly, and the services convert between the two.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from app.models.types import StoredShape

# -- pods ------------------------------------------------------------------------------


class SftpFiles(StoredShape):
    kind: Literal["sftp"]
    host: str
    port: int = 22
    username: str
    path: str = "/"
    host_key: str | None = None  # as given; the pinned one is Pod.pinned_host_key
    # Names of the secrets sealed in Pod.files_secret, kept in clear for reads.
    # None: a row written before the names were kept.
    secrets_set: list[str] | None = None


class LocalFiles(StoredShape):
    kind: Literal["local"]
    path: str


PodFiles = Annotated[SftpFiles | LocalFiles, Field(discriminator="kind")]


class PodDatabase(StoredShape):
    kind: Literal["postgres", "mysql", "mariadb"]
    host: str
    port: int
    name: str
    username: str
    secrets_set: list[str] | None = None  # as SftpFiles.secrets_set


class PodHooks(StoredShape):
    stop_url: str | None = None
    start_url: str | None = None


# -- backup settings -------------------------------------------------------------------


class S3Place(StoredShape):
    """An S3 target as normalised on save (its kind is BackupSettings.target_kind)."""

    endpoint: str  # host[:port], no scheme
    scheme: str = "https"
    bucket: str
    region: str | None = None
    signing_region: str | None = None
    region_given: bool = False
    provider: str = "generic"
    path_style: bool = True
    access_key_id: str
    # Lock mode (append-only): set when the owner declared it. The backup key cannot
    # delete; prune runs with the maintenance key (its secret: BackupSettings.maintenance_secret).
    lock_days: int | None = None
    maintenance_access_key_id: str | None = None


class LocalPlace(StoredShape):
    path: str


# No tag in the JSON: the two have no key in common, so the union picks by the keys.
TargetPlace = S3Place | LocalPlace


class StoredSchedule(StoredShape):
    enabled: bool = True
    window_start: str = "01:00"
    window_end: str = "05:00"
    timezone: str = "UTC"


class StoredRetention(StoredShape):
    """The keep rules, and how often forget + prune runs (the API's ``prune``)."""

    keep_last: int = 0
    keep_daily: int = 0
    keep_weekly: int = 0
    keep_monthly: int = 0
    keep_yearly: int = 0
    keep_within_days: int = 0
    prune_interval_days: int = 7


class StoredVerification(StoredShape):
    enabled: bool = True
    interval_days: int = 7
    read_data_subsets: int = 12


# -- jobs ------------------------------------------------------------------------------


class JobParams(StoredShape):
    """What a job was asked to do. One shape for every kind (the kind is a column of its
    own, not a key here); each kind reads its own fields, all optional: a scheduled job has
    none. ``"read_data_subset" in params.model_fields_set`` tells absent from null."""

    # restore
    source_pod_id: str | None = None
    paths: list[str] | None = None
    files: bool = True
    database: bool = True
    mode: str = "merge"
    safety_backup: bool = True
    allow_unrecorded_dump: bool = False
    dry_run: bool = False  # a preview: compare, write nothing
    undo_of: str | None = None  # the restore job this one undoes
    # restore, export, index
    snapshot_id: str | None = None
    # export
    export_id: str | None = None
    # index
    measure: bool = False
    # backup: restic tags beside the service's own, and a pin of the snapshot it makes
    # when it succeeds (the before-update backup); ``pin_days`` null: until unpinned
    tags: list[str] | None = None
    pin: bool = False
    pin_days: int | None = None
    pin_note: str | None = None
    # check
    trial_restore: bool = True
    read_data_subset: str | None = None
    rotate: bool = False


class JobProgress(StoredShape):
    """Where a running job stands (the API's ``Progress``); handlers may add fields."""

    percent: float | None = None
    bytes_done: int | None = None
    bytes_total: int | None = None
    files_done: int | None = None
    files_total: int | None = None
    phase: str | None = None
    seconds_remaining: float | None = None


class JobError(StoredShape):
    """Why a job failed (``JobFailure``): a check adds its ``report`` as an extra key."""

    code: str
    message: str
    hint: str | None = None
    retryable: bool | None = None  # not written by this version; kept when present
