"""Stored JSON columns: old rows load, and are written back with the keys they had."""

from __future__ import annotations

import pytest
from pydantic import ValidationError
from sqlalchemy.dialects import postgresql

from app.models import BackupSettings, Pod
from app.models.shapes import LocalPlace, PodFiles, S3Place, SftpFiles, TargetPlace
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
