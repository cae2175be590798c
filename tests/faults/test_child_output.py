"""A child's output callback that fails (a progress write whose database went away) must
not be dropped silently: the rest of the output is still drained — a child writing into
a full pipe would hang its job — and the run raises that error once the child exits,
instead of ending "successfully" with half its output unread (which made a backup fail
as "restic finished without naming a snapshot")."""

from __future__ import annotations

import sys

import pytest

from app.kit import subprocess as sp


class ProgressLost(Exception):
    pass


@pytest.mark.timeout(60)
async def test_failing_callback_drains_the_child_and_raises_its_error() -> None:
    seen: list[str] = []

    async def on_line(line: str) -> None:
        seen.append(line)
        if len(seen) == 2:
            raise ProgressLost("the database went away")

    # ~4 MB after the failing line: far more than a pipe holds.
    script = "import sys\nfor i in range(200_000): sys.stdout.write(f'line {i:020d}\\n')\n"
    with pytest.raises(ProgressLost):
        await sp.run([sys.executable, "-c", script], on_stdout=on_line, timeout=30)
    assert seen == ["line 00000000000000000000", "line 00000000000000000001"]


async def test_callbacks_that_do_not_fail_see_every_line() -> None:
    seen: list[str] = []
    done = await sp.run(
        [sys.executable, "-c", "print('a'); print('b')"], on_stdout=seen.append, timeout=30
    )
    assert done.returncode == 0
    assert seen == ["a", "b"]
