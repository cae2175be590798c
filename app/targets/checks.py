"""An ordered list of named checks, run within one time budget, and their input."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from app.targets.resolve import ResolvedTarget
from app.targets.schemas import VerifyCheck

T = TypeVar("T")


@dataclass(frozen=True)
class VerifyInput:
    resolved: ResolvedTarget
    # None: the pod has no settings (so no repository password) yet
    password: str | None = field(repr=False)
    recorded_id: str | None  # the recorded repository id, when the target is the saved one
    cache_dir: Path | None = None
    recorded_snapshots: int = 0  # snapshots on record in that repository


class OutOfTime(Exception):
    """The verification's time budget ran out during ``Checks.current``."""


class Checks:
    def __init__(self, order: Sequence[str], budget: float) -> None:
        self.order = list(order)
        self.budget = budget
        loop = asyncio.get_running_loop()
        self._loop = loop
        self.deadline = loop.time() + budget
        self.items: dict[str, VerifyCheck] = {}
        self.current = self.order[0]
        self._stop_reason: str | None = None

    def left(self) -> float:
        return max(0.0, self.deadline - self._loop.time())

    def timeout(self, cap: float) -> float:
        """A per-call timeout: ``cap`` seconds, or what remains of the budget."""
        return max(0.5, min(cap, self.left()))

    async def within(self, awaitable: Awaitable[T]) -> T:
        try:
            async with asyncio.timeout_at(self.deadline):
                return await awaitable
        except TimeoutError:
            raise OutOfTime from None

    def _add(self, name: str, level: str, detail: str, hint: str | None) -> None:
        # A warning is not a pass; only errors make the verification as a whole fail.
        ok = level == "ok"
        self.items[name] = VerifyCheck(name=name, ok=ok, level=level, detail=detail, hint=hint)

    def ok(self, name: str, detail: str) -> None:
        self._add(name, "ok", detail, None)

    def warn(self, name: str, detail: str, hint: str | None = None) -> None:
        self._add(name, "warning", detail, hint)

    def fail(self, name: str, detail: str, hint: str | None = None) -> None:
        self._add(name, "error", detail, hint)

    def record(self, name: str, level: str, detail: str, hint: str | None = None) -> None:
        self._add(name, level, detail, hint)

    def skip(self, names: Sequence[str], why: str) -> None:
        for name in names:
            if name not in self.items:
                self._add(name, "skipped", why, None)

    def stop(self, why: str) -> None:
        """Every check not yet recorded is skipped with ``why``."""
        self._stop_reason = why

    def out_of_time(self) -> None:
        self.fail(
            self.current,
            f"did not finish within the verification's time budget of {self.budget:.0f} s",
            "the endpoint answers very slowly or not at all; check the provider's status "
            "page and try again",
        )
        self.stop("not run: the time budget was used up")

    def crashed(self) -> None:
        """An unexpected error (logged by the caller): a failed check, never a 500."""
        self.fail(
            self.current,
            "an unexpected error stopped the verification (it was logged for the operators)",
            "try again; if it keeps happening, tell the operators the time of this attempt",
        )
        self.stop("not run: the verification stopped")

    def result(self) -> list[VerifyCheck]:
        why = self._stop_reason or "not run"
        self.skip(self.order, why)
        return [self.items[name] for name in self.order]

    @property
    def ok_overall(self) -> bool:
        return not any(c.level == "error" for c in self.items.values())
