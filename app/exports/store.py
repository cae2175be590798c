"""Where export archives are kept: the operator's export bucket, or a local folder.

With ``PODBACKUP_EXPORT_S3_*`` set, the worker uploads each archive to the operator's
export bucket and the API streams it from there, so API and workers need no shared disk.
Without it the archive stays in ``PODBACKUP_EXPORT_DIR`` on the worker's disk, which the
API reads: development and single-host setups only.

Why the operator's bucket and not the pod owner's own: an export of the pod as it is now
needs no backup target (a pod moving away often has none); the expiry is a promise to
delete a plaintext copy of the pod, which only storage the operator controls can keep (an
owner's key can be rotated or revoked, their bucket versioned or object-locked, their
target changed); the owner's repository is the whole bucket (``s3:https://host/bucket``),
so no prefix in it lies outside the repository; and the API reads only from a store it
trusts instead of dialing tenant endpoints for every download. The cost is the operator's
storage for at most the link's lifetime.

``storage_key`` on the row says where an archive is: ``s3://<bucket>/<key>`` in the
export bucket, or a bare file name in the export folder.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import anyio

from app.config import Settings
from app.integrations.s3 import Bucket, S3Access, open_bucket
from app.kit.cachedir import private_dirs
from app.kit.logging import register_secret
from app.kit.netpolicy import Policy

S3_SCHEME = "s3://"
# The export bucket is the operator's own server, named in settings, not a tenant's: the
# outbound-address policy for tenant endpoints does not apply to it.
OPERATOR_POLICY = Policy(allow=(ipaddress.ip_network("0.0.0.0/0"), ipaddress.ip_network("::/0")))


def store_path(export_dir: Path, export_id: uuid.UUID) -> Path:
    return export_dir / f"{export_id}.tar.gz"


def private_dir(path: Path) -> None:
    """The export store: 0700, so no other local user lists or reads the archives."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.chmod(0o700)


def uses_bucket(settings: Settings) -> bool:
    return bool(settings.export_s3_endpoint)


class ExportStoreMissing(Exception):
    """An archive is in the export bucket but this process has no PODBACKUP_EXPORT_S3_*."""


def bucket_access(settings: Settings, bucket: str | None = None) -> S3Access:
    secret = settings.export_s3_secret_access_key
    if not settings.export_s3_endpoint or secret is None:
        raise ExportStoreMissing(
            "the archive is in the export bucket but PODBACKUP_EXPORT_S3_* is not set here"
        )
    register_secret(secret.get_secret_value())  # masked in every log line of this process
    return S3Access(
        endpoint_url=settings.export_s3_endpoint.rstrip("/"),
        bucket=bucket or settings.export_s3_bucket or "",
        region=settings.export_s3_region,
        access_key_id=settings.export_s3_access_key_id or "",
        secret_access_key=secret.get_secret_value(),
    )


def work_path(settings: Settings, export_id: uuid.UUID) -> Path:
    """Where the worker builds the archive before it is stored (0700 folders)."""
    if uses_bucket(settings):
        folder = private_dirs(settings.cache_dir, settings.cache_dir / "exports")
    else:
        folder = settings.export_path
        private_dir(folder)
    return store_path(folder, export_id).with_suffix(".partial")


async def save(settings: Settings, export_id: uuid.UUID, built: Path) -> str:
    """Store the built archive (it is moved or uploaded, then gone); its storage key."""
    if not uses_bucket(settings):
        final = store_path(settings.export_path, export_id)
        built.replace(final)
        return final.name
    access = bucket_access(settings)
    key = f"{settings.export_s3_prefix}{export_id}.tar.gz"
    try:
        async with open_bucket(access, OPERATOR_POLICY, read_timeout=60, max_attempts=3) as b:
            await b.upload_file(key, built)
    finally:
        built.unlink(missing_ok=True)
    return f"{S3_SCHEME}{access.bucket}/{key}"


