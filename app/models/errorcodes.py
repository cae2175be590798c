"""Every code a job's ``error.code`` can hold: what it means, what to do, whether the job is
retried. The one list: the engine takes its retryable codes from here, the OpenAPI document
publishes it as the ``JobErrorCode`` schema, and ``tests/models/test_errorcodes.py`` reads
the source to keep it equal to the codes the code base raises (a new code goes here)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class ErrorCode:
    meaning: str
    hint: str  # the usual fix; the job's own ``hint`` is more precise where it has one
    retryable: bool = False  # the engine retries it (with backoff) up to the attempt limit


_STORAGE = "the backup storage (the S3 bucket, or a local repository folder)"

JOB_ERROR_CODES: Mapping[str, ErrorCode] = {
    # -- the pod's files (SFTP, or a local folder) and the pod's hooks ---------------------
    "unreachable": ErrorCode(
        "A host of the pod (SFTP, database, stop/start hook) did not answer, or its name "
        "does not resolve.",
        "check the host and port in the pod's settings and that it accepts connections "
        "from the backup workers",
        retryable=True,
    ),
    "connection_lost": ErrorCode(
        "The SFTP connection dropped during the transfer.",
        "nothing to do: the job is retried",
        retryable=True,
    ),
    "auth_failed": ErrorCode(
        "The pod's SFTP server or database refused the username, password or key.",
        "update the credentials in the pod's settings (PATCH /v1/pods/{pod_id})",
    ),
    "host_key_mismatch": ErrorCode(
        "The SFTP server presented another host key than the one pinned on the first backup.",
        "if the pod moved or was re-created, clear the pinned host key in the pod's "
        "settings; otherwise treat it as an attack",
    ),
    "not_found": ErrorCode(
        "The pod's folder (SFTP path or local path) does not exist.",
        "fix the folder in the pod's file settings",
    ),
    "hostile_listing": ErrorCode(
        "The pod's SFTP server sent a listing no honest server sends (a name twice, a name "
        "that is not one path component); nothing was written.",
        "check the software serving SFTP on the pod",
    ),
    "unsafe_entry": ErrorCode(
        "An entry of the worker's cache would have been reached through a symlink; nothing "
        "was written through it.",
        "clear the pod's folder in PODBACKUP_CACHE_DIR and retry; report it if it recurs",
    ),
    "not_a_folder": ErrorCode(
        "A symlink or a file stands where a restore needs a folder; it was not followed.",
        "replace it with a real folder, or restore the folder above it",
    ),
    "outside_roots": ErrorCode(
        "A local folder (admin-only `local` source or target) is not under PODBACKUP_LOCAL_ROOTS.",
        "move the folder under an allowed root, or have the operator add its root",
    ),
    "bad_path": ErrorCode(
        "A path to restore is not a plain relative path (it holds `.` or `..`).",
        "name the path as the snapshot's file list shows it",
    ),
    "changed": ErrorCode(
        "A file of the pod's local folder changed type while it was being copied.",
        "run the job again, or stop the pod's writers with its stop hook",
    ),
    "restore_incomplete": ErrorCode(
        "A restored path could not be written into the pod's folder.",
        "fix the permissions of the pod's folder and retry",
    ),
    "restore_not_verified": ErrorCode(
        "A restored file does not hold the snapshot's bytes after it was written.",
        "stop whatever writes into the pod's folder during the restore, and retry",
    ),
    "hook_failed": ErrorCode(
        "The pod's stop or start hook did not answer, or answered with an error status.",
        "check that the hook URL is reachable from the backup service and answers 2xx",
    ),
    "address_refused": ErrorCode(
        "A host of the pod or the storage resolved to an address this service does not "
        "connect to (loopback, private, link-local, metadata), or a hook is plain http.",
        "use the public name of the server (and https:// for hooks); an operator may "
        "allow a network with PODBACKUP_ALLOW_NETWORKS",
    ),
    # -- the pod's database -----------------------------------------------------------------
    "database_not_found": ErrorCode(
        "The pod's database does not exist, or the user may not use it.",
        "check the database name in the pod's settings",
    ),
    "client_too_old": ErrorCode(
        "The worker's dump client is older than the pod's database server.",
        "install a newer PostgreSQL/MariaDB client on the workers",
    ),
    "client_missing": ErrorCode(
        "The dump or load program for the pod's database is not installed on the worker.",
        "install it on the workers (apt-get install postgresql-client or mariadb-client)",
    ),
    "dump_failed": ErrorCode(
        "The dump program failed; the message shows its last error.",
        "fix what the message names in the pod's database, then back up again",
    ),
    "dump_incomplete": ErrorCode(
        "The dump ended before its completion footer (the connection dropped or the server "
        "stopped).",
        "nothing to do: the job is retried; if it keeps happening, check the database "
        "server's logs",
        retryable=True,
    ),
    "load_failed": ErrorCode(
        "A dump could not be loaded into a database; the message names the statement.",
        "check the target database (space, version, permissions) and retry",
    ),
    "dump_refused": ErrorCode(
        "A dump from the snapshot was not loaded: it holds a client command (a backslash "
        "command, a psql variable), which a dump written by pg_dump/mariadb-dump never has "
        "and this service never runs.",
        "inspect the dump (download …/download?path=/database) and load it by hand if you trust it",
    ),
    "dump_not_recorded": ErrorCode(
        "A dump that the service did not record at backup time (a snapshot made outside "
        "it, or a dump changed since) was not loaded.",
        "read it (…/download?path=/database), then restore again with "
        '"allow_unrecorded_dump": true, or restore the files only',
    ),
    "no_database_dump": ErrorCode(
        "The snapshot holds no database dump to restore.",
        "restore files only (`database: false`)",
    ),
    # -- the repository (restic) --------------------------------------------------------------
    "storage_unreachable": ErrorCode(
        f"{_STORAGE.capitalize()} did not answer.",
        "check the endpoint, the provider's status page and that the key is valid",
        retryable=True,
    ),
    "access_denied": ErrorCode(
        "The storage refused the key (a wrong secret, or a key without access to the bucket).",
        "check the access key and secret, and that the key may read and write the bucket",
    ),
    "wrong_password": ErrorCode(
        "The repository password does not open the repository in the target.",
        "the bucket may hold another pod's repository; give this pod a bucket of its own",
    ),
    "repository_not_found": ErrorCode(
        "The target holds no restic repository.",
        "run a backup to create it",
    ),
    "repository_mismatch": ErrorCode(
        "The target holds another restic repository than the one recorded for this pod.",
        "give the pod an empty bucket of its own, or delete and re-save the backup "
        "settings if the bucket was emptied on purpose",
    ),
    "repository_locked": ErrorCode(
        "Another restic process holds a lock on the repository.",
        "nothing to do: the job is retried; a stale lock is removed",
        retryable=True,
    ),
    "repository_damaged": ErrorCode(
        "The repository is missing data or holds corrupt data.",
        "run `restic check` with the restore kit, then `restic repair`",
    ),
    "target_unusable": ErrorCode(
        "The repository location cannot be used (a file, under a file, not writable).",
        "fix the path in the backup settings or its permissions",
    ),
    "interrupted": ErrorCode(
        "restic was interrupted.",
        "run the job again",
    ),
    "failed": ErrorCode(
        "restic or the SFTP server failed in a way without a code of its own; the message "
        "has its words.",
        "read the message; retry, and contact support if it persists",
    ),
    "check_failed": ErrorCode(
        "The repository is sound but the latest backup did not restore as recorded (the "
        "check's report is in the job's result).",
        "run a new backup and check again",
    ),
    # -- what the job was asked -----------------------------------------------------------
    "not_configured": ErrorCode(
        "The pod has no backup settings (or they were deleted while the job waited).",
        "set a target with PUT /v1/pods/{pod_id}/backup-settings and verify it",
    ),
    "platform_not_configured": ErrorCode(
        "Platform backups are off on this service.",
        "an operator sets PODBACKUP_PLATFORM_REPOSITORY and its password",
    ),
    "copy_not_configured": ErrorCode(
        "The pod has no second copy (or it was deleted while the job waited).",
        "set one with PUT /v1/pods/{pod_id}/copy-settings",
    ),
    "bad_plan": ErrorCode(
        "The job names a plan this service does not know.", "use plan owner, copy or platform"
    ),
    "maintenance_key_missing": ErrorCode(
        "The pod's target is in lock mode (its backup key cannot delete) and has no "
        "maintenance key: forget and prune were refused before restic ran; nothing was "
        "deleted.",
        "add target.immutable.maintenance_key (a key that may delete) to the pod's backup "
        "settings; GET /v1/providers shows the policies of both keys",
    ),
    "forget_refused": ErrorCode(
        "restic reported snapshots forgotten, but the storage refused to delete some of "
        "them (restic exits 0 then); only those really gone left the snapshot list, and "
        "nothing was pruned.",
        "give the key that prunes (in lock mode the maintenance key) delete access to the "
        "bucket's objects",
    ),
    "bad_policy": ErrorCode(
        "The retention policy keeps nothing.",
        "set at least one keep rule in the pod's retention settings",
    ),
    "nothing_to_back_up": ErrorCode(
        "The pod has neither a file source nor a database.",
        "add the pod's SFTP access or database in its settings",
    ),
    "nothing_to_verify": ErrorCode("The pod has no backup to check yet.", "run a backup first"),
    "snapshot_not_found": ErrorCode(
        "The snapshot is not in the repository (any more).",
        "list the snapshots (GET /v1/pods/{pod_id}/snapshots) and pick another",
    ),
    "path_not_found": ErrorCode(
        "A path to restore is not in the snapshot.",
        "browse the snapshot (…/files?path=/files) to find the path",
    ),
    "pod_deleted": ErrorCode("The pod was deleted while the job waited or ran.", "nothing"),
    # -- the worker -------------------------------------------------------------------------
    "disk_full": ErrorCode(
        "The worker's disk is full.",
        "free space in PODBACKUP_CACHE_DIR on the workers",
    ),
    "timeout": ErrorCode(
        "The job or one of its steps exceeded its time limit.",
        "a larger pod may need a longer limit (PODBACKUP_JOB_TIMEOUT_SECONDS)",
    ),
    "canceled": ErrorCode("The job was canceled on request.", "nothing"),
    "worker_lost": ErrorCode(
        "The worker running the job stopped beating (it died or lost its connection).",
        "nothing to do: the job is retried on another worker",
        retryable=True,
    ),
    "database_unavailable": ErrorCode(
        "The connection to the service's own database was lost during the job.",
        "nothing to do: the job is retried; check PostgreSQL if it keeps happening",
        retryable=True,
    ),
    "export_store_failed": ErrorCode(
        "The export archive was built but the service's export bucket did not take it (the "
        "operator's storage, not the pod's).",
        "nothing to do when it was unreachable (the job is retried); else tell the operator",
        retryable=True,
    ),
    "unknown_kind": ErrorCode(
        "No worker of this version runs this kind of job (queued by a newer version).",
        "finish upgrading the workers; the job can then be started again",
    ),
    "internal": ErrorCode(
        "An unexpected error in the service; the event was logged.",
        "report it with the job id",
    ),
}

RETRYABLE_JOB_CODES = frozenset(code for code, doc in JOB_ERROR_CODES.items() if doc.retryable)
