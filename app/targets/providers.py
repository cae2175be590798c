"""S3 provider presets: example endpoints and how to make a key limited to one bucket."""

from __future__ import annotations

import json
from typing import Any

from app.targets import endpoint as ep
from app.targets.schemas import KeySetup, LockModeSetup, ProviderPreset

BUCKET_PLACEHOLDER = "YOUR-BUCKET"

# What restic needs, and nothing more: list and locate the bucket; read, write and delete
# its objects. No ListAllMyBuckets, no CreateBucket.
AWS_ACTIONS_BUCKET = ["s3:ListBucket", "s3:GetBucketLocation"]
AWS_ACTIONS_OBJECTS = ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"]


def aws_policy(bucket: str = BUCKET_PLACEHOLDER) -> dict[str, Any]:
    """An IAM policy for a user whose key may use ``bucket`` only."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "PodBackupBucket",
                "Effect": "Allow",
                "Action": AWS_ACTIONS_BUCKET,
                "Resource": f"arn:aws:s3:::{bucket}",
            },
            {
                "Sid": "PodBackupObjects",
                "Effect": "Allow",
                "Action": AWS_ACTIONS_OBJECTS,
                "Resource": f"arn:aws:s3:::{bucket}/*",
            },
        ],
    }


def aws_backup_policy(bucket: str = BUCKET_PLACEHOLDER) -> dict[str, Any]:
    """Lock mode's backup key: read, write and list, delete only restic's lock files."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "PodBackupBucket",
                "Effect": "Allow",
                "Action": AWS_ACTIONS_BUCKET,
                "Resource": f"arn:aws:s3:::{bucket}",
            },
            {
                "Sid": "PodBackupWrite",
                "Effect": "Allow",
                "Action": ["s3:GetObject", "s3:PutObject"],
                "Resource": f"arn:aws:s3:::{bucket}/*",
            },
            {
                "Sid": "ResticLockFiles",
                "Effect": "Allow",
                "Action": ["s3:DeleteObject"],
                "Resource": f"arn:aws:s3:::{bucket}/locks/*",
            },
        ],
    }


def aws_maintenance_policy(bucket: str = BUCKET_PLACEHOLDER) -> dict[str, Any]:
    """Lock mode's maintenance key: the full restic set (it also deletes)."""
    return aws_policy(bucket)


LOCK_BUCKET = (
    "Create the bucket with Object Lock enabled (this turns versioning on) and a default "
    "retention of N days, GOVERNANCE or COMPLIANCE mode; declare the same N as "
    "target.immutable.lock_days and keep retention.keep_within_days >= N."
)
LOCK_MAINTENANCE = (
    "Used only by prune jobs (forget + prune); store it nowhere else. Without it prune "
    "is refused (maintenance_key_missing) and the repository only grows."
)


def _lock_mode(provider: str, name: str) -> LockModeSetup:
    if provider == ep.B2:
        return LockModeSetup(
            bucket=[
                "Create the bucket with 'Object Lock' enabled, then set its default "
                "retention (Governance or Compliance) to N days. Keep the lifecycle rule "
                "'Keep only the last version' off: locked versions cannot go early anyway.",
            ],
            backup_key=[
                f"Application key for bucket '{name}' with the capabilities listBuckets, "
                "listFiles, readFiles, writeFiles and no deleteFiles (created with the B2 "
                "CLI or API: the web console offers Read and Write as a whole). Whether "
                "such a key may hide restic's lock files is B2's rule, not restic's: "
                "verify's delete check shows what this key may do.",
            ],
            maintenance_key=[
                f"A second application key for '{name}' with Read and Write access "
                "(including deleteFiles). " + LOCK_MAINTENANCE,
            ],
        )
    if provider == ep.OCI:
        return LockModeSetup(
            bucket=[
                "Add a time-bound retention rule of N days to the bucket (Retention Rules; "
                "such a rule can be locked after a 14-day delay). It stands in for Object "
                "Lock, which OCI's S3 API does not report: verify shows object_lock as "
                "unknown or off there.",
            ],
            backup_key=[
                "Group policy: 'Allow group <backup-group> to read buckets in compartment "
                "<c>' and 'Allow group <backup-group> to manage objects in compartment <c> "
                f"where all {{target.bucket.name='{name}', request.permission != "
                "'OBJECT_DELETE'}' (restic then cannot remove its lock files: remove "
                "stale ones with the maintenance key).",
            ],
            maintenance_key=[
                "Another user in a group with 'manage objects' on the bucket (delete "
                "included), with its own Customer Secret Key. " + LOCK_MAINTENANCE,
            ],
        )
    if provider == ep.IDRIVE:
        return LockModeSetup(
            bucket=[
                "Create the bucket with 'Object Lock' enabled (versioning turns on) and a "
                "default retention of N days.",
            ],
            backup_key=[
                f"Access key for bucket '{name}' only, with the narrowest permission that "
                "still writes; if the console offers no write-without-delete, lock mode "
                "there rests on Object Lock (while objects are locked, deletes only add "
                "delete markers). verify's delete check shows what the key may do.",
            ],
            maintenance_key=[
                f"A second access key for '{name}' with Read, Write and Delete. "
                + LOCK_MAINTENANCE,
            ],
        )
    policy = aws_backup_policy(name)
    return LockModeSetup(
        bucket=[LOCK_BUCKET],
        backup_key=[
            "An IAM user with the backup policy below: read, write and list, and delete "
            "only under locks/ (restic removes its own lock files after each run).",
        ],
        maintenance_key=[
            "A second IAM user with the maintenance policy below (the usual one, with "
            "s3:DeleteObject). " + LOCK_MAINTENANCE,
        ],
        backup_policy=policy,
        maintenance_policy=aws_maintenance_policy(name),
    )


