"""The worker's handler table covers every job kind, each with a handler object."""

from __future__ import annotations

from app.handlers import HANDLERS
from app.models.kinds import JobKind


def test_every_kind_has_a_handler() -> None:
    assert set(HANDLERS) == set(JobKind)
    assert all(callable(h.run) and callable(h.failed) for h in HANDLERS.values())
