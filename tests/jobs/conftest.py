from __future__ import annotations

import os
import socket
from collections.abc import AsyncIterator

import pytest
from fastapi import FastAPI

from app.config import Settings
from app.engine.context import Services
from app.integrations.restic import Restic
from app.kit.crypto import Keyring
from app.main import make_redis


@pytest.fixture
async def services(app: FastAPI, settings: Settings) -> AsyncIterator[Services]:
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
    )
    await redis.aclose()
