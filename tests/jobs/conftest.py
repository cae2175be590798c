from __future__ import annotations

import os
import socket
from collections.abc import AsyncIterator

import pytest
from fastapi import FastAPI

from app.config import Settings
from app.engine.context import Handler, Services
from app.handlers import HANDLERS
from app.integrations.restic import Restic
from app.kit.crypto import Keyring
from app.main import make_redis
from app.models.kinds import JobKind


@pytest.fixture
def handlers() -> dict[JobKind, Handler]:
    """The worker's handler table, for a test to change (a test handler in place of one)."""
    return dict(HANDLERS)


@pytest.fixture
async def services(
    app: FastAPI, settings: Settings, handlers: dict[JobKind, Handler]
) -> AsyncIterator[Services]:
    """A worker's services, in this process (the runner under test runs here)."""
    redis = make_redis(settings)
    yield Services(
        settings=settings,
        engine=app.state.engine,
        sessionmaker=app.state.sessionmaker,
        keyring=Keyring.from_settings(settings.secret_keys),
        restic=await Restic.detect(settings.restic_binary, grace=2),
        redis=redis,
        worker_id=f"{socket.gethostname()}:{os.getpid()}:test",
        handlers=handlers,
    )
    await redis.aclose()
