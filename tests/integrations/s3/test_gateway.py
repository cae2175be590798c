"""The re-signing S3 gateway against the real S3 server with signatures and IAM enforced
(moto): two buckets, two keys each allowed on its own bucket only.

- Requests reach the primary signed with the primary's key, whatever restic signed them
  with; Range GETs stream the right bytes.
- A wrong token is refused before anything is sent upstream; PUT/DELETE outside
  ``locks/`` are refused; an address the outbound policy refuses is never dialled.
- restic `copy` (and ``init --copy-chunker-params``) between the two buckets: refused on
  the direct path (one key for both), done through the gateway; a refused primary fails
  the copy with ``address_refused``. Runs with the restic first on PATH (0.18, 0.14).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from app.integrations.restic import Repository, Restic, ResticError
from app.integrations.s3 import S3Access
from app.integrations.s3.gateway import S3Gateway, _decode_aws_chunked
from app.kit.netpolicy import Policy, Service
from tests.fixtures.s3 import REGION, S3ServerHandle, s3_iam_server  # noqa: F401

POLICY = Policy.from_settings(["127.0.0.0/8"])
LOCK = "locks/" + "ab" * 32


@dataclass
class Side:
    bucket: str
    key_id: str
    secret: str

    def access(self, endpoint: str) -> S3Access:
        return S3Access(endpoint, self.bucket, REGION, self.key_id, self.secret)

    def repo(self, endpoint: str, password: str, cache: Path | None = None) -> Repository:
        return Repository(
            url=f"s3:{endpoint}/{self.bucket}",
            password=password,
            env={
                "AWS_ACCESS_KEY_ID": self.key_id,
                "AWS_SECRET_ACCESS_KEY": self.secret,
                "AWS_DEFAULT_REGION": REGION,
            },
            cache_dir=cache,
            s3=self.access(endpoint),
        )


def side(s3: S3ServerHandle) -> Side:
    bucket = s3.create_bucket()
    return Side(bucket, *s3.create_key(bucket))


@pytest.fixture
def primary(s3_iam_server: S3ServerHandle) -> Side:  # noqa: F811
    return side(s3_iam_server)


@pytest.fixture
def second(s3_iam_server: S3ServerHandle) -> Side:  # noqa: F811
    return side(s3_iam_server)


class Counter:
    """A TCP listener that only counts the connections it accepts."""

    def __init__(self) -> None:
        self.accepted = 0
        self.port = 0

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        writer.close()


@pytest.fixture
async def counter() -> AsyncIterator[Counter]:
    c = Counter()
    server = await asyncio.start_server(c._serve, "127.0.0.1", 0)
    c.port = int(server.sockets[0].getsockname()[1])
    try:
        yield c
    finally:
        server.close()


def _base(gw: S3Gateway) -> str:
    return f"http://127.0.0.1:{gw.port}/{gw.token}"


async def test_reads_are_resigned_and_ranges_stream(
    s3_iam_server: S3ServerHandle,  # noqa: F811
    primary: Side,
    second: Side,
) -> None:
    data = os.urandom(3 << 20)
    s3_iam_server.client().put_object(Bucket=primary.bucket, Key="data/ab/pack", Body=data)
    # The copy's key cannot read the primary: the gateway's own signature is what works.
    denied = s3_iam_server.client(second.key_id, second.secret)
    with pytest.raises(Exception, match=r"AccessDenied|Forbidden|403"):
        denied.get_object(Bucket=primary.bucket, Key="data/ab/pack")

    async with (
        S3Gateway(primary.access(s3_iam_server.url), "", POLICY) as gw,
        httpx.AsyncClient(timeout=30) as http,
    ):
        assert gw.repository_url == f"s3:http://127.0.0.1:{gw.port}/{gw.token}"
        assert len(gw.token) == 32
        assert gw.token.isalnum()
        assert gw.token.islower()
        whole = await http.get(f"{_base(gw)}/data/ab/pack", headers={"Authorization": "junk"})
        assert whole.status_code == 200, whole.text
        assert whole.content == data
        part = await http.get(f"{_base(gw)}/data/ab/pack", headers={"Range": "bytes=1000-1999999"})
        assert part.status_code == 206, part.text
        assert part.content == data[1000:2000000]
        head = await http.head(f"{_base(gw)}/data/ab/pack")
        assert head.status_code == 200
        assert int(head.headers["Content-Length"]) == len(data)
        listing = await http.get(f"{_base(gw)}/?list-type=2&prefix=data%2F")
        assert listing.status_code == 200
        assert "<Key>data/ab/pack</Key>" in listing.text
        missing = await http.get(f"{_base(gw)}/config")
        assert missing.status_code == 404
        assert "NoSuchKey" in missing.text
    assert ("GET", "data/ab/pack") in gw.forwarded
    assert gw.refused == []


async def test_wrong_token_and_writes_outside_locks_are_refused(
    s3_iam_server: S3ServerHandle,  # noqa: F811
    primary: Side,
    counter: Counter,
) -> None:
    # Towards a listener that counts: a refused request never opens a connection.
    nowhere = S3Access(f"http://127.0.0.1:{counter.port}", "b", REGION, "k", "s")
    async with S3Gateway(nowhere, "", POLICY) as gw, httpx.AsyncClient(timeout=30) as http:
        other = "a" * 32
        for method, url in (
            ("GET", f"http://127.0.0.1:{gw.port}/{other}/config"),
            ("GET", f"http://127.0.0.1:{gw.port}/"),
            ("PUT", f"{_base(gw)}/config"),
            ("PUT", f"{_base(gw)}/data/ab/pack"),
            ("PUT", f"{_base(gw)}/locks/not-a-lock"),
            ("PUT", f"{_base(gw)}/{LOCK}?acl"),
            ("DELETE", f"{_base(gw)}/keys/" + "cd" * 32),
            ("POST", f"{_base(gw)}/{LOCK}?uploads"),
            ("GET", f"{_base(gw)}/?policy"),
            ("GET", f"{_base(gw)}/config?acl"),
            ("GET", f"{_base(gw)}/data/%2E%2E/%2E%2E/other-bucket/config"),
        ):
            r = await http.request(method, url, content=b"x" if method == "PUT" else None)
            assert r.status_code == 403, (method, url, r.text)
            assert "<Code>AccessDenied</Code>" in r.text
    assert counter.accepted == 0
    assert gw.forwarded == []
    assert len(gw.refused) == 11

    # Lock files may be written and removed (restic locks the source it reads), with
    # restic's aws-chunked body decoded.
    async with (
        S3Gateway(primary.access(s3_iam_server.url), "", POLICY) as gw,
        httpx.AsyncClient(timeout=30) as http,
    ):
        chunked = b"5;chunk-signature=00\r\nhello\r\n6;chunk-signature=11\r\n world\r\n"
        chunked += b"0;chunk-signature=22\r\n\r\n"
        r = await http.put(
            f"{_base(gw)}/{LOCK}",
            content=chunked,
            headers={
                "x-amz-content-sha256": "STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
                "Content-Encoding": "aws-chunked",
                "x-amz-decoded-content-length": "11",
            },
        )
        assert r.status_code == 200, r.text
        body = s3_iam_server.client().get_object(Bucket=primary.bucket, Key=LOCK)["Body"]
        assert body.read() == b"hello world"
        r = await http.delete(f"{_base(gw)}/{LOCK}")
        assert r.status_code == 204, r.text
    assert s3_iam_server.keys(primary.bucket) == []


def test_aws_chunked_decoding() -> None:
    assert _decode_aws_chunked(b"3;chunk-signature=x\r\nabc\r\n0;chunk-signature=y\r\n\r\n") == (
        b"abc"
    )
    with pytest.raises(Exception, match="malformed"):
        _decode_aws_chunked(b"9\r\nabc\r\n")


async def test_a_refused_primary_is_never_dialled(counter: Counter) -> None:
    refusals: list[str] = []
    # The address is allow-listed, but the port is one of the operator's own servers.
    policy = Policy(
        allow=POLICY.allow, services=(Service("a test server", "127.0.0.1", counter.port),)
    )
    access = S3Access(f"http://127.0.0.1:{counter.port}", "b", REGION, "k", "s")
    async with (
        S3Gateway(access, "", policy, on_refused=refusals.append) as gw,
        httpx.AsyncClient(timeout=30) as http,
    ):
        r = await http.get(f"{_base(gw)}/config")
    assert r.status_code == 403
    assert "a test server" in r.text
    assert refusals
    assert "a test server" in refusals[0]
    assert counter.accepted == 0
    assert gw.forwarded == []


def _backup(repo: Repository, folder: Path) -> None:
    env = {**os.environ, **repo.child_env()}
    subprocess.run(["restic", "backup", str(folder)], env=env, check=True, capture_output=True)


@pytest.fixture
def data(tmp_path: Path) -> Path:
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "a.bin").write_bytes(os.urandom(2 << 20))
    (folder / "b.txt").write_text("second copy\n")
    return folder


async def test_restic_copies_between_two_keys_through_the_gateway(
    s3_iam_server: S3ServerHandle,  # noqa: F811
    primary: Side,
    second: Side,
    data: Path,
    tmp_path: Path,
) -> None:
    restic = await Restic.detect(
        "restic", lock_wait_seconds=0, stall_seconds=5, egress=POLICY, grace=2
    )
    source = primary.repo(s3_iam_server.url, "primary password", tmp_path / "c1")
    copy = second.repo(s3_iam_server.url, "copy password", tmp_path / "c2")
    await restic.init(source)
    _backup(source, data)

    # The direct path (the copy's key for both repositories) cannot read the primary.
    with pytest.raises(ResticError):
        await restic.run(
            copy,
            ["init", "--copy-chunker-params"],
            extra_env={
                "RESTIC_FROM_REPOSITORY": source.url,
                "RESTIC_FROM_PASSWORD": "primary password",
            },
        )
    assert s3_iam_server.keys(second.bucket, "config") == []

    copy_id = await restic.init(copy, source)
    assert copy_id == await restic.repository_id(copy)
    assert (await restic.cat_config(copy))["chunker_polynomial"] == (
        await restic.cat_config(source)
    )["chunker_polynomial"]
    await restic.copy(copy, source)
    originals = await restic.snapshots(source)
    copies = await restic.snapshots(copy)
    assert len(originals) == len(copies) == 1
    assert copies[0].get("original") == originals[0]["id"]
    assert copies[0]["tree"] == originals[0]["tree"]
    # No lock left behind in the primary (restic removed its own through the gateway).
    assert s3_iam_server.keys(primary.bucket, "locks/") == []

    # The primary at a refused address: the copy fails with the policy's code.
    refused = Policy(
        allow=POLICY.allow,
        services=(Service("a test server", "127.0.0.1", s3_iam_server.port),),
    )
    strict = await Restic.detect("restic", lock_wait_seconds=0, stall_seconds=5, egress=refused)
    moved_copy = second.repo(s3_iam_server.moto_url, "copy password", tmp_path / "c3")
    with pytest.raises(ResticError) as failed:
        await strict.copy(moved_copy, source)
    assert failed.value.code == "address_refused"
    assert "a test server" in str(failed.value)
