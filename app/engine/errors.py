"""How a job step reports failure: a stable code, a message safe to show, and a hint."""

from __future__ import annotations

from typing import Protocol

# Failures worth another attempt (with backoff): the world may heal.
RETRYABLE_CODES = frozenset(
    {"storage_unreachable", "repository_locked", "connection_lost", "worker_lost", "unreachable"}
)


class CodedError(Protocol):
    code: str
    message: str

    @property
    def hint(self) -> str | None: ...


class JobFailure(Exception):
    def __init__(
        self, code: str, message: str, *, hint: str | None = None, retryable: bool | None = None
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.hint = hint
        self.retryable = code in RETRYABLE_CODES if retryable is None else retryable

    @classmethod
    def wrap(cls, exc: CodedError, prefix: str = "") -> JobFailure:
        """From an integration error (ResticError, SftpError, DumpError: code/message/hint)."""
        message = f"{prefix}{exc.message}" if prefix else exc.message
        return cls(exc.code, message, hint=exc.hint)

    def as_dict(self) -> dict[str, str | None]:
        return {"code": self.code, "message": self.message, "hint": self.hint}


class JobCanceled(Exception):
    """The job was canceled on request; it ends `canceled`."""
