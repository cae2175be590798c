from __future__ import annotations

import uuid
from typing import Annotated, Literal

from fastapi import APIRouter, Request, Response, status
from pydantic import Field, StringConstraints, field_validator, model_validator

from app.auth.dependencies import AnyPrincipal
from app.db import DbSession
from app.deps import RedisDep, SettingsDep
from app.errors import Conflict, NotFound, ValidationFailed, error_responses
from app.jobs.schemas import JobRead
from app.jobs.starting import start_pod_job
from app.kit.validators import Body
from app.models.kinds import JobKind
from app.models.shapes import JobParams
from app.pods import service as pods
from app.restores import undo
from app.restores.paths import files_subpaths
from app.snapshots import service as snapshots
from app.snapshots.dumps import UNRECORDED_HINT, made_by_service

router = APIRouter(tags=["restores"])

# Not trimmed like the body's other strings: a name may end in a space.
LiteralPath = Annotated[str, StringConstraints(strip_whitespace=False, max_length=4096)]


class RestoreRequest(Body):
    model_config = {
        "extra": "forbid",
        "str_strip_whitespace": True,
        "json_schema_extra": {
            "examples": [
                {"snapshot_id": "4f068fc0", "files": True, "database": True},
                {"snapshot_id": "4f068fc0", "paths": ["uploads/2024"], "database": False},
                {"snapshot_id": "4f068fc0", "mode": "mirror", "dry_run": True},
            ]
        },
    }

    snapshot_id: str = Field(
        min_length=6, max_length=64, description="Full or short (8-hex) id, or `latest`"
    )
    paths: list[LiteralPath] | None = Field(
        None,
        max_length=1000,
        description="Restore only these paths of the pod's files (e.g. `uploads/2024`), each "
        "taken literally: `*`, `?`, `[`, `]` and spaces are part of the name.",
    )
    files: bool = Field(True, description="Put the files back into the pod.")
    database: bool = Field(True, description="Load the database dump into the pod's database.")
    target_pod_id: uuid.UUID | None = Field(
        None, description="Restore into another pod of the same account (a clone)."
    )
    mode: Literal["merge", "mirror"] = Field(
        "merge", description="`mirror` also deletes files the snapshot does not have."
    )
    safety_backup: bool = Field(
        True, description="Back up the pod's current state first, so the restore can be undone."
    )
    plan: Literal["owner", "copy", "platform"] = Field(
        "owner",
        description="`copy`: restore from the owner's second copy (the primary may be gone); "
        "`platform`: restore from the operator's backups (admins only).",
    )
    dry_run: bool = Field(
        False,
        description="Preview only: the job restores the snapshot into scratch and compares it "
        "with the pod, and writes nothing (no safety backup, no hooks, no database load). "
        "Its `result.preview` (`RestorePreview`) lists what the restore would add, "
        "overwrite (and why) and delete, and what the database load would replace.",
    )
    allow_unrecorded_dump: bool = Field(
        False,
        description="Load a database dump the service did not record (a snapshot found by a "
        "refresh, see the snapshot's `database_dump.recorded`). Without it, restoring the "
        "database of such a snapshot answers 409.",
    )

    @field_validator("paths")
    @classmethod
    def _paths(cls, value: list[str] | None) -> list[str] | None:
        if value is not None:
            files_subpaths(value)  # raises ValueError for '..' or NUL
        return value

    @model_validator(mode="after")
    def _something(self) -> RestoreRequest:
        if not self.files and not self.database:
            raise ValueError("choose files, database or both")
        if self.paths and not self.files:
            raise ValueError("paths need files: true")
        return self


@router.post(
    "/v1/pods/{pod_id}/restores",
    status_code=status.HTTP_202_ACCEPTED,
    summary="Restore a snapshot into the pod (or into another pod of the account)",
    responses=error_responses(401, 404, 409, 422),
)
async def create_restore(
    pod_id: uuid.UUID,
    body: RestoreRequest,
    principal: AnyPrincipal,
    session: DbSession,
    redis: RedisDep,
    settings: SettingsDep,
    request: Request,
    response: Response,
) -> JobRead:
    source = await pods.get_visible(session, principal, pod_id)
    snapshots.check_plan(principal, body.plan)
    snap = await snapshots.get(session, source, body.plan, body.snapshot_id)
    if body.paths and snap.index_status == "ready":
        # A mistyped path would restore nothing and still succeed: name it now.
        for rel in files_subpaths(body.paths):
            if await snapshots.node(session, snap, f"/files/{rel}") is None:
                raise NotFound(
                    f"'/files/{rel}' is not in snapshot {snap.short_id}",
                    hint="browse the snapshot with …/files?path=/files to find the path",
                )
    target = source
    if body.target_pod_id is not None and body.target_pod_id != source.id:
        target = await pods.get_visible(session, principal, body.target_pod_id)
        if target.account_id != source.account_id:
            raise ValidationFailed(
                "target_pod_id",
                "the target pod belongs to another account",
                hint="clone only between pods of the same account",
            )
    if body.files and target.files is None and not body.database:
        raise ValidationFailed(
            "files",
            "the target pod has no file source to restore into",
            hint="add the pod's SFTP access first",
        )
    if body.database and target.database is None and not body.files:
        raise ValidationFailed(
            "database",
            "the target pod has no database to restore into",
            hint="add the pod's database first",
        )
    if (
        body.database
        and target.database is not None
        and not body.allow_unrecorded_dump
        and not made_by_service(snap.summary)
    ):
        raise Conflict(
            f"snapshot {snap.short_id} was not made by podbackup: its database dump is not "
            "recorded and is not loaded without confirmation",
            hint=UNRECORDED_HINT,
        )
    params = JobParams(
        source_pod_id=str(source.id),
        snapshot_id=snap.id,
        paths=body.paths,
        files=body.files,
        database=body.database,
        mode=body.mode,
        safety_backup=body.safety_backup and not body.dry_run,
        allow_unrecorded_dump=body.allow_unrecorded_dump,
        dry_run=body.dry_run,
    )
    return await start_pod_job(
        session,
        redis,
        settings,
        principal,
        target,
        kind=JobKind.RESTORE,
        action="restore.preview" if body.dry_run else "restore.create",
        request=request,
        response=response,
        plan=body.plan,
        params=params,
        idempotent=False,
        detail={k: v for k, v in params.stored().items() if k != "safety_backup"},
    )


@router.post(
    "/v1/restores/{job_id}/undo",
    status_code=status.HTTP_202_ACCEPTED,
    summary="Undo a restore: put the pod back as it was before it",
    responses=error_responses(401, 404, 409, 410, 422),
)
async def undo_restore(
    job_id: uuid.UUID,
    principal: AnyPrincipal,
    session: DbSession,
    redis: RedisDep,
    settings: SettingsDep,
    request: Request,
    response: Response,
) -> JobRead:
    restore, pod, params = await undo.plan_undo(session, principal, job_id)
    return await start_pod_job(
        session,
        redis,
        settings,
        principal,
        pod,
        kind=JobKind.RESTORE,
        action="restore.undo",
        request=request,
        response=response,
        plan=restore.plan,
        params=params,
        idempotent=False,
        detail={k: v for k, v in params.stored().items() if k != "safety_backup"},
    )
