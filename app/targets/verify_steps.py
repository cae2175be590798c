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
from app.targets.schemas import ObjectLockRead

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


async def probe(c: Checks, bucket: s3.Bucket, *, lock_mode: bool = False) -> str | None:
    """write, read, list, delete of a probe object. Returns the probe's key when it is
    left in the bucket (lock mode: the backup key may not delete it)."""
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
        return None
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
        if lock_mode and f.kind == e.ACCESS_DENIED:
            c.ok(
                "delete",
                "the backup key may not delete the probe, as lock mode wants (the "
                "maintenance key removes it)",
            )
            return key
        c.fail(
            "delete",
            f"could not delete the probe: {f.message}; the object '{key}' was left in the "
            "bucket (delete it in your provider's console)",
            hint_for("delete", f),
        )
        return key
    try:
        gone = not await c.within(bucket.exists(key))
    except e.S3Failure as f:
        c.fail("delete", f"deleted the probe, but could not confirm it: {f.message}", None)
        return None
    if gone and lock_mode:
        c.warn(
            "delete",
            "the backup key deleted the probe: in lock mode it should not be able to delete "
            "(a leaked key could then delete the backups)",
            "limit the backup key to reading, writing and listing (deletes only under "
            "'locks/'); GET /v1/providers shows the policy per provider",
        )
    elif gone:
        c.ok("delete", "deleted the probe and confirmed it is gone")
    else:
        c.fail("delete", f"the probe '{key}' is still there after deleting it", None)
        return key
    return None


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


_UNKNOWN_HINT = (
    "the provider does not implement this S3 call, or the key may not read the bucket's "
    "settings (fine for a key limited as advised): look in your provider's console"
)
_LIFECYCLE_HINT = (
    "turn versioning and object lock off for this bucket, or add a lifecycle rule that "
    "removes old (noncurrent) versions after a day"
)
_B2_LIFECYCLE_HINT = (
    "in Backblaze B2, open the bucket's Lifecycle Settings and choose 'Keep only the last version'"
)
VERSIONING_STATES = {"Enabled": "enabled", "Suspended": "suspended", None: "off"}


async def versioning(c: Checks, bucket: s3.Bucket, provider: str, lock_days: int | None) -> str:
    """The versioning check; returns enabled | suspended | off | unknown."""
    c.current = "versioning"
    try:
        state = VERSIONING_STATES.get(await c.within(bucket.versioning()), "unknown")
    except e.S3Failure as f:
        if f.network:
            c.fail("versioning", f.message, hint_for("versioning", f))
            return "unknown"
        c.record(
            "versioning",
            "ok",
            f"versioning is unknown: GetBucketVersioning was refused ({f.message})",
            _UNKNOWN_HINT,
        )
        return "unknown"
    lifecycle = _B2_LIFECYCLE_HINT if provider == ep.B2 else _LIFECYCLE_HINT
    if state == "enabled":
        said = (
            "versioning is enabled: a deleted or overwritten object stays recoverable as an "
            "old version, and old versions are billed until a lifecycle rule removes them; "
            "restic's deletes (forget, prune) only add delete markers"
        )
        if lock_days:
            c.ok("versioning", said)
        else:
            c.warn("versioning", said + ", so pruning old snapshots will not free space", lifecycle)
    elif state == "suspended":
        said = (
            "versioning is suspended: versions kept before still use space, and objects "
            "deleted from now on are gone for good"
        )
        c.warn(
            "versioning",
            said,
            "enable versioning again (with Object Lock) for lock mode" if lock_days else lifecycle,
        )
    elif lock_days:
        c.warn(
            "versioning",
            "versioning is off: an object deleted with a key that may delete is gone for good; "
            "lock mode relies on the backup key's missing delete permission alone",
            "enable versioning and Object Lock with a default retention of "
            f"{lock_days} day(s) on the bucket (most providers: only when creating it)",
        )
    else:
        c.ok("versioning", "versioning is off: a deleted object is gone, and pruning frees space")
    return state


