from __future__ import annotations

import uuid
from datetime import datetime

from fastapi import APIRouter, Request, Response, status
from pydantic import BaseModel, Field

from app.auth.dependencies import AnyPrincipal
from app.db import DbSession
from app.deps import KeyringDep, RedisDep, ResticDep, SettingsDep
from app.errors import AppError, Conflict, ServiceUnavailable, ValidationFailed, error_responses
from app.integrations.restic import ResticError
from app.jobs.schemas import JobRead
from app.jobs.starting import require_settings, start_pod_job
from app.models import BackupSettings, Pod
from app.models.kinds import JobKind
from app.plans import targets
from app.pods import service as pods
from app.retention import service
from app.targets.schemas import Retention

router = APIRouter(tags=["retention"])

PREVIEW_TIMEOUT = 120.0


class RepositoryProblem(Conflict):
    message = "The repository could not be read"


class PlannedSnapshotRead(BaseModel):
    id: str
    short_id: str
    time: datetime
    hostname: str
    tags: list[str]
    status: str | None = Field(
        description="succeeded | partial | safety as recorded at backup time; null: unknown"
    )
    kind: str | None = Field(
        None,
        description="backup | safety (taken by a restore before it wrote) | imported "
        "(made outside the service); null: not in the snapshot list (refresh it)",
    )
    reasons: list[str] = Field(
        description="restic's keep reasons (e.g. `daily snapshot`), or why it goes or stays"
    )


class PinnedKeepRead(BaseModel):
    id: str
    short_id: str
    time: datetime
    note: str | None
    until: datetime | None = Field(description="When the pin ends; null: until unpinned")


class RetentionScope(BaseModel):
    host: str
    tag: str
    note: str


class RetentionPreview(BaseModel):
    pod_id: uuid.UUID
    policy: dict[str, int]
    scope: RetentionScope
    keep: list[PlannedSnapshotRead]
    remove: list[PlannedSnapshotRead]
    untouched: list[PlannedSnapshotRead] = Field(
        description="Snapshots outside the scope (made by the owner with plain restic): "
        "never forgotten by the service."
    )
    protected_snapshot_id: str | None = Field(
        description="The newest successful snapshot: never removed, whatever the policy."
    )
    kept_because_pinned: list[PinnedKeepRead] = Field(
        [],
        description="Snapshots the policy alone would remove but a pin in force keeps (they "
        "are in `keep` too, with the pin as their reason). An expired pin keeps nothing.",
    )
    notes: list[str] = []


SCOPE_NOTE = (
    "only snapshots this service made for the pod (this host and tag) are subject to "
    "retention; snapshots made with plain restic on other hosts or without the tag stay"
)


def _read(items: list[service.PlannedSnapshot]) -> list[PlannedSnapshotRead]:
    return [
        PlannedSnapshotRead(
            id=s.id,
            short_id=s.short_id,
            time=s.time,
            hostname=s.hostname,
            tags=s.tags,
            status=s.status,
            kind=s.kind,
            reasons=s.reasons,
        )
        for s in items
    ]


def _http(exc: ResticError) -> AppError:
    if exc.code in ("storage_unreachable", "timeout"):
        return ServiceUnavailable(f"the storage did not answer: {exc.message}", hint=exc.hint)
    return RepositoryProblem(
        f"restic could not plan the retention ({exc.code}): {exc.message}", hint=exc.hint
    )


async def _settings(session: DbSession, pod: Pod) -> BackupSettings:
    return await require_settings(session, pod, "set its retention")


@router.post(
    "/v1/pods/{pod_id}/retention/preview",
    summary="What forget would keep and remove (a dry run); nothing is deleted",
    responses=error_responses(401, 404, 409, 422, 503),
)
async def preview(
    pod_id: uuid.UUID,
    principal: AnyPrincipal,
    session: DbSession,
    settings: SettingsDep,
    keyring: KeyringDep,
    restic: ResticDep,
    body: Retention | None = None,
) -> RetentionPreview:
    """Body optional: a policy to try instead of the stored one (nothing is saved)."""
    pod = await pods.get_visible(session, principal, pod_id)
    row = await _settings(session, pod)
    try:
        policy = service.clean_policy((body or row.retention).model_dump())
    except ValueError as exc:
        raise ValidationFailed(
            "retention", str(exc), hint="set at least one keep_* rule above 0"
        ) from None
    host, tag = service.scope(pod.id)
    result = service.RetentionPlan(policy=policy, host=host, tag=tag)
    notes: list[str] = []
    if row.repository_id is None:
        notes.append("no repository yet: nothing to keep or remove until the first backup")
    else:
        target = await targets.resolve(session, settings, keyring, pod, "owner")
        try:
            result = await service.compute(
                session, restic, target.repo, pod.id, "owner", policy, timeout=PREVIEW_TIMEOUT
            )
        except ResticError as exc:
            raise _http(exc) from None
    return RetentionPreview(
        pod_id=pod.id,
        policy=result.policy,
        scope=RetentionScope(host=host, tag=tag, note=SCOPE_NOTE),
        keep=_read(result.keep),
        remove=_read(result.remove),
        untouched=_read(result.untouched),
        protected_snapshot_id=result.protected,
        kept_because_pinned=[
            PinnedKeepRead(id=k.id, short_id=k.short_id, time=k.time, note=k.note, until=k.until)
            for k in result.kept_because_pinned
        ],
        notes=notes,
    )


@router.post(
    "/v1/pods/{pod_id}/prune",
    status_code=status.HTTP_202_ACCEPTED,
    summary="Forget by the pod's retention policy, then prune (a job; see the preview first)",
    responses=error_responses(401, 404, 409, 422),
)
async def prune(
    pod_id: uuid.UUID,
    principal: AnyPrincipal,
    session: DbSession,
    redis: RedisDep,
    settings: SettingsDep,
    request: Request,
    response: Response,
) -> JobRead:
    pod = await pods.get_visible(session, principal, pod_id)
    await _settings(session, pod)
    return await start_pod_job(
        session,
        redis,
        settings,
        principal,
        pod,
        kind=JobKind.PRUNE,
        action="retention.prune",
        request=request,
        response=response,
    )
