"""Targets no wait can make usable fail at once with a code that says why.

A local target that is a file (`target_unusable`); an S3 key the storage refuses
(`access_denied`). restic 0.14 gives up on these by itself; 0.17+ retries them for
minutes, which the service would otherwise take for a stalled storage (and retry the job).
The stall limit here is far above the tests' timeouts: only the fail-fast path can pass.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from app.config import Settings
from app.integrations.restic import Repository, Restic, ResticError
from app.integrations.restic.errors import classify, permanent_retry_error
from tests.fixtures.s3 import S3ServerHandle, s3_iam_bucket, s3_iam_server  # noqa: F401

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
    signature = (
        "Stat(<config/>) returned error, retrying after 5.6s: Stat: The request signature we "
        "calculated does not match the signature you provided. Check your key and signing method."
    )
    denied = permanent_retry_error(signature)
    assert denied is not None
    assert denied.code == "access_denied"
    assert denied.message.startswith("Stat: The request signature")


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


@pytest.mark.timeout(60)
async def test_a_key_the_storage_refuses(
    restic: Restic,
    s3_iam_server: S3ServerHandle,  # noqa: F811
    s3_iam_bucket: str,  # noqa: F811
    tmp_path: Path,
) -> None:
    key, secret = s3_iam_server.create_key(s3_iam_bucket)
    elsewhere = s3_iam_server.create_bucket()
    url = f"s3:{s3_iam_server.url}/{s3_iam_bucket}"

    def repo(access_key: str, secret_key: str, bucket_url: str = url) -> Repository:
        env = {"AWS_ACCESS_KEY_ID": access_key, "AWS_SECRET_ACCESS_KEY": secret_key}
        return Repository(url=bucket_url, password=PASSWORD, env=env, cache_dir=tmp_path)

    good = repo(key, secret)
    repository_id = await restic.init(good)
    assert await restic.repository_id(good) == repository_id

    wrong = "not-the-secret-of-this-key-0123456789"
    refused = [
        repo(key, wrong),  # a wrong secret: SignatureDoesNotMatch
        repo("AKIANOSUCHKEY0000000", wrong),  # an unknown key: InvalidAccessKeyId
        repo(key, secret, f"s3:{s3_iam_server.url}/{elsewhere}"),  # another bucket
    ]
    for target in refused:
        with pytest.raises(ResticError) as failed:
            await restic.repository_id(target)
        # Not "repository_not_found": a service reading that as "the repository is gone"
        # would tell the owner the bucket was emptied.
        assert failed.value.code == "access_denied", (restic.version, failed.value.message)
        assert failed.value.hint
        assert wrong not in failed.value.message
        assert secret not in failed.value.message
    assert await restic.repository_id(good) == repository_id  # nothing was touched
