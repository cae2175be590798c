"""Job metrics of a worker process (bounded labels: kind, plan, status, code — no pod ids)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

JOBS_FINISHED = Counter(
    "podbackup_jobs_finished_total", "Jobs that reached a final state", ["kind", "plan", "status"]
)
JOB_RETRIES = Counter(
    "podbackup_job_retries_total", "Attempts that will be retried", ["kind", "code"]
)
JOB_SECONDS = Histogram(
    "podbackup_job_seconds",
    "Duration of a job attempt",
    ["kind"],
    buckets=(1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600),
)
BACKUP_BYTES_ADDED = Counter(
    "podbackup_backup_bytes_added_total", "Bytes restic added to repositories", ["plan"]
)
BACKUP_FILES_BYTES = Counter(
    "podbackup_backup_source_bytes_downloaded_total", "Pod file bytes downloaded over SFTP"
)
RECONCILED = Counter(
    "podbackup_reconciled_jobs_total", "Jobs the reconciler re-enqueued or failed", ["action"]
)