async def object_lock(
    c: Checks, bucket: s3.Bucket, provider: str, lock_days: int | None
) -> ObjectLockRead:
    c.current = "object_lock"
    try:
        found = await c.within(bucket.lock_configuration())
    except e.S3Failure as f:
        if f.network:
            c.fail("object_lock", f.message, hint_for("object_lock", f))
        else:
            c.record(
                "object_lock",
                "ok",
                f"Object Lock is unknown: GetObjectLockConfiguration was refused ({f.message})",
                _UNKNOWN_HINT,
            )
        return ObjectLockRead(status="unknown")
    read = ObjectLockRead(
        status="enabled" if found.enabled else "off", mode=found.mode, days=found.days
    )
    if not found.enabled:
        if lock_days:
            c.warn(
                "object_lock",
                "Object Lock is off: nothing stops a key that may delete (the maintenance key, "
                "or a leaked one) from deleting the backups at once",
                f"for immutable backups create a bucket with Object Lock and a default "
                f"retention of {lock_days} day(s) (GOVERNANCE or COMPLIANCE)",
            )
        else:
            c.ok("object_lock", "Object Lock is off")
        return read
    if not found.days:
        c.warn(
            "object_lock",
            "Object Lock is enabled without a default retention: restic sets no retention "
            "on the objects it writes, so none of them is locked",
            f"set a default retention of {lock_days or 30} day(s) on the bucket",
        )
        return read
    locked = (
        f"Object Lock is enabled: every object restic writes is locked for {found.days} "
        f"day(s) ({found.mode or 'default'} mode); until then no key can delete it: "
        "restic's forget and prune only add delete markers and the locked versions stay "
        "(and are billed)"
    )
    if found.mode == "COMPLIANCE":
        locked += "; in COMPLIANCE mode not even the account's root can shorten it"
    if not lock_days:
        c.warn(
            "object_lock",
            locked + ", so pruning frees space only after the lock period",
            f"declare lock mode: target.immutable.lock_days = {found.days} with a maintenance "
            f"key, and retention.keep_within_days >= {found.days}",
        )
    elif found.days > lock_days:
        c.warn(
            "object_lock",
            locked + f"; the settings declare {lock_days} day(s) only, so pruning would "
            "target snapshots whose data is still locked",
            f"set target.immutable.lock_days and retention.keep_within_days to {found.days}",
        )
    else:
        c.ok(
            "object_lock",
            locked + f"; retention keeps snapshots {lock_days} day(s), so pruning never "
            "targets locked data",
        )
    return read


async def maintenance_key(
    c: Checks, bucket: s3.Bucket, maintenance: s3.Bucket | None, left: str | None
) -> None:
    """Lock mode: the maintenance key opens the bucket and may delete. It removes the
    probe the backup key could not (or a probe of its own)."""
    c.current = "maintenance_key"
    if maintenance is None:
        c.warn(
            "maintenance_key",
            "no maintenance key: prune jobs are refused (maintenance_key_missing), so the "
            "repository only grows" + (f"; the probe '{left}' stays in the bucket" if left else ""),
            "add target.immutable.maintenance_key: a key that may also delete (GET "
            "/v1/providers shows its policy)",
        )
        return
    key = left
    try:
        if key is None:
            key = f"{contents.PROBE_PREFIX}{uuid.uuid4().hex}/maintenance"
            await c.within(bucket.put(key, b"podbackup maintenance key probe\n"))
        await c.within(maintenance.delete(key))
        gone = not await c.within(maintenance.exists(key))
    except e.S3Failure as f:
        hint = {
            e.INVALID_ACCESS_KEY: "the provider does not know the maintenance key's id",
            e.SIGNATURE_MISMATCH: "enter the maintenance key's secret again",
            e.ACCESS_DENIED: "the maintenance key needs delete access (s3:DeleteObject) to "
            "the bucket's objects besides read and list",
        }.get(f.kind) or hint_for("delete", f)
        c.fail(
            "maintenance_key",
            f"the maintenance key could not delete a probe: {f.message}; prune would fail",
            hint,
        )
        return
    if gone:
        c.ok("maintenance_key", "the maintenance key deleted the probe: prune can run with it")
    else:
        c.fail("maintenance_key", f"the probe '{key}' is still there after deleting it", None)
