"""safefs: byte comparison at block edges, and folder walks that never follow a link."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from app.integrations import safefs
from app.integrations.safefs import BLOCK, LocalFsError


@pytest.mark.parametrize("size", [0, 1, BLOCK - 1, BLOCK, BLOCK + 1, 3 * BLOCK + 5])
def test_same_bytes_finds_a_difference_anywhere(tmp_path: Path, size: int) -> None:
    data = os.urandom(size)
    a, b = tmp_path / "a", tmp_path / "b"
    a.write_bytes(data)
    b.write_bytes(data)
    fa, fb = os.open(a, os.O_RDWR), os.open(b, os.O_RDWR)
    try:
        assert safefs.same_bytes(fa, fb, size)
        for offset in {0, size // 2, size - 1} if size else set():
            os.pwrite(fb, bytes([data[offset] ^ 1]), offset)
            assert not safefs.same_bytes(fa, fb, size), offset
            os.pwrite(fb, data[offset : offset + 1], offset)
        os.ftruncate(fb, max(0, size - 1))  # shorter than claimed
        assert safefs.same_bytes(fa, fb, size) is (size == 0)
    finally:
        os.close(fa)
        os.close(fb)


def test_walks_refuse_or_replace_links_and_removes_never_follow(tmp_path: Path) -> None:
    root, outside = tmp_path / "roots" / "pod", tmp_path / "outside"
    (root / "real").mkdir(parents=True)
    outside.mkdir()
    (outside / "keep.txt").write_text("sentinel")
    os.symlink(outside, root / "link")

    with pytest.raises(LocalFsError) as refused:
        safefs.open_folder(root / "link" / "x", [tmp_path / "roots"], create=True)
    assert refused.value.code == "not_a_folder"
    assert "link" in refused.value.message
    with pytest.raises(LocalFsError) as outside_roots:
        safefs.open_folder(outside, [tmp_path / "roots"], create=False)
    assert outside_roots.value.code == "outside_roots"
    with pytest.raises(LocalFsError):
        safefs.open_folder(root / ".." / ".." / "outside", [tmp_path / "roots"], create=False)

    fd = safefs.open_folder(root, [tmp_path / "roots"], create=False)
    try:
        replaced = safefs.open_dir_at(fd, "link", "/link", make=True, replace=True)
        os.close(replaced)
        assert not (root / "link").is_symlink()
        assert (root / "link").is_dir()
        os.symlink(outside, root / "real" / "inner")
        assert safefs.remove_at(fd, "real") == 1  # the link itself
    finally:
        os.close(fd)
    assert (outside / "keep.txt").read_text() == "sentinel"
    assert not (root / "real").exists()