ONE_BUCKET_ADVICE = "Please be sure to limit the key to this one bucket only."


def presets(bucket: str | None = None) -> list[ProviderPreset]:
    name = bucket or BUCKET_PLACEHOLDER
    policy = aws_policy(name)
    items = [
        ProviderPreset(
            id=ep.B2,
            name=ep.PROVIDER_NAMES[ep.B2],
            endpoint_pattern="s3.<region>.backblazeb2.com",
            example_endpoints=[
                "s3.us-west-001.backblazeb2.com",
                "s3.eu-central-003.backblazeb2.com",
            ],
            where_to_find="shown as 'Endpoint' under Buckets",
            region_from_endpoint=True,
            path_style=True,
            bucket_rules="6 to 63 letters, digits and '-'; globally unique",
            key_setup=KeySetup(
                steps=[
                    "Under Application Keys choose 'Add a New Application Key'.",
                    f"Under 'Allow access to Bucket(s)' select the bucket '{name}' (not 'All').",
                    "Type of access: Read and Write. Save the keyID and applicationKey: the "
                    "applicationKey is shown only once.",
                ],
            ),
            notes=[
                "B2 keeps every version of a file by default: set the bucket's Lifecycle "
                "Settings to 'Keep only the last version', or pruning frees no space.",
            ],
        ),
        ProviderPreset(
            id=ep.IDRIVE,
            name=ep.PROVIDER_NAMES[ep.IDRIVE],
            endpoint_pattern="<id>.<region>.idrivee2-<n>.com",
            example_endpoints=["n6j2.fra1.idrivee2-95.com"],
            where_to_find="shown as 'Region endpoint' under Dashboard (unique to your account)",
            region_from_endpoint=True,
            path_style=True,
            bucket_rules="3 to 63 lower-case letters, digits, '.' and '-'",
            key_setup=KeySetup(
                steps=[
                    "Under Access Keys choose 'Create Access Key'.",
                    f"Pick the region and then the bucket '{name}' only (not all buckets), "
                    "with read and write permission.",
                    "Save the Access Key ID and Secret Access Key: the secret is shown once.",
                ],
            ),
            notes=[
                "Leave versioning and object locking off for this bucket, unless you use "
                "lock mode (see lock_mode).",
            ],
        ),
        ProviderPreset(
            id=ep.AWS,
            name=ep.PROVIDER_NAMES[ep.AWS],
            endpoint_pattern="s3.amazonaws.com or s3.<region>.amazonaws.com",
            example_endpoints=["s3.amazonaws.com", "s3.us-east-1.amazonaws.com"],
            where_to_find="any regional endpoint from the AWS S3 endpoint list",
            region_from_endpoint=True,
            path_style=False,
            bucket_rules="3 to 63 lower-case letters, digits, '.' and '-'",
            key_setup=KeySetup(
                steps=[
                    "In the IAM console create a user for these backups (no console access).",
                    "Create a policy with the JSON below (it allows this one bucket only) "
                    "and attach it to the user.",
                    "Under the user's Security credentials create an Access Key "
                    "('Application running outside AWS') and save both parts.",
                ],
                iam_policy=policy,
                iam_policy_text=json.dumps(policy, indent=2),
            ),
            notes=[
                "Leave bucket versioning and Object Lock off, or pruning frees no space "
                "(unless you use lock mode: see lock_mode).",
            ],
        ),
        ProviderPreset(
            id=ep.OCI,
            name=ep.PROVIDER_NAMES[ep.OCI],
            endpoint_pattern="<namespace>.compat.objectstorage.<region>.oraclecloud.com",
            example_endpoints=["abc.compat.objectstorage.us-1.oraclecloud.com"],
            where_to_find="your Object Storage namespace (Tenancy details) and region",
            region_from_endpoint=True,
            path_style=True,
            bucket_rules="letters, digits, '-', '_' and '.', exactly as the console shows it",
            key_setup=KeySetup(
                steps=[
                    "Create a group for the backup user and a policy such as "
                    f'"Allow group <group> to manage objects in compartment <compartment> '
                    f"where target.bucket.name='{name}'\" plus 'read buckets' for it.",
                    "Go to Identity & Security > Users > <user> > Customer Secret Keys and "
                    "click 'Generate Secret Key'.",
                    "Save the Access Key and the Secret Key: the secret is shown once.",
                ],
            ),
            notes=["OCI answers S3 requests path-style only; the service does that for you."],
        ),
        ProviderPreset(
            id=ep.GENERIC,
            name=ep.PROVIDER_NAMES[ep.GENERIC],
            endpoint_pattern="<host>[:port]",
            example_endpoints=["minio.example.com", "minio.example.com:9000"],
            where_to_find="the server's S3 API address (not its web console)",
            region_from_endpoint=False,
            path_style=True,
            bucket_rules="3 to 63 lower-case letters, digits, '.' and '-'",
            key_setup=KeySetup(
                steps=[
                    "Create a user or service account for these backups.",
                    "Attach a policy that allows s3:ListBucket and s3:GetBucketLocation on "
                    f"'{name}' and s3:GetObject, s3:PutObject, s3:DeleteObject on '{name}/*'.",
                    "Create its access key and secret.",
                ],
                iam_policy=policy,
                iam_policy_text=json.dumps(policy, indent=2),
            ),
            notes=["Plain http:// is accepted only for development hosts the operator allows."],
        ),
    ]
    for item in items:
        item.lock_mode = _lock_mode(item.id, name)
    return items
