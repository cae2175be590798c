"""Endpoint parsing, provider and region recognition, bucket naming rules (no network)."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

from app.errors import ValidationFailed
from app.integrations.s3 import errors as s3e
from app.targets import endpoint as ep
from app.targets import naming


@pytest.mark.parametrize(
    ("raw", "provider", "region", "path_style"),
    [
        # the guide's four examples
        ("s3.us-west-001.backblazeb2.com", ep.B2, "us-west-001", True),
        ("n6j2.fra1.idrivee2-95.com", ep.IDRIVE, "fra1", True),
        ("s3.amazonaws.com", ep.AWS, "us-east-1", False),
        ("s3.us-east-1.amazonaws.com", ep.AWS, "us-east-1", False),
        # the guide's OCI pattern
        ("abc.compat.objectstorage.us-1.oraclecloud.com", ep.OCI, "us-1", True),
        (
            "axaxnpcrorw5.compat.objectstorage.eu-frankfurt-1.oraclecloud.com",
            ep.OCI,
            "eu-frankfurt-1",
            True,
        ),
        ("s3-eu-west-1.amazonaws.com", ep.AWS, "eu-west-1", False),
        ("s3.dualstack.eu-central-1.amazonaws.com", ep.AWS, "eu-central-1", False),
        ("s3-fips.us-gov-west-1.amazonaws.com", ep.AWS, "us-gov-west-1", False),
        ("s3-external-1.amazonaws.com", ep.AWS, "us-east-1", False),
        ("s3.cn-north-1.amazonaws.com.cn", ep.AWS, "cn-north-1", False),
        ("s3.eu-central-003.backblazeb2.com", ep.B2, "eu-central-003", True),
        ("minio.example.com:9000", ep.GENERIC, None, True),
        ("127.0.0.1:9000", ep.GENERIC, None, True),
    ],
)
def test_accepted_endpoints_map_to_provider_and_region(
    raw: str, provider: str, region: str | None, path_style: bool
) -> None:
    parsed = ep.parse_endpoint(raw)
    assert (parsed.provider, parsed.region, parsed.path_style) == (provider, region, path_style)
    assert parsed.scheme == "https"
    assert parsed.netloc == raw


@pytest.mark.parametrize(
    "raw",
    [
        "  s3.amazonaws.com  ",
        "https://s3.amazonaws.com",
        "s3.amazonaws.com/",
        "HTTPS://S3.AmazonAWS.com:443/",
        "\ts3.amazonaws.com.\n",
        "https://s3.amazonaws.com//",
    ],
)
def test_endpoint_is_trimmed_and_normalised(raw: str) -> None:
    parsed = ep.parse_endpoint(raw)
    assert (parsed.scheme, parsed.netloc, parsed.url) == (
        "https",
        "s3.amazonaws.com",
        "https://s3.amazonaws.com",
    )


def test_plain_http_and_ipv6_and_port() -> None:
    parsed = ep.parse_endpoint("http://[::1]:9000/")
    assert (parsed.scheme, parsed.host, parsed.port, parsed.netloc) == (
        "http",
        "::1",
        9000,
        "[::1]:9000",
    )
    assert ep.parse_endpoint("http://127.0.0.1:80").port is None


@pytest.mark.parametrize(
    ("raw", "bucket", "endpoint"),
    [
        ("my-pod-backup-1.s3.amazonaws.com", "my-pod-backup-1", "s3.amazonaws.com"),
        ("s3.amazonaws.com/my-pod-backup-1", "my-pod-backup-1", "s3.amazonaws.com"),
        ("https://s3.amazonaws.com/my-pod-backup-1/", "my-pod-backup-1", "s3.amazonaws.com"),
        ("s3:https://s3.amazonaws.com/my-pod-backup-1", "my-pod-backup-1", "s3.amazonaws.com"),
        (
            "my.dotted.bucket.s3.eu-west-1.amazonaws.com",
            "my.dotted.bucket",
            "s3.eu-west-1.amazonaws.com",
        ),
        ("pods.s3-eu-west-1.amazonaws.com", "pods", "s3-eu-west-1.amazonaws.com"),
        ("b2-pod.s3.us-west-001.backblazeb2.com", "b2-pod", "s3.us-west-001.backblazeb2.com"),
        ("s3.us-west-001.backblazeb2.com/b2-pod", "b2-pod", "s3.us-west-001.backblazeb2.com"),
        ("pod-1.n6j2.fra1.idrivee2-95.com", "pod-1", "n6j2.fra1.idrivee2-95.com"),
        (
            "pod-1.abc.compat.objectstorage.us-1.oraclecloud.com",
            "pod-1",
            "abc.compat.objectstorage.us-1.oraclecloud.com",
        ),
        ("minio.example.com:9000/backups", "backups", "minio.example.com:9000"),
    ],
)
def test_bucket_in_endpoint_is_refused_naming_both(raw: str, bucket: str, endpoint: str) -> None:
    with pytest.raises(ValidationFailed) as caught:
        ep.parse_endpoint(raw)
    err = caught.value
    assert f"'{bucket}'" in err.message
    assert err.hint == f"use '{endpoint}' as the endpoint and '{bucket}' as the bucket"
    assert err.detail[0]["loc"] == ["body", "target", "endpoint"]


@pytest.mark.parametrize(
    ("raw", "in_hint"),
    [
        ("s3://my-pod-backup-1", "'my-pod-backup-1' in the bucket field"),
        ("f001.backblazeb2.com", "s3.us-west-001.backblazeb2.com"),
        (
            "objectstorage.us-ashburn-1.oraclecloud.com",
            "<namespace>.compat.objectstorage.us-ashburn-1.oraclecloud.com",
        ),
        ("ec2.us-east-1.amazonaws.com", "s3.amazonaws.com"),
        ("pods.s3-website-us-east-1.amazonaws.com", "s3.us-east-1.amazonaws.com"),
        ("ftp://files.example.com", "hostname alone"),
        ("files.example.com:99999", "1 to 65535"),
        ("key:secret@files.example.com", "access_key_id"),
        ("files.example.com?x=1", "hostname alone"),
        ("my host.example.com", "without spaces"),
        ("", "endpoint hostname"),
        ("bad_host!.example.com", "spelling"),
    ],
)
def test_other_refusals_have_a_precise_hint(raw: str, in_hint: str) -> None:
    with pytest.raises(ValidationFailed) as caught:
        ep.parse_endpoint(raw)
    assert in_hint in (caught.value.hint or "")


@pytest.mark.parametrize(
    "name",
    [
        "ab",
        "a" * 64,
        "My-Bucket",
        "my_bucket",
        "-bucket",
        "bucket-",
        "my..bucket",
        "my.-bucket",
        "192.168.1.1",
        "xn--bucket",
        "bucket-s3alias",
        "bucket/folder",
    ],
)
def test_bad_s3_bucket_names(name: str) -> None:
    with pytest.raises(ValidationFailed) as caught:
        naming.check_bucket(name, ep.AWS)
    assert caught.value.detail[0]["loc"] == ["body", "target", "bucket"]
    assert caught.value.hint


@pytest.mark.parametrize(
    ("name", "provider", "ok"),
    [
        ("my-pod-backup-1", ep.AWS, True),
        ("my.pod.backup", ep.GENERIC, True),
        (" padded-name ", ep.IDRIVE, True),
        ("short", ep.B2, False),
        ("B2-pod-backups", ep.B2, False),
        ("Pod-Backups-1", ep.B2, True),
        ("My_Bucket.v2", ep.OCI, True),
        ("My Bucket", ep.OCI, False),
    ],
)
def test_bucket_rules_per_provider(name: str, provider: str, ok: bool) -> None:
    if ok:
        assert naming.check_bucket(name, provider) == name.strip()
    else:
        with pytest.raises(ValidationFailed):
            naming.check_bucket(name, provider)


def _client_error(code: str, status: int, headers: dict[str, str]) -> ClientError:
    return ClientError(
        {
            "Error": {"Code": code, "Message": "x"},
            "ResponseMetadata": {"HTTPStatusCode": status, "HTTPHeaders": headers},
        },
        "HeadBucket",
    )


@pytest.mark.parametrize(
    ("code", "status", "headers", "kind", "region"),
    [
        ("301", 301, {"x-amz-bucket-region": "eu-central-1"}, s3e.WRONG_REGION, "eu-central-1"),
        (
            "PermanentRedirect",
            301,
            {"x-amz-bucket-region": "eu-west-2"},
            s3e.WRONG_REGION,
            "eu-west-2",
        ),
        ("InvalidAccessKeyId", 403, {}, s3e.INVALID_ACCESS_KEY, None),
        ("SignatureDoesNotMatch", 403, {}, s3e.SIGNATURE_MISMATCH, None),
        ("NoSuchBucket", 404, {}, s3e.NO_SUCH_BUCKET, None),
        ("403", 403, {}, s3e.ACCESS_DENIED, None),
    ],
)
def test_s3_error_classification(
    code: str, status: int, headers: dict[str, str], kind: str, region: str | None
) -> None:
    failure = s3e.classify(_client_error(code, status, headers))
    assert (failure.kind, failure.region) == (kind, region)


def test_region_from_authorization_header_malformed() -> None:
    exc = ClientError(
        {
            "Error": {
                "Code": "AuthorizationHeaderMalformed",
                "Message": "The authorization header is malformed; the region 'us-east-1' "
                "is wrong; expecting 'ap-southeast-2'",
            },
            "ResponseMetadata": {"HTTPStatusCode": 400, "HTTPHeaders": {}},
        },
        "ListObjectsV2",
    )
    failure = s3e.classify(exc)
    assert (failure.kind, failure.region) == (s3e.WRONG_REGION, "ap-southeast-2")
