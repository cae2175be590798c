"""Targets as typed or stored, validated and normalised into what BackupSettings keeps.

Secret rule: ``secret_access_key`` is write-only. Omitted on update, the stored one is
kept as long as ``access_key_id`` stays the same (a secret belongs to its key id); a new
key id needs its secret. Endpoint or bucket changes keep it (the same key may open the
new bucket; verification tells).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from app.auth.dependencies import Principal
from app.config import Settings
from app.errors import Forbidden, ValidationFailed
from app.kit import netpolicy
from app.kit.crypto import Keyring
from app.kit.validators import under_roots
from app.models import BackupSettings
from app.models.encrypted import (
    COPY_REPO_PASSWORD,
    COPY_TARGET_SECRET,
    MAINTENANCE_SECRET,
    REPO_PASSWORD,
    TARGET_SECRET,
    EncryptedColumn,
)
from app.models.settings import TargetRow
from app.models.shapes import LocalPlace, S3Place, TargetPlace
from app.targets import endpoint as ep
from app.targets import naming
from app.targets.schemas import Immutable, LocalTarget, S3Target

DEFAULT_SIGNING_REGION = "us-east-1"


@dataclass(frozen=True)
class ResolvedTarget:
    """A validated target: what ``BackupSettings.target`` stores, and its secret."""

    kind: str  # s3 | local
    target: TargetPlace
    secret: str | None = field(default=None, repr=False)
    # Lock mode's maintenance key secret (its id is in the target), when there is one.
    maintenance_secret: str | None = field(default=None, repr=False)

    @property
    def lock_days(self) -> int | None:
        return self.target.lock_days if isinstance(self.target, S3Place) else None

    @property
    def identity(self) -> tuple[str, ...]:
        return target_identity(self.kind, self.target)


def target_identity(kind: str, target: TargetPlace) -> tuple[str, ...]:
    """What names the repository's place: changing it means another repository."""
    if isinstance(target, LocalPlace):
        return ("local", target.path)
    return ("s3", target.scheme, target.endpoint, target.bucket)


def repository_url(kind: str, target: TargetPlace) -> str:
    """restic's repository string: ``s3:https://<endpoint>/<bucket>`` or the local path."""
    if isinstance(target, LocalPlace):
        return target.path
    return f"s3:{target.scheme}://{target.endpoint}/{target.bucket}"


async def _check_plain_http(settings: Settings, endpoint: ep.Endpoint) -> None:
    """Plain http only towards hosts inside the operator's allow-listed networks."""
    if endpoint.scheme != "http":
        return
    refusal = ValidationFailed(
        ep.FIELD,
        f"plain http:// is only allowed for development hosts inside PODBACKUP_ALLOW_NETWORKS; "
        f"'{endpoint.host}' is not one",
        hint=f"use https://{endpoint.netloc} (or just {endpoint.netloc})",
    )
    policy = netpolicy.Policy.from_settings(settings)
    try:
        addrs = await netpolicy.resolve(endpoint.host)
    except netpolicy.HostUnresolvable:
        raise refusal from None
    if not policy.allow or not all(any(a in net for net in policy.allow) for a in addrs):
        raise refusal


async def check_endpoint_now(settings: Settings, kind: str, target: TargetPlace) -> None:
    """The outbound-address policy for a stored S3 endpoint, right before restic talks to
    it (saving checked it once; a name may have been re-pointed since, or the operator's
    allow-list narrowed). A name that does not resolve is left to restic to report.

    restic resolves the name again itself: its connections go through the worker's egress
    proxy (app/integrations/egress.py), which checks the address it actually dials; this
    early check gives the job a clear failure before restic starts."""
    if kind != "s3" or not isinstance(target, S3Place):
        return
    endpoint = ep.parse_endpoint(f"{target.scheme}://{target.endpoint}")
    policy = netpolicy.Policy.from_settings(settings)
    try:
        await netpolicy.check_before_connect(
            policy, endpoint.host, endpoint.effective_port, field=ep.FIELD
        )
    except netpolicy.HostUnresolvable:
        return


