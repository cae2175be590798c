"""Stored JSON columns: old rows load, and are written back with the keys they had."""

from __future__ import annotations

import pytest
from pydantic import ValidationError
from sqlalchemy.dialects import postgresql

from app.engine.errors import JobFailure
from app.models import BackupSettings, Pod
from app.models.shapes import (
    JobError,
    JobParams,
    JobProgress,
    LocalPlace,
    PodFiles,
    S3Place,
    SftpFiles,
    TargetPlace,
)
from app.models.types import Stored

DIALECT = postgresql.dialect()  # type: ignore[no-untyped-call]


def _roundtrip(stored: Stored, raw: dict[str, object]) -> object:
    value = stored.process_result_value(raw, DIALECT)
    return stored.process_bind_param(value, DIALECT)


def test_an_old_sftp_row_loads_and_keeps_its_keys() -> None:
    raw = {"kind": "sftp", "host": "h", "port": 22, "username": "u", "path": "/", "x": 1}
    files = Stored(PodFiles).process_result_value(raw, DIALECT)
    assert isinstance(files, SftpFiles)
    assert files.secrets_set is None
    assert files.host_key is None
    assert _roundtrip(Stored(PodFiles), raw) == raw


def test_targets_are_told_apart_by_their_keys() -> None:
    stored = Stored(TargetPlace)
    local = stored.process_result_value({"path": "/srv/repo"}, DIALECT)
    assert isinstance(local, LocalPlace)
    s3 = stored.process_result_value(
        {"endpoint": "s3.example.com", "bucket": "b", "access_key_id": "k"}, DIALECT
    )
    assert isinstance(s3, S3Place)
    assert (s3.scheme, s3.provider, s3.path_style) == ("https", "generic", True)


def test_a_dict_assigned_becomes_a_shape() -> None:
    pod = Pod(files={"kind": "local", "path": "/srv/pod"})
    assert pod.files is not None
    assert pod.files.path == "/srv/pod"
    row = BackupSettings(schedule={})
    assert row.schedule.window_start == "01:00"


def test_shapes_are_frozen() -> None:
    files = SftpFiles(kind="sftp", host="h", username="u")
    with pytest.raises(ValidationError):
        files.port = 2222  # type: ignore[misc]


def test_job_json_of_older_rows_loads_and_keeps_its_keys() -> None:
    params = {"snapshot_id": "abc", "measure": True, "_internal": 1}
    loaded = Stored(JobParams).process_result_value(params, DIALECT)
    assert isinstance(loaded, JobParams)
    assert (loaded.snapshot_id, loaded.measure, loaded.mode) == ("abc", True, "merge")
    assert _roundtrip(Stored(JobParams), params) == params
    assert _roundtrip(Stored(JobParams), {}) == {}
    progress = {"phase": "reading snapshot", "percent": 12.5, "speed": 3}
    assert _roundtrip(Stored(JobProgress), progress) == progress
    error = {"code": "check_failed", "message": "m", "hint": None, "report": {"ok": False}}
    assert _roundtrip(Stored(JobError), error) == error


def test_a_job_error_is_written_with_the_keys_it_always_had() -> None:
    error = JobFailure("storage_unreachable", "down").as_error()
    assert error.retryable is None
    assert error.stored() == {"code": "storage_unreachable", "message": "down", "hint": None}
    later = error.model_copy(update={"hint": "again"})
    assert Stored(JobError).process_bind_param(later, DIALECT) == {
        **error.stored(),
        "hint": "again",
    }


def test_check_params_tell_an_absent_subset_from_null() -> None:
    assert "read_data_subset" not in JobParams(rotate=True).model_fields_set
    assert JobParams(read_data_subset=None).stored() == {"read_data_subset": None}
