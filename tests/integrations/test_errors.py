"""Every integration failure has one shape, and the job engine maps it in one place."""

from __future__ import annotations

import pytest

from app.engine.errors import JobFailure
from app.integrations.dumps.errors import DumpError
from app.integrations.errors import IntegrationError
from app.integrations.hooks import HookError
from app.integrations.restic.errors import ResticError
from app.integrations.safefs import LocalFsError
from app.integrations.sftp.errors import SftpError


@pytest.mark.parametrize(
    ("error", "retryable"),
    [
        (ResticError("repository_locked", "locked", exit_code=11), True),
        (ResticError("wrong_password", "no key"), False),
        (SftpError("connection_lost", "gone"), True),
        (DumpError("dump_failed", "pg_dump: error"), False),
        (LocalFsError("not_a_folder", "a link", hint="replace it"), False),
        (HookError("unreachable", "no answer"), False),
    ],
)
def test_one_shape(error: IntegrationError, retryable: bool) -> None:
    assert isinstance(error, IntegrationError)
    assert (str(error), error.retryable) == (error.message, retryable)
    failure = JobFailure.from_error(error)
    assert failure is not None
    assert (failure.code, failure.message, failure.hint) == (error.code, error.message, error.hint)


def test_hints_come_from_the_code_unless_given() -> None:
    assert ResticError("repository_locked", "x").hint
    assert SftpError("failed", "x", hint="own hint").hint == "own hint"
    assert JobFailure.from_error(ValueError("plain")) is None
