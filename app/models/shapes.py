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
    prune_interval_days: int = 7


class StoredVerification(StoredShape):
    enabled: bool = True
    interval_days: int = 7
    read_data_subsets: int = 12
