"""Streaming transfers of the S3 client against a real S3 server (moto): a file of several
parts goes up as a multipart upload and comes back byte for byte in chunks; an upload that
fails half-way is aborted, leaving neither an object nor parts behind."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from app.integrations.s3 import S3Access, open_bucket
from app.kit.netpolicy import Policy
from tests.fixtures.s3 import REGION, S3ServerHandle, s3_bucket, s3_server  # noqa: F401

POLICY = Policy.from_settings(["127.0.0.0/8"])
PART = 5 << 20  # S3's smallest part but the last


def access(s3: S3ServerHandle, bucket: str) -> S3Access:
    return S3Access(s3.url, bucket, REGION, s3.access_key, s3.secret_key)


async def test_a_file_of_several_parts_goes_up_and_comes_back_in_chunks(
    s3_server: S3ServerHandle,  # noqa: F811
    s3_bucket: str,  # noqa: F811
    tmp_path: Path,
) -> None:
    data = os.urandom(PART + 12345)
    (tmp_path / "archive").write_bytes(data)
    async with open_bucket(access(s3_server, s3_bucket), POLICY) as bucket:
        await bucket.upload_file("x/archive", tmp_path / "archive", part_size=PART)
        assert await bucket.open_object("x/missing") is None
        reader = await bucket.open_object("x/archive")
        assert reader is not None
        try:
            assert reader.size == len(data)
            chunks = [c async for c in reader.chunks(chunk_size=1 << 20)]
        finally:
            reader.close()
    assert max(len(c) for c in chunks) <= 1 << 20
    assert hashlib.sha256(b"".join(chunks)).digest() == hashlib.sha256(data).digest()
    head = s3_server.client().head_object(Bucket=s3_bucket, Key="x/archive")
    assert head["ETag"].strip('"').endswith("-2")  # two parts, not one put


async def test_a_failed_upload_is_aborted(
    s3_server: S3ServerHandle,  # noqa: F811
    s3_bucket: str,  # noqa: F811
    tmp_path: Path,
) -> None:
    (tmp_path / "not-a-file").mkdir()  # the upload starts, then reading the file fails
    async with open_bucket(access(s3_server, s3_bucket), POLICY) as bucket:
        with pytest.raises(IsADirectoryError):
            await bucket.upload_file("x/archive", tmp_path / "not-a-file", part_size=PART)
    s3 = s3_server.client()
    assert s3.list_multipart_uploads(Bucket=s3_bucket).get("Uploads", []) == []
    assert s3_server.keys(s3_bucket) == []
