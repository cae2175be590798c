"""Verify an S3 target for real, from this service's own network, within a time budget.

Checks, in order: address_policy, connect (TCP and TLS), credentials, bucket (exists,
region), write (probe object with Content-MD5), read (compare), list (the probe's
prefix), delete (and confirm it is gone), key_scope, contents, versioning, object_lock;
in lock mode also maintenance_key (the second key deletes what the backup key may not).
Versioning and Object Lock are also returned as facts (``Immutability``) when read.
"""

from __future__ import annotations

import logging
from dataclasses import replace

from app.config import Settings
from app.integrations import s3
from app.integrations.restic import Restic
from app.integrations.s3 import errors as e
from app.kit import netpolicy
from app.models.shapes import S3Place
from app.targets import endpoint as ep
from app.targets import verify_steps as steps
from app.targets.checks import Checks, OutOfTime, VerifyInput
from app.targets.schemas import Immutability, VerifyCheck

log = logging.getLogger(__name__)

S3_CHECKS = (
    "address_policy",
    "connect",
    "credentials",
    "bucket",
    "write",
    "read",
    "list",
    "delete",
    "key_scope",
    "contents",
    "versioning",
    "object_lock",
)
LOCK_MODE_CHECKS = (*S3_CHECKS, "maintenance_key")


_CONNECT_HINTS = {
    e.CONNECT_REFUSED: "check the endpoint's hostname and port; is the S3 service running there?",
    e.CONNECT_TIMEOUT: (
        "nothing answered: check the endpoint, and that no firewall blocks this service"
    ),
    e.TLS: (
        "the server's certificate must be valid for the endpoint's hostname: use the "
        "provider's own S3 hostname (not an IP address or a CNAME of it)"
    ),
    e.CONNECTION: "check the endpoint's hostname and port",
}


async def verify_s3(
    settings: Settings,
    inp: VerifyInput,
    restic: Restic | None,
    found: list[Immutability] | None = None,
) -> tuple[bool, list[VerifyCheck]]:
    """The checks; ``found`` (when given) receives the bucket's versioning and Object Lock
    once both were read."""
    lock_mode = bool(inp.resolved.lock_days)
    checks = Checks(LOCK_MODE_CHECKS if lock_mode else S3_CHECKS, settings.verify_budget_seconds)
    try:
        await _run(checks, settings, inp, restic, found if found is not None else [])
    except OutOfTime:
        checks.out_of_time()
    except Exception:
        log.exception("verify: unexpected failure during the %s check", checks.current)
        checks.crashed()
    return checks.ok_overall, checks.result()


async def address_step(
    c: Checks, policy: netpolicy.Policy, endpoint: ep.Endpoint
) -> list[netpolicy.IPAddress] | None:
    """The address_policy check (a DNS lookup, no connection): the addresses that may be
    dialled, or None when the endpoint's address is refused or does not resolve."""
    c.current = "address_policy"
    try:
        addrs = await c.within(
            netpolicy.check_before_connect(policy, endpoint.host, endpoint.effective_port)
        )
    except netpolicy.OutboundAddressRefused as exc:
        c.fail("address_policy", exc.message, exc.hint)
        c.stop("not run: the endpoint's address is refused")
        return None
    except netpolicy.HostUnresolvable:
        c.fail(
            "address_policy",
            f"the name '{endpoint.host}' does not resolve",
            "check the endpoint's spelling; a hostname the provider just created can take a "
            "while to appear in DNS",
        )
        c.stop("not run: the endpoint's name does not resolve")
        return None
    if endpoint.scheme == "http" and not all(any(a in net for net in policy.allow) for a in addrs):
        c.fail(
            "address_policy",
            "plain http:// is only allowed towards hosts inside PODBACKUP_ALLOW_NETWORKS",
            f"use https://{endpoint.netloc}",
        )
        c.stop("not run: plain http is not allowed to this host")
        return None
    shown = ", ".join(str(a) for a in addrs[:4])
    c.ok("address_policy", f"'{endpoint.host}' resolves to {shown}, which may be reached")
    return addrs


def connect_failure(c: Checks, failure: e.S3Failure) -> None:
    """A network failure reaching the endpoint, as the connect check reports it."""
    c.fail("connect", failure.message, _CONNECT_HINTS.get(failure.kind))
    c.stop("not run: the endpoint cannot be reached")


async def _reach(c: Checks, policy: netpolicy.Policy, endpoint: ep.Endpoint) -> bool:
    """address_policy and connect; False when the endpoint cannot be reached."""
    addrs = await address_step(c, policy, endpoint)
    if addrs is None:
        return False
    c.current = "connect"
    tls = endpoint.scheme == "https"
    try:
        conn = await c.within(
            s3.probe(endpoint.host, endpoint.effective_port, addrs, tls=tls, timeout=c.timeout(5))
        )
    except e.S3Failure as failure:
        connect_failure(c, failure)
        return False
    where = f"{conn.address}:{conn.port}"
    if tls:
        c.ok("connect", f"connected to {where} with {conn.tls_version}; certificate valid")
    else:
        c.ok("connect", f"connected to {where} over plain http (development only)")
    return True


