"""S3: the only code that opens S3 connections (aiobotocore), plus a bare connect probe."""

from app.integrations.s3.client import (
    Bucket,
    Listing,
    ObjectLock,
    ObjectReader,
    S3Access,
    open_bucket,
)
from app.integrations.s3.connect import Connected, probe
from app.integrations.s3.errors import S3Failure

__all__ = [
    "Bucket",
    "Connected",
    "Listing",
    "ObjectLock",
    "ObjectReader",
    "S3Access",
    "S3Failure",
    "open_bucket",
    "probe",
]
