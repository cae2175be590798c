"""How a job step reports failure: a stable code, a message safe to show, and a hint."""

from __future__ import annotations

from app.integrations.errors import IntegrationError
from app.kit.logging import redact
from app.models.errorcodes import RETRYABLE_JOB_CODES
from app.models.shapes import JobError

# Failures worth another attempt (with backoff): the world may heal. The registry of every
# job error code says which.
RETRYABLE_CODES = RETRYABLE_JOB_CODES


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
    def from_error(cls, exc: BaseException) -> JobFailure | None:
        """The one mapping of a coded error to the job's failure: an ``IntegrationError``,
        or an app error that carries a ``code`` too (``NoBackupTarget``); None for any other
        exception. The message is masked for secrets; whether it is retried is decided by
        the code, as for every job failure."""
        if isinstance(exc, IntegrationError):
            return cls(exc.code, redact(exc.message), hint=exc.hint)
        code, message = getattr(exc, "code", None), getattr(exc, "message", None)
        if isinstance(code, str) and isinstance(message, str):
            hint = getattr(exc, "hint", None)
            return cls(code, redact(message), hint=hint if isinstance(hint, str) else None)
        return None

    def as_error(self) -> JobError:
        """The job's stored error: code, message and hint (null too), as ever."""
        return JobError(code=self.code, message=self.message, hint=self.hint)


class JobCanceled(Exception):
    """The job was canceled on request; it ends `canceled`."""
