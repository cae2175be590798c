"""The OpenAPI document's ``info``: the overview a reader of /docs starts with."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version


def package_version() -> str:
    """The installed package's version (pyproject.toml), as the API's version."""
    try:
        return version("podbackup")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "0+unknown"


OVERVIEW = """
Incremental, encrypted, deduplicated backups of every pod (a hosted app) into its owner's
own S3 bucket with restic, plus database dumps, snapshot browsing, restore, retention,
verification and one-time exports.

## Authentication
Send `Authorization: Bearer <token>`. `admin` tokens see every account and manage accounts
and tokens; `account` tokens see only their account's pods, jobs, snapshots and webhooks:
another account's resource answers **404**, exactly like a missing one. A missing or invalid
token answers **401**; a valid token outside its scope **403**. Many failed authentications
from one address answer **429** for the rest of the minute (`Retry-After`).

## Errors
Every 4xx/5xx body is `{"error": "<Name>", "detail": <string or list>, "hint": <string>}`:
`error` is one of the `ApiError` names (branch on it), `detail` says what happened and
`hint` what to do. Bad input is **422** `ValidationFailed` with the fields in `detail`;
conflicts with the current state are **409**. **503** means a backing service (PostgreSQL,
the pod's storage) does not answer: retry after `Retry-After` seconds.

## Lists
`?page=1&limit=50` (the limit is capped) answers
`{"items": [...], "pagination": {"total_count": N, "max_page": M}}`.

## Jobs, and how to follow them
Every long operation (backup, restore, export, prune, check, refresh) is a job: the request
answers **202** with the job (`Location: /v1/jobs/{id}`) and a worker runs it. Follow it with
`GET /v1/jobs/{id}/events` (Server-Sent Events: `state`, `progress`, `log`, `end`) or poll
`GET /v1/jobs/{id}`. A job ends `succeeded`, `partial` (a backup that could not read some
files: they are listed in `result`), `failed` (with `error: {code, message, hint}`, `code`
one of `JobErrorCode`) or `canceled`. Retryable failures are retried with backoff before
the job fails. One job that changes a pod or its repository runs at a time (**409**
`PodBusy`); triggering a backup while one is queued or running returns that one.
"""
