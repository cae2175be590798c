from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, status
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field
from starlette.types import Receive, Scope, Send

from app.audit import service as audit
from app.auth.dependencies import AnyPrincipal, client_address
from app.db import DbSession
from app.deps import KeyringDep, RedisDep, SettingsDep
from app.errors import AppError, Gone, NotFound, ServiceUnavailable, error_responses
from app.exports import signing, store
from app.integrations.s3 import S3Failure
from app.jobs import service as jobs
from app.kit.crypto import Keyring
from app.kit.validators import Body
from app.models import Export
from app.models.base import utcnow
from app.models.kinds import JobKind
from app.models.shapes import JobParams
from app.pods import service as pods
from app.snapshots import service as snapshots

log = logging.getLogger(__name__)
router = APIRouter(tags=["exports"])


class ExportRequest(Body):
    snapshot_id: str | None = Field(
        None,
        min_length=6,
        max_length=64,
        description="Export this snapshot (id, short id or `latest`); omitted: the pod now.",
    )


class ExportRead(BaseModel):
    id: uuid.UUID
    pod_id: uuid.UUID
    job_id: uuid.UUID | None
    status: str = Field(description="pending | ready | failed | expired")
    snapshot_id: str | None
    size_bytes: int | None
    sha256: str | None
    created_at: datetime
    expires_at: datetime | None
    download_url: str | None = Field(
        None,
        description=(
            "Works without a token until `expires_at`; share it with care. The API "
            "streams the archive itself (no redirect to the storage behind it)."
        ),
    )


class BadSignature(AppError):
    status_code = 403
    message = "The download link is not valid"


class ExportStoreUnavailable(ServiceUnavailable):
    message = "The export store cannot be read right now"


class ArchiveResponse(StreamingResponse):
    """Streams an opened archive and closes it however the response ends: a generator's
    own ``finally`` never runs when the client is gone before the body started."""

    def __init__(self, stored: store.Stored, **kw: Any) -> None:
        super().__init__(stored.body, **kw)
        self._close = stored.close

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            await self._close()


def to_read(export: Export, base_url: str, keyring: Keyring) -> ExportRead:
    url = None
    state = export.status
    if state == "ready" and export.expires_at is not None and export.expires_at <= utcnow():
        # Past its time the link answers 410 at once; the sweep deletes the archive within
        # a minute. Report what the link does, not what the sweep has done yet.
        state = "expired"
    if state == "ready" and export.expires_at is not None:
        url = signing.download_url(base_url, keyring, export.id, export.expires_at)
    return ExportRead(
        id=export.id,
        pod_id=export.pod_id,
        job_id=export.job_id,
        status=state,
        snapshot_id=export.snapshot_id,
        size_bytes=export.size_bytes,
        sha256=export.sha256,
        created_at=export.created_at,
        expires_at=export.expires_at,
        download_url=url,
    )


@router.post(
    "/v1/pods/{pod_id}/exports",
    status_code=status.HTTP_202_ACCEPTED,
    summary="One-time archive of the pod's files and database, behind a link that expires",
    responses=error_responses(401, 404, 409, 422),
)
async def create_export(
    pod_id: uuid.UUID,
    principal: AnyPrincipal,
    session: DbSession,
    redis: RedisDep,
    settings: SettingsDep,
    keyring: KeyringDep,
    request: Request,
    body: ExportRequest | None = None,
) -> ExportRead:
    pod = await pods.get_visible(session, principal, pod_id)
    snapshot_id = None
    if body is not None and body.snapshot_id:
        snapshot_id = (await snapshots.get(session, pod, "owner", body.snapshot_id)).id
    elif not pod.files and not pod.database:
        raise NotFound("the pod has nothing to export", hint="add its SFTP access or database")
    export = Export(
        id=uuid.uuid4(), pod_id=pod.id, account_id=pod.account_id, snapshot_id=snapshot_id
    )
    session.add(export)
    await session.flush()
    job, _ = await jobs.create(
        session,
        redis,
        settings,
        kind=JobKind.EXPORT,
        pod_id=pod.id,
        account_id=pod.account_id,
        params=JobParams(export_id=str(export.id), snapshot_id=snapshot_id),
    )
    export.job_id = job.id
    await audit.record(
        session,
        "export.create",
        principal=principal,
        account_id=pod.account_id,
        pod_id=pod.id,
        detail={"export_id": str(export.id), "snapshot_id": snapshot_id},
        client=client_address(request),
    )
    await session.flush()
    return to_read(export, settings.public_url, keyring)


@router.get(
    "/v1/exports/{export_id}",
    summary="An export: state, size and (once ready) its download URL",
    responses=error_responses(401, 404, 422),
)
async def get_export(
    export_id: uuid.UUID,
    principal: AnyPrincipal,
    session: DbSession,
    settings: SettingsDep,
    keyring: KeyringDep,
) -> ExportRead:
    export = await session.get(Export, export_id)
    if export is None or not principal.owns(export.account_id):
        raise NotFound("Export not found")
    return to_read(export, settings.public_url, keyring)


@router.get(
    "/v1/exports/{export_id}/download",
    summary="Download an export with its signed link (no token needed until it expires)",
    description=(
        "Streams the archive through the API (a 200, never a redirect), from the "
        "operator's export bucket when `PODBACKUP_EXPORT_S3_*` is set, else from the "
        "export folder. The link is checked against the export's record on every use."
    ),
    response_class=StreamingResponse,
    responses={
        200: {"content": {"application/gzip": {}}, "description": "The archive"},
        **error_responses(403, 404, 410, 422, 503),
    },
)
async def download_export(
    export_id: uuid.UUID,
    session: DbSession,
    settings: SettingsDep,
    keyring: KeyringDep,
    expires: Annotated[int, Query(ge=0)],
    signature: Annotated[str, Query(min_length=64, max_length=64)],
) -> StreamingResponse:
    if not signing.valid(keyring, export_id, expires, signature):
        raise BadSignature(hint="ask for a fresh link with GET /v1/exports/{export_id}")
    if datetime.now(UTC).timestamp() > expires:
        raise Gone("the download link has expired", hint="create a new export")
    export = await session.get(Export, export_id)
    if export is None or export.status != "ready":
        raise Gone("the export is no longer available", hint="create a new export")
    if export.expires_at is not None and export.expires_at <= utcnow():
        # The record decides, not only the link: an export whose time was cut short after
        # its link was handed out is gone too.
        raise Gone("the download link has expired", hint="create a new export")
    try:
        stored = await store.open_archive(settings, export.id, export.storage_key)
    except (S3Failure, store.ExportStoreMissing) as exc:
        log.warning("export %s: the export store cannot be read: %s", export.id, exc)
        raise ExportStoreUnavailable(hint="try again in a few minutes") from None
    if stored is None:
        if not (export.storage_key or "").startswith(store.S3_SCHEME):
            # The worker that built it kept it on its own disk: not this host's.
            log.warning(
                "export %s is ready but not in this host's export folder; with API and "
                "workers on different hosts set PODBACKUP_EXPORT_S3_* on both",
                export.id,
            )
        raise Gone("the export file is gone", hint="create a new export")

    name = f"pod-{export.pod_id}-{export.created_at:%Y%m%d-%H%M%S}.tar.gz"
    return ArchiveResponse(
        stored,
        media_type="application/gzip",
        headers={
            "Content-Disposition": f'attachment; filename="{name}"',
            "Content-Length": str(stored.size),
            "Cache-Control": "no-store",
        },
    )
