"""What a plan's repository is opened with, and the error when a (pod, plan) has none."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from app.errors import Conflict
from app.integrations.restic import Restic


class NoBackupTarget(Conflict):
    """(pod, plan) has no repository to read or write. An app error with a stable ``code``:
    an API request answers 409 with the hint, and the job runner records the code (not
    retried) like any coded integration error."""

    message = "The pod has no backup target"

    def __init__(self, code: str, message: str, *, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.code = code


@dataclass(frozen=True)
class RepoAccess:
    """What opening (and on first use creating) a plan's repository needs."""

    # A unit of work: `async with transaction() as s` commits when the block ends.
    transaction: Callable[[], AbstractAsyncContextManager[AsyncSession]]
    restic: Restic
    cancel: asyncio.Event
    # An exclusive cross-worker lock by key: two workers must not `init` one repository.
    exclusive: Callable[[str], AbstractAsyncContextManager[None]]