def _signing_region(provider: str, inferred: str | None, given: str | None) -> str:
    if given:
        return given
    # iDrive's hostnames name a location code ("fra1"), not a signing region.
    if inferred and provider in (ep.AWS, ep.B2, ep.OCI):
        return inferred
    return DEFAULT_SIGNING_REGION


def secret_column(row: TargetRow) -> EncryptedColumn:
    """Where ``row``'s S3 secret is sealed: the owner's target or the second copy's."""
    return TARGET_SECRET if isinstance(row, BackupSettings) else COPY_TARGET_SECRET


def password_column(row: TargetRow) -> EncryptedColumn:
    return REPO_PASSWORD if isinstance(row, BackupSettings) else COPY_REPO_PASSWORD


async def _resolve_s3(
    settings: Settings, keyring: Keyring, body: S3Target, stored: TargetRow | None
) -> ResolvedTarget:
    endpoint = ep.parse_endpoint(body.endpoint)
    bucket = naming.check_bucket(body.bucket, endpoint.provider)
    given = naming.check_region(body.region) if body.region else None
    global_aws = endpoint.provider == ep.AWS and endpoint.host.startswith("s3.amazonaws.com")
    if (
        given
        and endpoint.region
        and given != endpoint.region
        and endpoint.provider in (ep.AWS, ep.B2, ep.OCI)
        and not global_aws
    ):
        raise ValidationFailed(
            "target.region",
            f"region '{given}' contradicts the endpoint, which is in '{endpoint.region}'",
            hint="leave region empty to use the endpoint's region",
        )
    await _check_plain_http(settings, endpoint)
    policy = netpolicy.Policy.from_settings(settings)
    await netpolicy.check_on_save(policy, ep.FIELD, endpoint.host, endpoint.effective_port)
    access_key_id = body.access_key_id.strip()
    secret = _secret(keyring, body, stored, access_key_id)
    lock_days, maintenance_id, maintenance_secret = None, None, None
    # Lock mode is a setting of the owner's target (a second copy has none).
    owner_row = stored if isinstance(stored, BackupSettings) else None
    kept = owner_row.target if owner_row is not None else None
    if "immutable" not in body.model_fields_set and isinstance(kept, S3Place) and kept.lock_days:
        # Omitted: the stored lock mode stays (a client that does not know the field must
        # not turn it off); an explicit null does.
        assert owner_row is not None
        lock_days, maintenance_id = kept.lock_days, kept.maintenance_access_key_id
        if owner_row.maintenance_secret:
            maintenance_secret = keyring.decrypt(
                owner_row.maintenance_secret, MAINTENANCE_SECRET.context_of(owner_row)
            )
    elif body.immutable is not None:
        lock_days = body.immutable.lock_days
        maintenance_id, maintenance_secret = _maintenance(keyring, body.immutable, owner_row)
        if maintenance_id == access_key_id:
            raise ValidationFailed(
                "target.immutable.maintenance_key.access_key_id",
                "the maintenance key must be another key than the backup key",
                hint="create a second key that may delete; the backup key must not",
            )
    # Virtual-hosted style for AWS, as restic does; a dotted bucket breaks the wildcard
    # certificate there, so it goes path-style too.
    path_style = endpoint.path_style or "." in bucket
    target = S3Place(
        endpoint=endpoint.netloc,
        scheme=endpoint.scheme,
        bucket=bucket,
        region=given or endpoint.region or DEFAULT_SIGNING_REGION,
        signing_region=_signing_region(endpoint.provider, endpoint.region, given),
        region_given=given is not None,
        provider=endpoint.provider,
        path_style=path_style,
        access_key_id=access_key_id,
        lock_days=lock_days,
        maintenance_access_key_id=maintenance_id,
    )
    return ResolvedTarget("s3", target, secret, maintenance_secret)


