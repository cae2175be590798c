"""The verification steps after the bucket is known to be reachable: a probe object's
round trip, the key's scope, what the bucket holds, and versioning / object lock."""

from __future__ import annotations

import os
import uuid

from app.integrations import s3
from app.integrations.restic import Restic
from app.integrations.s3 import errors as e
from app.targets import contents
from app.targets import endpoint as ep
from app.targets.checks import Checks, VerifyInput
from app.targets.providers import ONE_BUCKET_ADVICE
from app.targets.repository import make_repository

_DENIED_HINTS = {
    "write": "the key needs write access (s3:PutObject) to the bucket's objects",
    "read": "the key needs read access (s3:GetObject) to the bucket's objects",
    "list": "the key needs s3:ListBucket on the bucket",
    "delete": (
        "the key needs delete access (s3:DeleteObject): restic removes its lock files after "
        "every run and deletes data when pruning"
    ),
}


def hint_for(check: str, failure: e.S3Failure) -> str | None:
    if failure.kind == e.ACCESS_DENIED:
        return _DENIED_HINTS.get(check)
    if failure.kind == e.REDIRECT:
        return (
            "give the endpoint the provider answers at directly (for AWS, the bucket's "
            "regional endpoint); redirects are never followed"
        )
    if failure.network:
        return "the endpoint stopped answering during the verification; try again"
    return None


async def probe(c: Checks, bucket: s3.Bucket) -> None:
    prefix = f"{contents.PROBE_PREFIX}{uuid.uuid4().hex}/"
    key = f"{prefix}probe"
    data = b"podbackup verification probe; safe to delete\n" + os.urandom(1024)
    c.current = "write"
    try:
        await c.within(bucket.put(key, data))
    except e.S3Failure as f:
        detail = f"could not write a probe object: {f.message}"
        if f.kind == e.BAD_DIGEST:
            detail = "the provider refused the probe: its Content-MD5 did not match the data"
        c.fail("write", detail, hint_for("write", f))
        c.skip(("read", "list", "delete"), "not run: the probe object could not be written")
        return
    c.ok("write", f"wrote a probe object of {len(data)} bytes ('{key}'), Content-MD5 checked")
    c.current = "read"
    try:
        got = await c.within(bucket.get(key))
        if got == data:
            c.ok("read", "read the probe back: identical")
        else:
            c.fail(
                "read",
                f"read back {len(got)} bytes that differ from the {len(data)} written",
                "the provider or a proxy alters data; restic would detect it, but backups "
                "there are not safe",
            )
    except e.S3Failure as f:
        c.fail("read", f"could not read the probe back: {f.message}", hint_for("read", f))
    c.current = "list"
    try:
        listing = await c.within(bucket.list_objects(prefix=prefix, max_keys=10))
        if key in listing.keys:
            c.ok("list", f"listing '{prefix}' shows the probe")
        else:
            c.fail("list", f"listing '{prefix}' does not show the probe just written", None)
    except e.S3Failure as f:
        c.fail("list", f"could not list the bucket: {f.message}", hint_for("list", f))
    c.current = "delete"
    try:
        await c.within(bucket.delete(key))
    except e.S3Failure as f:
        c.fail(
            "delete",
            f"could not delete the probe: {f.message}; the object '{key}' was left in the "
            "bucket (delete it in your provider's console)",
            hint_for("delete", f),
        )
        return
    try:
        gone = not await c.within(bucket.exists(key))
    except e.S3Failure as f:
        c.fail("delete", f"deleted the probe, but could not confirm it: {f.message}", None)
        return
    if gone:
        c.ok("delete", "deleted the probe and confirmed it is gone")
    else:
        c.fail("delete", f"the probe '{key}' is still there after deleting it", None)


async def key_scope(c: Checks, bucket: s3.Bucket) -> None:
    c.current = "key_scope"
    try:
        names = await c.within(bucket.list_buckets())
    except e.S3Failure as f:
        if f.network:
            c.fail("key_scope", f.message, hint_for("key_scope", f))
        else:
            c.ok("key_scope", "the key cannot list the account's buckets")
        return
    others = [n for n in names if n != bucket.name]
    if not others:
        c.ok("key_scope", "the key sees this bucket only")
        return
    reachable = None
    for other in others[:3]:
        try:
            await c.within(bucket.list_objects(bucket=other, max_keys=1))
        except e.S3Failure:
            continue
        reachable = other
        break
    detail = f"the key can list {len(others)} other bucket(s)"
    if reachable:
        detail += f" and read bucket '{reachable}'"
    c.warn(
        "key_scope",
        detail,
        f'The guide advises: "{ONE_BUCKET_ADVICE}" This service never needs your other '
        "buckets nor permission to create buckets; GET /v1/providers shows how to make a "
        "key for one bucket.",
    )


async def bucket_contents(
    c: Checks, bucket: s3.Bucket, inp: VerifyInput, restic: Restic | None
) -> None:
    c.current = "contents"
    try:
        listing = await c.within(bucket.list_objects(max_keys=200))
    except e.S3Failure as f:
        c.fail("contents", f"could not list the bucket: {f.message}", hint_for("list", f))
        return
    kind, others = contents.classify_keys(listing.keys)
    repo = None
    if inp.password is not None:
        repo = make_repository(inp.resolved, inp.password, inp.cache_dir)
    finding = await c.within(
        contents.judge(
            kind,
            others,
            where=f"bucket '{bucket.name}'",
            restic=restic,
            repo=repo,
            recorded_id=inp.recorded_id,
            recorded_snapshots=inp.recorded_snapshots,
            timeout=c.left(),
        )
    )
    c.record("contents", finding.level, finding.detail, finding.hint)


async def versioning(c: Checks, bucket: s3.Bucket, provider: str) -> None:
    c.current = "versioning"
    problems: list[str] = []
    unknown = False
    try:
        status = await c.within(bucket.versioning())
        if status == "Enabled":
            problems.append("versioning is enabled")
        elif status == "Suspended":
            problems.append("versioning is suspended (versions kept before still use space)")
    except e.S3Failure:
        unknown = True
    try:
        if await c.within(bucket.object_lock()):
            problems.append("object lock is enabled")
    except e.S3Failure:
        unknown = True
    if problems:
        hint = (
            "turn versioning and object lock off for this bucket, or add a lifecycle rule "
            "that removes old (noncurrent) versions after a day"
        )
        if provider == ep.B2:
            hint = (
                "in Backblaze B2, open the bucket's Lifecycle Settings and choose "
                "'Keep only the last version'"
            )
        c.warn(
            "versioning",
            "; ".join(problems) + ": pruning old snapshots will not free space, since the "
            "provider keeps deleted files",
            hint,
        )
    elif unknown:
        c.ok(
            "versioning",
            "versioning and object lock could not be read with this key (fine for a key "
            "limited as advised); make sure both are off in your provider's console",
        )
    else:
        c.ok("versioning", "versioning and object lock are off")