def _split(storage_key: str) -> tuple[str, str]:
    bucket, _, key = storage_key.removeprefix(S3_SCHEME).partition("/")
    return bucket, key


@dataclass(frozen=True)
class Stored:
    """An archive opened for reading: its size, a body that streams it, and ``close``,
    which must run however the response ends (even when the body was never read)."""

    size: int
    body: AsyncIterator[bytes]
    close: Callable[[], Awaitable[None]]


async def open_archive(
    settings: Settings, export_id: uuid.UUID, storage_key: str | None
) -> Stored | None:
    """The archive, opened (one GET: its size is known before the status line is sent),
    or None when it is gone."""
    if storage_key and storage_key.startswith(S3_SCHEME):
        bucket, key = _split(storage_key)
        access = bucket_access(settings, bucket)
        stack = contextlib.AsyncExitStack()
        try:
            b = await stack.enter_async_context(
                open_bucket(access, OPERATOR_POLICY, read_timeout=60)
            )
            reader = await b.open_object(key)
            if reader is not None:
                stack.callback(reader.close)
        except BaseException:
            await stack.aclose()
            raise
        if reader is None:
            await stack.aclose()
            return None
        return Stored(reader.size, reader.chunks(), stack.aclose)
    path = store_path(settings.export_path, export_id)
    try:
        fh = await anyio.open_file(path, "rb")
    except FileNotFoundError:
        return None

    async def from_disk() -> AsyncIterator[bytes]:
        while chunk := await fh.read(1 << 20):
            yield chunk

    return Stored(os.fstat(fh.wrapped.fileno()).st_size, from_disk(), fh.aclose)


async def archives(settings: Settings) -> list[tuple[uuid.UUID, str, datetime]]:
    """Every stored archive as (export id, storage key, last modified); names that are not
    ``<export id>.tar.gz`` are not ours and are left out."""
    found: list[tuple[uuid.UUID, str, datetime]] = []
    if uses_bucket(settings):
        access = bucket_access(settings)
        prefix = settings.export_s3_prefix
        async with open_bucket(access, OPERATOR_POLICY, read_timeout=60) as b:
            async for key, modified in b.objects(prefix):
                export_id = _export_id(key.removeprefix(prefix))
                if export_id is not None:
                    found.append((export_id, f"{S3_SCHEME}{access.bucket}/{key}", modified))
        return found
    folder = settings.export_path
    for path in folder.glob("*.tar.gz") if folder.is_dir() else ():
        export_id = _export_id(path.name)
        if export_id is not None:
            modified = datetime.fromtimestamp(path.lstat().st_mtime, UTC)
            found.append((export_id, path.name, modified))
    return found


def _export_id(name: str) -> uuid.UUID | None:
    stem = name.removesuffix(".tar.gz")
    if stem == name or "/" in stem:
        return None
    try:
        export_id = uuid.UUID(stem)
    except ValueError:
        return None
    return export_id if str(export_id) == stem else None


Delete = Callable[[uuid.UUID, str | None], Awaitable[None]]


@contextlib.asynccontextmanager
async def deleter(settings: Settings) -> AsyncIterator[Delete]:
    """``delete(export_id, storage_key)``: delete an archive wherever it is (one already
    gone is fine), with one S3 client per bucket for a whole sweep."""
    async with contextlib.AsyncExitStack() as stack:
        buckets: dict[str, Bucket] = {}

        async def delete(export_id: uuid.UUID, storage_key: str | None) -> None:
            if storage_key and storage_key.startswith(S3_SCHEME):
                name, key = _split(storage_key)
                if name not in buckets:
                    access = bucket_access(settings, name)
                    buckets[name] = await stack.enter_async_context(
                        open_bucket(access, OPERATOR_POLICY)
                    )
                await buckets[name].delete(key)
                return
            store_path(settings.export_path, export_id).unlink(missing_ok=True)

        yield delete
