"""The platform plan's repository: the operator's storage, credentials and password from
settings (never from the API), one shared repository or one per pod."""

from __future__ import annotations

import uuid
from pathlib import Path

from app.config import Settings
from app.engine.context import JobContext
from app.engine.errors import JobFailure
from app.engine.locks import repository_lock
from app.integrations.restic import Repository, ResticError


class PlatformNotConfigured(JobFailure):
    def __init__(self) -> None:
        super().__init__(
            "platform_not_configured",
            "platform backups are off on this service",
            hint="an operator sets PODBACKUP_PLATFORM_REPOSITORY and its password",
            retryable=False,
        )


def repository_url(settings: Settings, pod_id: uuid.UUID) -> str:
    base = (settings.platform_repository or "").rstrip("/")
    if not base:
        raise PlatformNotConfigured()
    return base if settings.platform_layout == "shared" else f"{base}/{pod_id}"


def platform_repository(settings: Settings, pod_id: uuid.UUID) -> Repository:
    password = settings.platform_password_value()
    if not password:
        raise PlatformNotConfigured()
    url = repository_url(settings, pod_id)
    env: dict[str, str] = {}
    if url.startswith("s3:"):
        env = {
            "AWS_ACCESS_KEY_ID": settings.platform_access_key_id or "",
            "AWS_SECRET_ACCESS_KEY": (
                settings.platform_secret_access_key.get_secret_value()
                if settings.platform_secret_access_key
                else ""
            ),
            "AWS_DEFAULT_REGION": settings.platform_region,
        }
    shared = settings.platform_layout == "shared"
    cache: Path = settings.cache_dir / "restic" / ("platform" if shared else f"{pod_id}/platform")
    return Repository(url=url, password=password, env=env, cache_dir=cache, operator=True)


async def ensure(ctx: JobContext, repo: Repository) -> str:
    """Open the platform repository, creating it on first use; its id."""
    restic = ctx.services.restic
    try:
        return await restic.repository_id(repo, cancel=ctx.cancel)
    except ResticError as exc:
        if exc.code != "repository_not_found":
            raise
    # Workers racing to create a shared repository would each write a config and a key and
    # leave a damaged one: create it under an exclusive lock of its own, re-checking first.
    async with repository_lock(ctx.services.engine, f"{repo.lock_key}#init", cancel=ctx.cancel):
        try:
            return await restic.repository_id(repo, cancel=ctx.cancel)
        except ResticError as exc:
            if exc.code != "repository_not_found":
                raise
        return await restic.init(repo, cancel=ctx.cancel)
