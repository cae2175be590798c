"""A real HTTP receiver on 127.0.0.1 (uvicorn + Starlette on a free port) and worker services."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app.config import Settings
from app.kit.crypto import Keyring
from tests.conftest import Tenant


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """Records every request; answers from ``plan`` (status, headers) in order, then 200."""

    port: int = 0
    requests: list[Received] = field(default_factory=list)
    plan: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    delay: float = 0.0  # seconds before answering (a slow receiver)

    def url(self, path: str = "/hook", host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"

    def paths(self) -> list[str]:
        return [r.path for r in self.requests]

    async def _handle(self, request: Request) -> Response:
        body = await request.body()
        self.requests.append(Received(request.url.path, dict(request.headers), body))
        if self.delay:
            await asyncio.sleep(self.delay)
        status, headers = self.plan.pop(0) if self.plan else (200, {})
        return Response(b"ok" if status < 300 else b"", status_code=status, headers=headers)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    rec = Receiver()
    app = Starlette(routes=[Route("/{path:path}", rec._handle, methods=["POST", "GET"])])
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    rec.port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(app, log_level="warning", lifespan="off", access_log=False)
    )
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    yield rec
    server.should_exit = True
    with contextlib.suppress(asyncio.CancelledError):
        await asyncio.wait_for(task, timeout=5)
    sock.close()


@dataclass
class Svc:
    """The part of a worker's services that delivery uses."""

    settings: Settings
    sessionmaker: async_sessionmaker[AsyncSession]
    keyring: Keyring


@pytest.fixture
def services(app: FastAPI, settings: Settings) -> Svc:
    return Svc(settings, app.state.sessionmaker, Keyring.from_settings(settings.secret_keys))


async def create_webhook(
    client: httpx.AsyncClient, tenant: Tenant, url: str, **over: Any
) -> dict[str, Any]:
    r = await client.post("/v1/webhooks", json={"url": url, **over}, headers=tenant.headers)
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]