def _maintenance(
    keyring: Keyring, body: Immutable, stored: BackupSettings | None
) -> tuple[str | None, str | None]:
    """The maintenance key's id and secret; an omitted secret is the stored one while the
    key id stays the same (as for the backup key)."""
    key = body.maintenance_key
    if key is None:
        return None, None
    key_id = key.access_key_id.strip()
    field_name = "target.immutable.maintenance_key.secret_access_key"
    if key.secret_access_key is not None:
        value = key.secret_access_key.get_secret_value().strip()
        if not value:
            raise ValidationFailed(
                field_name,
                "the maintenance key's secret_access_key is empty",
                hint="enter the key's secret, or omit the field to keep the stored one",
            )
        return key_id, value
    kept = stored.target if stored is not None else None
    if (
        stored is None
        or not stored.maintenance_secret
        or not isinstance(kept, S3Place)
        or kept.maintenance_access_key_id != key_id
    ):
        raise ValidationFailed(
            field_name,
            "the maintenance key needs its secret_access_key",
            hint="enter the secret that belongs to the maintenance key's access_key_id",
        )
    return key_id, keyring.decrypt(stored.maintenance_secret, MAINTENANCE_SECRET.context_of(stored))


def _secret(keyring: Keyring, body: S3Target, stored: TargetRow | None, access_key_id: str) -> str:
    if body.secret_access_key is not None:
        value = body.secret_access_key.get_secret_value().strip()
        if not value:
            raise ValidationFailed(
                "target.secret_access_key",
                "secret_access_key is empty",
                hint="enter the key's secret, or omit the field to keep the stored one",
            )
        return value
    if stored is None or stored.target_kind != "s3" or not stored.target_secret:
        raise ValidationFailed(
            "target.secret_access_key",
            "secret_access_key is required",
            hint="enter the secret that belongs to the access key",
        )
    if not isinstance(stored.target, S3Place) or stored.target.access_key_id != access_key_id:
        raise ValidationFailed(
            "target.secret_access_key",
            "a new access_key_id needs its secret_access_key",
            hint="enter the secret of the new key (the stored one belongs to the old key)",
        )
    return keyring.decrypt(stored.target_secret, secret_column(stored).context_of(stored))


def _resolve_local(settings: Settings, principal: Principal, body: LocalTarget) -> ResolvedTarget:
    if not principal.is_admin:
        raise Forbidden(
            "a local target is for operators (admin tokens) only",
            hint="use kind 's3' with your own bucket",
        )
    if not settings.local_roots:
        raise ValidationFailed(
            "target.path",
            "local targets are disabled on this service",
            hint="an operator enables them with PODBACKUP_LOCAL_ROOTS",
        )
    if not under_roots(body.path, settings.local_roots):
        raise ValidationFailed(
            "target.path",
            f"'{body.path}' is not under an allowed local root",
            hint="allowed roots: " + ", ".join(str(r) for r in settings.local_roots),
        )
    return ResolvedTarget("local", LocalPlace(path=body.path))


async def resolve_target(
    settings: Settings,
    keyring: Keyring,
    principal: Principal,
    body: S3Target | LocalTarget,
    stored: TargetRow | None,
) -> ResolvedTarget:
    """Validate and normalise a target as typed (for a save or a verification)."""
    if isinstance(body, LocalTarget):
        return _resolve_local(settings, principal, body)
    return await _resolve_s3(settings, keyring, body, stored)


def stored_target(keyring: Keyring, row: TargetRow) -> ResolvedTarget:
    secret, maintenance = None, None
    if row.target_kind == "s3" and row.target_secret:
        secret = keyring.decrypt(row.target_secret, secret_column(row).context_of(row))
    # Lock mode's maintenance key belongs to the owner's target only.
    if isinstance(row, BackupSettings) and row.target_kind == "s3" and row.maintenance_secret:
        maintenance = keyring.decrypt(row.maintenance_secret, MAINTENANCE_SECRET.context_of(row))
    return ResolvedTarget(row.target_kind, row.target, secret, maintenance)


def decrypt_password(keyring: Keyring, row: TargetRow) -> str:
    return keyring.decrypt(row.repo_password, password_column(row).context_of(row))
