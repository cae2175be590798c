"""Process-wide objects held on ``app.state``, as typed dependencies.

All ``async def``: FastAPI runs a plain ``def`` dependency in its thread pool, a thread
hop per request for a dictionary lookup (measured: ~10% of a polled read's CPU)."""

from __future__ import annotations

from typing import Annotated

from arq.connections import ArqRedis
from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncEngine

from app.config import Settings
from app.errors import ServiceUnavailable
from app.integrations.restic import Restic
from app.kit.crypto import Keyring
from app.kit.netpolicy import Policy


async def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def _engine(request: Request) -> AsyncEngine:
    engine: AsyncEngine = request.app.state.engine
    return engine


async def _keyring(request: Request) -> Keyring:
    keyring: Keyring = request.app.state.keyring
    return keyring


async def _redis(request: Request) -> ArqRedis:
    redis: ArqRedis = request.app.state.redis
    return redis


SettingsDep = Annotated[Settings, Depends(_settings)]
KeyringDep = Annotated[Keyring, Depends(_keyring)]
# For the hot read paths (app/kit/fastread.py): a pooled connection, no session.
EngineDep = Annotated[AsyncEngine, Depends(_engine)]
RedisDep = Annotated[ArqRedis, Depends(_redis)]


async def _restic(request: Request) -> Restic:
    """The restic binary, its version detected once per process."""
    restic: Restic | None = getattr(request.app.state, "restic", None)
    if restic is None:
        settings: Settings = request.app.state.settings
        try:
            restic = await Restic.detect(
                settings.restic_binary, egress=Policy.from_settings(settings)
            )
        except (OSError, RuntimeError, ValueError) as exc:
            raise ServiceUnavailable(
                "the restic binary is not usable on this API host",
                hint="install restic (apt-get install restic) or set PODBACKUP_RESTIC_BINARY",
            ) from exc
        request.app.state.restic = restic
    return restic


ResticDep = Annotated[Restic, Depends(_restic)]
