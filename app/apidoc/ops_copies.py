"""The second copy: its settings, verification, a copy on request, its lag."""

from __future__ import annotations

from typing import Any

from app.apidoc import examples as ex
from app.apidoc import examples_views as views
from app.apidoc.op import ANY, POD_BUSY, POD_GONE, Op

_COPY_TARGET = {
    "kind": "s3",
    "endpoint": "s3.eu-central-003.backblazeb2.com",
    "bucket": "acme-wiki-second-copy",
    "access_key_id": "003a1b2c3d4e5f60000000001",
    "secret_access_key": "K003abcdefghijklmnopqrstuvwxyz0123",
}
_COPY_SETTINGS: dict[str, Any] = {
    **{k: v for k, v in ex.SETTINGS.items() if k != "schedule"},
    "target": {**ex.SETTINGS["target"], "bucket": "acme-wiki-second-copy"},  # type: ignore[dict-item]
    "repository": "s3:https://s3.eu-central-003.backblazeb2.com/acme-wiki-second-copy",
    "repository_id": "5c2b1a09f8e7d6c5b4a3928170615243e3b1c0a9f8d7e6c5b4a39281706f5e4d",
}
_LAG = {
    "configured": True,
    "snapshots_behind": 1,
    "seconds_behind": 5400.0,
    "last_copy_at": ex.CREATED,
    "last_status": "failed",
    "alerted": False,
}

COPY_OPERATIONS: dict[str, Op] = {
    "GET /v1/pods/{pod_id}/copy-settings": Op(
        f"The pod's second copy: its target (the secret only as `secret_access_key_set`), "
        f"repository, retention and verification. {ANY} 404 when the pod has none.",
        response=_COPY_SETTINGS,
    ),
    "PUT /v1/pods/{pod_id}/copy-settings": Op(
        f"Save a second copy of the pod's backups: another bucket (or provider), filled "
        f"with `restic copy` after each backup. {ANY} It needs the pod's own backup settings "
        "and another place than the primary; its key may differ from the primary's (another "
        "provider): the copy job then reads the primary through a re-signing gateway on "
        "127.0.0.1 with the primary's key. Its own password is "
        "generated on the first save. **Next**: `POST …/copy-settings/verify`, then the next "
        "backup (or `POST …/copies`) fills it.",
        request={"target": _COPY_TARGET, "retention": {"keep_daily": 14, "keep_monthly": 12}},
        response=_COPY_SETTINGS,
    ),
    "DELETE /v1/pods/{pod_id}/copy-settings": Op(
        f"Stop the second copy: its stored S3 secret and repository password are destroyed; "
        f"the bucket and its snapshots are the owner's and are not touched. {ANY}",
        causes=(POD_GONE,),
    ),
    "POST /v1/pods/{pod_id}/copy-settings/verify": Op(
        f"The same real round trip as the owner's verify, for the copy's target (stored, or "
        f"sent in the body without saving). {ANY} **Next**: fix what failed and verify again.",
        request=_COPY_TARGET,
        response=ex.VERIFY,
    ),
    "POST /v1/pods/{pod_id}/copies": Op(
        f"Copy the primary's snapshots the second copy lacks now: a `copy` job (plan `copy`; "
        f"the copy repository is created on its first run with the primary's chunker "
        f"parameters). {ANY} One exclusive job per pod: another answers 409 `PodBusy`. "
        "**Next**: poll the job; `GET /v1/pods/{pod_id}/snapshots?plan=copy` lists the copy.",
        response=ex.job(kind="copy", plan="copy"),
        causes=(POD_BUSY,),
    ),
    "GET /v1/pods/{pod_id}/copy-settings/restore-kit": Op(
        f"Everything plain restic needs to restore from the second copy without this "
        f"service: its repository URL, its own password, the environment block and commands. "
        f"{ANY} Every read is audited (`copy_restore_kit.read`).",
        response=views.RESTORE_KIT,
    ),
    "GET /v1/pods/{pod_id}/copy-lag": Op(
        f"How far the second copy is behind: primary snapshots newer than the copy's newest, "
        f"and for how long. {ANY} Past PODBACKUP_COPY_LAG_ALERT_HOURS the `copy.lagging` "
        "webhook event is sent once (`alerted`); a successful copy clears it.",
        response=_LAG,
    ),
}
