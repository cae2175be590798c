"""A local target that no wait can make usable fails at once with `target_unusable`.

restic 0.14 gives up on such a path by itself; 0.17+ retries every backend error for
minutes, which the service would otherwise take for a stalled storage (and retry the job).
The stall limit here is far above the test's timeout: only the fail-fast path can pass.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from app.config import Settings
from app.integrations.restic import Repository, Restic, ResticError
from app.integrations.restic.errors import classify, permanent_retry_error

PASSWORD = "unusable-target-test-password"

# What restic 0.18 prints on stderr while it retries (0.14 prints the Fatal line and exits).
RETRY_0_18 = (
    "Stat(<config/>) returned error, retrying after 952.426208ms: "
    "stat /srv/backups/wiki/config: not a directory"
)
FATAL_0_14 = (
    "Fatal: unable to open repository at /srv/backups/wiki: "
    "ReadDir: open /srv/backups/wiki/keys: not a directory"
)


def test_a_retry_on_a_permanent_error_is_named() -> None:
    problem = permanent_retry_error(RETRY_0_18)
    assert problem is not None
    assert problem.code == "target_unusable"
    assert problem.message == "stat /srv/backups/wiki/config: not a directory"
    assert problem.hint
    assert "backup settings" in problem.hint
    assert not problem.retryable
    # A storage that does not answer is still retried until the stall limit.
    assert (
        permanent_retry_error(
            "Load(<lock/0a1b>) returned error, retrying after 1.2s: dial tcp 127.0.0.1:9: "
            "connect: connection refused"
        )
        is None
    )
    assert classify(1, FATAL_0_14).code == "target_unusable"


@pytest.fixture
async def restic(settings: Settings) -> Restic:
    return await Restic.detect(settings.restic_binary, stall_seconds=3600, grace=2)


@pytest.mark.timeout(60)
async def test_a_file_where_the_repository_should_be(restic: Restic, tmp_path: Path) -> None:
    where = tmp_path / "not-a-folder"
    where.write_text("a file where the repository should be\n")
    repo = Repository(url=str(where), password=PASSWORD, cache_dir=tmp_path / "cache")
    with pytest.raises(ResticError) as opened:
        await restic.repository_id(repo)
    assert opened.value.code == "target_unusable", (restic.version, opened.value.message)
    assert "not a directory" in opened.value.message
    assert PASSWORD not in opened.value.message

    below = Repository(url=str(where / "wiki"), password=PASSWORD, cache_dir=tmp_path / "cache")
    with pytest.raises(ResticError) as created:
        await restic.init(below)
    assert created.value.code == "target_unusable", (restic.version, created.value.message)
    # Nothing was touched: the file is still what it was.
    assert where.read_text() == "a file where the repository should be\n"
