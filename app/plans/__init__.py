"""The backup plan of a pod: which repository each (pod, plan) uses, who may see it, and
its status record (``plan_states``).

Two plans per pod: the owner's (their bucket, their settings) and the platform's (the
operator's storage, for server-wide recovery, visible to admins only). Nothing here knows
about jobs: callers hand in what opening a repository needs (see ``targets.RepoAccess``).
"""

from __future__ import annotations

from app.auth.dependencies import Principal
from app.models.kinds import Plan


def visible(principal: Principal, plan: str) -> bool:
    """Whether ``principal`` may see anything of ``plan`` (the platform plan: admins only).
    Callers answer 404 otherwise, as for another account's pod."""
    return plan != Plan.PLATFORM or principal.is_admin
