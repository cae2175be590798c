"""The rotation of read-data subsets: N consecutive runs read every part once."""

from __future__ import annotations

import pytest

from app.checks.subsets import Choice, choose, subsets_of, validate
from app.models.shapes import JobParams, StoredVerification


def test_rotation_covers_every_part_once_per_cycle() -> None:
    seen = [choose(JobParams(), 5, counter).subset for counter in range(10)]
    assert seen[:5] == ["1/5", "2/5", "3/5", "4/5", "5/5"]
    assert seen[5:] == seen[:5]
    assert choose(JobParams(rotate=True, trial_restore=False), 12, 13) == Choice("2/12", True)


def test_given_subsets_do_not_rotate() -> None:
    assert choose(JobParams(read_data_subset="2/3"), 12, 4) == Choice("2/3", False)
    assert choose(JobParams(read_data_subset="10%"), 12, 4) == Choice("10%", False)
    assert choose(JobParams(read_data_subset=None), 12, 4) == Choice(None, False)


@pytest.mark.parametrize("bad", ["0/3", "4/3", "1/0", "x", "0%", "101%", "-1/2", "1/2/3"])
def test_bad_subsets_are_refused(bad: str) -> None:
    with pytest.raises(ValueError, match=r"n/N|percentage|subset"):
        validate(bad)


def test_subsets_setting() -> None:
    assert subsets_of(StoredVerification(read_data_subsets=4)) == 4
    assert subsets_of(StoredVerification()) == 12
    assert subsets_of(None) == 12
