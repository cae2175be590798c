"""Which part of the data a check reads: `--read-data-subset n/N`, rotating per run.

Run k (0-based, from ``plan_states.check_counter``) reads subset ``k mod N + 1`` of N, so
N consecutive checks read every pack of the repository once. A subset given explicitly on
a request (``"2/5"``, ``"10%"``) is read as given and does not move the rotation.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from app.models.shapes import JobParams, StoredVerification

DEFAULT_SUBSETS = 12
_PART = re.compile(r"^(\d{1,6})/(\d{1,6})$")
_PERCENT = re.compile(r"^(\d{1,3}(?:\.\d{1,3})?)%$")


def validate(value: str) -> str:
    """``n/N`` with 1 <= n <= N, or ``x%`` with 0 < x <= 100; ValueError otherwise."""
    text = value.strip()
    if m := _PART.match(text):
        n, total = int(m.group(1)), int(m.group(2))
        if not 1 <= n <= total:
            raise ValueError(f"'{text}': n/N needs 1 <= n <= N")
        return f"{n}/{total}"
    if m := _PERCENT.match(text):
        if not 0 < float(m.group(1)) <= 100:
            raise ValueError(f"'{text}': a percentage must be above 0 and at most 100")
        return text
    raise ValueError(f"'{text}' is not a subset: use n/N (e.g. 3/12) or a percentage (e.g. 10%)")


def subsets_of(verification: StoredVerification | None) -> int:
    value = verification.read_data_subsets if verification is not None else 0
    return value if value >= 1 else DEFAULT_SUBSETS


@dataclass(frozen=True)
class Choice:
    subset: str | None  # what restic reads; None: structure only
    rotating: bool  # advance the counter once this subset was read


def choose(params: JobParams, total: int, counter: int) -> Choice:
    """From the job's params: absent → the rotation's next subset; null → none; a string
    → that subset."""
    if "read_data_subset" not in params.model_fields_set or params.rotate:
        return Choice(f"{counter % total + 1}/{total}", True)
    given = params.read_data_subset
    return Choice(validate(str(given)) if given else None, False)
