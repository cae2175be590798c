"""Importing this module registers the handler of every job kind (workers import it)."""

from app.backups import pipeline  # noqa: F401
from app.checks import jobs as check_jobs  # noqa: F401
from app.exports import jobs as export_jobs  # noqa: F401
from app.restores import jobs as restore_jobs  # noqa: F401
from app.retention import jobs as prune_jobs  # noqa: F401
from app.snapshots import jobs  # noqa: F401
