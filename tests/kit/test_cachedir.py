"""Issue 12.7: the worker cache (every pod's files, dumps, restic caches) is 0700."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from app.kit.cachedir import ensure_cache_dir, private_dirs


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_new_cache_is_created_0700_whatever_the_umask(tmp_path: Path) -> None:
    old = os.umask(0o000)
    try:
        cache = ensure_cache_dir(tmp_path / "var" / "cache")
        stage = private_dirs(cache, cache / "pods" / "p1" / "nightly" / "stage")
    finally:
        os.umask(old)
    assert mode(cache) == 0o700
    for path in (cache / "pods", cache / "pods" / "p1", cache / "pods" / "p1" / "nightly", stage):
        assert mode(path) == 0o700, path


def test_an_open_cache_is_tightened(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    cache = tmp_path / "cache"
    cache.mkdir()
    cache.chmod(0o755)
    ensure_cache_dir(cache)
    assert mode(cache) == 0o700
    assert "setting it to 0700" in caplog.text


def test_a_path_outside_the_cache_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="subpath"):
        private_dirs(tmp_path / "cache", tmp_path / "elsewhere")
    assert not (tmp_path / "elsewhere").exists()