async def _run(
    c: Checks,
    settings: Settings,
    inp: VerifyInput,
    restic: Restic | None,
    found: list[Immutability],
) -> None:
    t = inp.resolved.target
    assert isinstance(t, S3Place), "local targets are verified by verify_local"
    endpoint = ep.parse_endpoint(f"{t.scheme}://{t.endpoint}")
    policy = netpolicy.Policy.from_settings(settings)
    if not await _reach(c, policy, endpoint):
        return
    access = s3.S3Access(
        endpoint_url=endpoint.url,
        bucket=t.bucket,
        region=t.signing_region or "us-east-1",
        access_key_id=t.access_key_id,
        secret_access_key=inp.resolved.secret or "",
        path_style=t.path_style,
    )
    async with s3.open_bucket(
        access, policy, connect_timeout=c.timeout(5), read_timeout=c.timeout(10)
    ) as bucket:
        if not await _bucket(c, bucket, t):
            return
        left = await steps.probe(c, bucket, lock_mode=bool(t.lock_days))
        await steps.key_scope(c, bucket)
        await steps.bucket_contents(c, bucket, inp, restic)
        versioning = await steps.versioning(c, bucket, t.provider, t.lock_days)
        lock = await steps.object_lock(c, bucket, t.provider, t.lock_days)
        found.append(
            Immutability(versioning=versioning, object_lock=lock, lock_mode=bool(t.lock_days))
        )
        if t.lock_days:
            await _maintenance(c, policy, access, bucket, inp, left)


async def _maintenance(
    c: Checks,
    policy: netpolicy.Policy,
    access: s3.S3Access,
    bucket: s3.Bucket,
    inp: VerifyInput,
    left: str | None,
) -> None:
    t = inp.resolved.target
    assert isinstance(t, S3Place)
    if not t.maintenance_access_key_id or not inp.resolved.maintenance_secret:
        await steps.maintenance_key(c, bucket, None, left)
        return
    other = replace(
        access,
        access_key_id=t.maintenance_access_key_id,
        secret_access_key=inp.resolved.maintenance_secret,
    )
    async with s3.open_bucket(
        other, policy, connect_timeout=c.timeout(5), read_timeout=c.timeout(10)
    ) as maintenance:
        await steps.maintenance_key(c, bucket, maintenance, left)


async def _bucket(c: Checks, bucket: s3.Bucket, t: S3Place) -> bool:
    """credentials and bucket; False when nothing more can be checked."""
    c.current = "credentials"
    name = bucket.name
    try:
        await c.within(bucket.list_objects(max_keys=1))
    except e.S3Failure as f:
        access_failure(c, f, name, t)
        return False
    c.ok("credentials", "the provider accepted the access key and secret")
    c.current = "bucket"
    try:
        region = await c.within(bucket.region())
    except e.S3Failure as f:
        if f.kind == e.WRONG_REGION:
            _bucket_failure(c, f, name, t)
            c.stop("not run: the bucket is in another region")
            return False
        region = None  # HeadBucket denied or unsupported: listing already proved the bucket
    signing = t.signing_region or "us-east-1"
    if region and region != signing and t.provider == ep.AWS:
        _bucket_failure(c, e.S3Failure(e.WRONG_REGION, "", region=region), name, t)
        c.stop("not run: the bucket is in another region")
        return False
    c.ok("bucket", f"bucket '{name}' exists" + (f" (region {region})" if region else ""))
    return True


def access_failure(c: Checks, f: e.S3Failure, name: str, t: S3Place) -> None:
    """A request on the bucket failed: the credentials and bucket checks say why (a network
    failure is the credentials check's, as the first request)."""
    if f.kind == e.INVALID_ACCESS_KEY:
        c.fail(
            "credentials",
            f"the provider does not know access key id '{t.access_key_id}'",
            "copy the access key id again from your provider; a deleted key must be "
            "replaced by a new one",
        )
    elif f.kind == e.SIGNATURE_MISMATCH:
        c.fail(
            "credentials",
            "the secret access key does not match the access key id",
            "enter the secret again (it is shown only once when the key is created; "
            "if lost, create a new key)",
        )
    elif f.network or f.kind == e.REDIRECT:
        c.fail("credentials", f.message, steps.hint_for("credentials", f))
    else:
        c.ok("credentials", "the provider accepted the access key and secret")
        _bucket_failure(c, f, name, t)
    c.stop("not run: the bucket cannot be used with this key")


def _bucket_failure(c: Checks, f: e.S3Failure, name: str, t: S3Place) -> None:
    if f.kind == e.NO_SUCH_BUCKET:
        c.fail(
            "bucket",
            f"bucket '{name}' does not exist at {t.endpoint}",
            "create the bucket in your provider's console first (names are exact), and "
            "check that the endpoint is the bucket's region",
        )
    elif f.kind == e.WRONG_REGION:
        right = f.region
        if right and t.provider == ep.AWS:
            hint = f"use the endpoint 's3.{right}.amazonaws.com' (or set region '{right}')"
        elif right:
            hint = f"set region '{right}'"
        else:
            hint = "use the endpoint of the bucket's region"
        c.fail(
            "bucket",
            f"bucket '{name}' is in another region"
            + (f": '{right}', not '{t.signing_region}'" if right else ""),
            hint,
        )
    elif f.kind == e.ACCESS_DENIED:
        c.fail(
            "bucket",
            f"the key may not list bucket '{name}' (access denied)",
            "give the key access to this bucket (s3:ListBucket and the object permissions), "
            "or check the bucket's name; see GET /v1/providers",
        )
    else:
        c.fail("bucket", f"bucket '{name}' could not be listed: {f.message}", None)
