"""The typed context arq hands to every task."""

from __future__ import annotations

from typing import TypedDict

from arq.connections import ArqRedis

from app.engine.context import Services


class WorkerContext(TypedDict, total=False):
    redis: ArqRedis  # set by arq
    job_id: str  # set by arq
    job_try: int  # set by arq
    services: Services
