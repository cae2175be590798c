"""Bucket and region names: S3's rules, and the providers' own where they differ."""

from __future__ import annotations

import re

from app.errors import ValidationFailed
from app.kit.netpolicy import parse_ip
from app.targets.endpoint import B2, OCI

_S3_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_B2_BUCKET = re.compile(r"^[A-Za-z0-9-]{6,63}$")
_OCI_BUCKET = re.compile(r"^[A-Za-z0-9._-]{1,256}$")
_S3_PREFIXES = ("xn--", "sthree-", "amzn-s3-demo-")
_S3_SUFFIXES = ("-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3")


def check_bucket(name: str, provider: str) -> str:
    """``name`` trimmed, or ValidationFailed naming the rule it breaks."""
    bucket = name.strip()

    def bad(why: str, hint: str) -> ValidationFailed:
        return ValidationFailed("target.bucket", f"bucket name '{bucket}' {why}", hint=hint)

    if not bucket:
        raise ValidationFailed("target.bucket", "the bucket name is empty", hint="enter it")
    if "/" in bucket or ":" in bucket:
        raise bad(
            "contains '/' or ':'",
            "enter the bucket name alone; a folder inside a bucket is not supported "
            "(one bucket per pod)",
        )
    if provider == OCI:
        if not _OCI_BUCKET.match(bucket):
            raise bad(
                "is not a valid Oracle bucket name",
                "use letters, digits, '-', '_' and '.', exactly as the OCI console shows it",
            )
        return bucket
    if provider == B2:
        if not _B2_BUCKET.match(bucket):
            raise bad("is not a valid B2 bucket name", "use 6 to 63 letters, digits and '-'")
        if bucket.lower().startswith("b2-"):
            raise bad("starts with 'b2-', which B2 reserves", "choose another name")
        return bucket
    rules = "S3 bucket names are 3 to 63 lower-case letters, digits, '.' and '-'"
    if len(bucket) < 3 or len(bucket) > 63:
        raise bad(f"has {len(bucket)} characters", rules)
    if bucket != bucket.lower():
        raise bad("contains upper-case letters", rules)
    if not _S3_BUCKET.match(bucket):
        raise bad(
            "has characters S3 does not allow, or does not start and end with a letter or digit",
            rules,
        )
    if ".." in bucket or ".-" in bucket or "-." in bucket:
        raise bad("has '..' or a '.' next to a '-'", rules)
    if parse_ip(bucket) is not None:
        raise bad("looks like an IP address", rules)
    if bucket.startswith(_S3_PREFIXES) or bucket.endswith(_S3_SUFFIXES):
        raise bad("uses a prefix or suffix S3 reserves", rules)
    return bucket


_REGION = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")


def check_region(region: str) -> str:
    value = region.strip().lower()
    if not value or len(value) > 40 or not _REGION.match(value):
        raise ValidationFailed(
            "target.region",
            f"'{region}' is not a region name",
            hint="leave region empty to use the one the endpoint names, or e.g. 'eu-central-1'",
        )
    return value
