"""The one shape of an integration failure (restic, SFTP, database dumps, local files,
hooks): a stable ``code``, a ``message`` safe to show, a ``hint`` a person can act on, and
whether the integration itself thinks another try may succeed. The job engine turns any of
them into a job failure in one place (``JobFailure.from_error``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar


class IntegrationError(Exception):
    # Per subclass: codes worth another try, and the hint of each code.
    RETRYABLE: ClassVar[frozenset[str]] = frozenset()
    HINTS: ClassVar[Mapping[str, str]] = {}

    def __init__(self, code: str, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.hint = hint or self.HINTS.get(code)

    @property
    def retryable(self) -> bool:
        return self.code in self.RETRYABLE

    def __str__(self) -> str:
        return self.message
