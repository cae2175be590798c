"""The light probe of a saved target between runs: is it still usable by tonight's backup?

Cheap enough for thousands of pods every few hours: no restic, no key derivation, no
write. An S3 target costs a DNS lookup (through the outbound-address policy: a name now
pointing at a refused address is reported without any connection) and one request: a GET
of the repository's ``config`` object (a few hundred bytes), or, before the first backup
made a repository, a one-key listing. Its answer says at once whether the key is known,
the secret right, the bucket there and the repository in it. A local target costs a few
``stat`` calls. The checks and their messages are verification's own (``verify.py``).

A network failure is tried once more before it counts: one lost packet must not page an
owner at 3 a.m.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from pathlib import Path

from app.config import Settings
from app.integrations import s3
from app.integrations.s3 import errors as e
from app.kit import netpolicy
from app.kit.validators import under_roots
from app.models.shapes import LocalPlace, S3Place
from app.targets import endpoint as ep
from app.targets.checks import Checks, OutOfTime
from app.targets.resolve import ResolvedTarget
from app.targets.schemas import VerifyCheck
from app.targets.verify import access_failure, address_step, connect_failure

log = logging.getLogger(__name__)

S3_PROBE = ("address_policy", "connect", "credentials", "bucket", "repository")
LOCAL_PROBE = ("path", "repository")
CONFIG = "config"  # restic's repository config, at the top of the bucket or folder

# The failing check → the stable code an owner's panel can switch on.
CODES = {
    "address_policy": "address_refused",
    "connect": "unreachable",
    "credentials": "credentials_rejected",
    "bucket": "bucket_unavailable",
    "repository": "repository_missing",
    "path": "path_unavailable",
}
UNRESOLVABLE = "unresolvable"
TIMEOUT = "timeout"
ERROR = "probe_failed"

_GONE_HINT = (
    "the repository's config is gone from the target: the backups there can no longer be "
    "opened. If the bucket or folder was emptied or replaced, restore it from the provider's "
    "versioning or trash; if the pod should start afresh, delete and re-save its backup "
    "settings"
)


@dataclass(frozen=True)
class ProbeResult:
    ok: bool
    code: str | None = None  # None when ok
    check: str | None = None  # the check that failed
    reason: str | None = None
    hint: str | None = None
    checks: list[VerifyCheck] = field(default_factory=list)


async def probe_target(
    settings: Settings, resolved: ResolvedTarget, *, has_repository: bool
) -> ProbeResult:
    """Probe ``resolved`` (a saved target); ``has_repository``: a backup made the repository
    there, so its config must be present (before that, the first backup creates it)."""
    result = await _probe_once(settings, resolved, has_repository)
    if result.code in (CODES["connect"], TIMEOUT, UNRESOLVABLE):  # a resolver hiccup too
        result = await _probe_once(settings, resolved, has_repository)
    return result


async def _probe_once(
    settings: Settings, resolved: ResolvedTarget, has_repository: bool
) -> ProbeResult:
    target = resolved.target
    order = LOCAL_PROBE if isinstance(target, LocalPlace) else S3_PROBE
    c = Checks(order, settings.target_probe_timeout_seconds)
    timed_out = False
    try:
        if isinstance(target, LocalPlace):
            await _local(c, settings, target, has_repository)
        else:
            await _s3(c, settings, target, resolved.secret or "", has_repository)
    except OutOfTime:
        timed_out = True
        c.fail(
            c.current,
            f"no answer within the probe's time budget of {c.budget:.0f} s",
            "the endpoint answers very slowly or not at all; check the provider's status page",
        )
        c.stop("not run: the time budget was used up")
    except Exception:
        log.exception("target probe: unexpected failure during the %s check", c.current)
        c.crashed()
    items = c.result()
    failed = next((item for item in items if item.level == "error"), None)
    if failed is None:
        return ProbeResult(ok=True, checks=items)
    code = CODES.get(failed.name, ERROR)
    if timed_out:
        code = TIMEOUT
    elif failed.name == "address_policy" and "does not resolve" in failed.detail:
        code = UNRESOLVABLE
    return ProbeResult(
        ok=False,
        code=code,
        check=failed.name,
        reason=failed.detail,
        hint=failed.hint,
        checks=items,
    )


async def _s3(c: Checks, settings: Settings, t: S3Place, secret: str, has_repository: bool) -> None:
    endpoint = ep.parse_endpoint(f"{t.scheme}://{t.endpoint}")
    policy = netpolicy.Policy.from_settings(settings)
    if await address_step(c, policy, endpoint) is None:
        return
    access = s3.S3Access(
        endpoint_url=endpoint.url,
        bucket=t.bucket,
        region=t.signing_region or "us-east-1",
        access_key_id=t.access_key_id,
        secret_access_key=secret,
        path_style=t.path_style,
    )
    c.current = "connect"
    async with s3.open_bucket(
        access, policy, connect_timeout=c.timeout(5), read_timeout=c.timeout(10)
    ) as bucket:
        try:
            if has_repository:
                await c.within(bucket.get(CONFIG))
            else:
                await c.within(bucket.list_objects(max_keys=1))
        except e.S3Failure as f:
            if f.network:
                connect_failure(c, f)
                return
            c.ok("connect", f"'{endpoint.netloc}' answered")
            if f.kind == e.NOT_FOUND and has_repository:
                c.ok("credentials", "the provider accepted the access key and secret")
                c.ok("bucket", f"bucket '{t.bucket}' exists")
                c.fail("repository", f"bucket '{t.bucket}' no longer holds 'config'", _GONE_HINT)
                return
            access_failure(c, f, t.bucket, t)
            return
    c.ok("connect", f"'{endpoint.netloc}' answered")
    c.ok("credentials", "the provider accepted the access key and secret")
    c.ok("bucket", f"bucket '{t.bucket}' exists")
    _repository_ok(c, has_repository)


def _repository_ok(c: Checks, has_repository: bool) -> None:
    if has_repository:
        c.ok("repository", "the repository's config is present")
    else:
        c.ok("repository", "no repository yet: the first backup creates it")


def _local_state(path: Path) -> tuple[str, str] | None:
    """None when the repository's config is a file in ``path``; otherwise the failing check
    and what is wrong."""
    if not path.exists():
        return "path", f"the folder '{path}' no longer exists"
    if not path.is_dir():
        return "path", f"'{path}' is not a folder"
    if not (path / CONFIG).is_file():
        return "repository", f"the folder '{path}' no longer holds 'config'"
    return None


async def _local(c: Checks, settings: Settings, t: LocalPlace, has_repository: bool) -> None:
    path = Path(t.path)
    c.current = "path"
    if not under_roots(str(path), settings.local_roots):
        c.fail(
            "path",
            f"'{path}' is not under an allowed local root",
            "allowed roots: " + (", ".join(map(str, settings.local_roots)) or "none"),
        )
        c.stop("not run: the path is not allowed")
        return
    if not has_repository:
        c.ok("path", f"'{path}' is allowed")
        _repository_ok(c, has_repository)
        return
    problem = await c.within(asyncio.to_thread(_local_state, path))
    if problem is not None and problem[0] == "path":
        c.fail("path", problem[1], _GONE_HINT)
        c.stop("not run: the folder is not there")
        return
    c.ok("path", f"'{path}' is a folder")
    c.current = "repository"
    if problem is not None:
        c.fail("repository", problem[1], _GONE_HINT)
        return
    _repository_ok(c, has_repository)
