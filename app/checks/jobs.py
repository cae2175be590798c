"""Job kind `check`: `restic check`, then a rotating `--read-data-subset`, then a trial
restore (the latest dump into a scratch database, a sample of files against the index).

Result: ``{"ok", "subset", "rotating", "check", "trial_restore", "files"}``. The job
succeeds when everything passed (an inconclusive drill, e.g. no drill server, does not fail
it). It fails with ``repository_damaged`` when restic finds missing or corrupt data, and
with ``check_failed`` when the repository is sound but the latest backup did not restore as
recorded; the report then lands in the job's result too (``failed`` puts it there).

The structure check runs first on its own: with a pack missing, reading data would make
restic retry the missing object for a long while, and the structure check already names it.
``last_verification`` in plan_states is written in the finishing transaction either way.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.checks import drills, subsets
from app.engine.context import JobContext, JobOutcome
from app.engine.errors import JobFailure
from app.engine.locks import repository_lock
from app.integrations.restic import Repository, ResticError
from app.integrations.restic.commands import CheckOutcome
from app.jobs import repository as jobs
from app.models import BackupSettings, CopySettings, Job, Pod
from app.models.base import utcnow
from app.models.kinds import Plan
from app.models.settings import TargetRow
from app.models.shapes import JobError
from app.plans import repository as plan_states
from app.plans import targets
from app.platform import maintenance

DAMAGED_HINT = (
    "the repository is missing data or holds corrupt data. With the restore kit's environment "
    "(GET /v1/pods/{pod_id}/restore-kit) run `restic check` to see the damage, then "
    "`restic repair index` and `restic repair snapshots --forget` (restic 0.16 or newer; "
    "`restic rebuild-index` on older versions); the next backup uploads again what the pod "
    "still has"
)
CHECK_FAILED_HINT = (
    "the repository is sound but the latest backup did not restore as recorded (see the job's "
    "result): run a new backup and check again; if it fails again, the app's data or dump "
    "needs a look"
)


PROBE_SECONDS = 60.0


class CheckFailed(JobFailure):
    """A check that found a problem; its report goes with the error."""

    def __init__(self, code: str, message: str, report: dict[str, Any], hint: str) -> None:
        super().__init__(code, message, hint=hint, retryable=False)
        self.report = report

    def as_error(self) -> JobError:
        return super().as_error().model_copy(update={"report": self.report})


@dataclass
class Setup:
    pod: Pod
    target: targets.Target
    subsets: int
    counter: int
    has_repository: bool


async def _load(ctx: JobContext) -> Setup:
    plan = ctx.job.plan
    async with ctx.session() as session:
        pod = await session.get(Pod, ctx.job.pod_id)
        if pod is None:
            raise JobFailure("pod_deleted", "the pod was deleted", retryable=False)
        total, exists = subsets.DEFAULT_SUBSETS, True
        if plan in (Plan.OWNER, Plan.COPY):
            row: TargetRow | None = (
                await session.get(CopySettings, pod.id)
                if plan == Plan.COPY
                else await session.get(BackupSettings, pod.id)
            )
            total = subsets.subsets_of(row.verification if row else None)
            exists = row is not None and row.repository_id is not None
        state = await plan_states.get(session, pod.id, plan)
        target = await targets.resolve(session, ctx.settings, ctx.services.keyring, pod, plan)
    ctx.secret(*target.repo.secret_values())
    return Setup(pod, target, total, state.check_counter if state else 0, exists)


async def _check(ctx: JobContext, repo: Repository, subset: str | None) -> CheckOutcome:
    """`restic check`; a stall whose storage still answers is a missing object, not an outage.

    restic before 0.17 retries loading an object the storage does not have (a deleted pack
    holding trees) for a long while, which reads as a storage that keeps failing. When the
    repository's config still loads at once, the storage is fine: report the damage.
    """
    restic = ctx.services.restic
    try:
        return await restic.check(repo, read_data_subset=subset, cancel=ctx.cancel)
    except ResticError as exc:
        if exc.code != "storage_unreachable" or ctx.cancel.is_set():
            raise
        try:
            await restic.cat_config(repo, cancel=ctx.cancel, timeout=PROBE_SECONDS)
        except ResticError:
            raise exc from None
        return CheckOutcome(
            ok=False,
            output=[],
            errors=[
                "restic kept retrying data the storage does not return (a pack is missing "
                f"or unreadable), while the storage itself answers: {exc.message}"
            ],
        )


async def _repository_turn(ctx: JobContext, target: targets.Target) -> bool:
    interval = timedelta(days=ctx.settings.platform_check_interval_days)
    async with ctx.transaction() as session:
        mine = await maintenance.claim(session, target.repo.lock_key, "check", interval)
    return mine


def _first_error(errors: list[str]) -> str:
    for line in errors:
        if line.strip() and "repository contains errors" not in line:
            return line.strip()
    return "restic check reported errors"


class CheckHandler:
    async def run(self, ctx: JobContext) -> JobOutcome:
        setup = await _load(ctx)
        params = ctx.job.params
        choice = subsets.choose(params, setup.subsets, setup.counter)
        trial_on = params.trial_restore
        if not setup.has_repository:
            raise JobFailure(
                "nothing_to_verify",
                "the pod has no backup to verify yet",
                hint="run a backup first",
                retryable=False,
            )
        repo = setup.target.repo

        async def _waiting() -> None:
            await ctx.phase("waiting for the repository lock")

        # A repository many pods share is checked once per interval by one pod's job; the
        # others only run their own trial restore, beside backups (a shared lock).
        own_part_only = setup.target.shared_by_pods and not await _repository_turn(
            ctx, setup.target
        )
        async with repository_lock(
            ctx.services.engine,
            repo.lock_key,
            cancel=ctx.cancel,
            on_wait=_waiting,
            shared=own_part_only,
        ):
            if own_part_only:
                # Checked repository-wide by another pod's job this interval: only this pod's
                # own part (the trial restore) is left.
                outcome = CheckOutcome(ok=True, output=[], errors=[])
                choice = replace(choice, subset=None, rotating=False)
            else:
                await ctx.phase("checking the repository")
                outcome = await _check(ctx, repo, None)
            check: dict[str, Any] = {
                "ok": outcome.ok,
                "structure_ok": outcome.ok,
                "read_data_subset": None,
                "errors": outcome.errors[:50],
            }
            if outcome.ok and choice.subset:
                await ctx.phase(f"reading data {choice.subset}")
                data = await _check(ctx, repo, choice.subset)
                check.update(ok=data.ok, read_data_subset=choice.subset, errors=data.errors[:50])
            report: dict[str, Any] = {
                "ok": check["ok"],
                "subset": check["read_data_subset"],
                "rotating": choice.rotating,
                "check": check,
                "trial_restore": {"ok": None, "skipped": "the repository check failed"},
                "files": {"ok": None, "skipped": "the repository check failed"},
            }
            if not check["ok"]:
                message = f"restic check found errors: {_first_error(check['errors'])}"
                raise CheckFailed("repository_damaged", message, report, DAMAGED_HINT)
            if trial_on:
                drill, files = await drills.trial(ctx, repo, seed=str(setup.counter))
            else:
                drill = files = {"ok": None, "skipped": "not requested"}
        report.update(trial_restore=drill, files=files)
        report["ok"] = drill.get("ok") is not False and files.get("ok") is not False
        if not report["ok"]:
            problems = [*drill.get("problems", []), *files.get("problems", [])]
            damaged = bool(drill.get("damaged") or files.get("damaged"))
            raise CheckFailed(
                "repository_damaged" if damaged else "check_failed",
                "trial restore failed: " + "; ".join(problems[:3]),
                report,
                DAMAGED_HINT if damaged else CHECK_FAILED_HINT,
            )
        job = ctx.job

        async def finalize(session: AsyncSession) -> None:
            await record(session, job, report, None)

        return JobOutcome(result=report, finalize=finalize)

    async def failed(self, session: AsyncSession, job: Job, error: JobError) -> None:
        if job.pod_id is None or error.code == "canceled":
            return
        report = (error.model_extra or {}).get("report")
        if isinstance(report, dict):
            # The runner stores no result for a failed job: the report belongs there, and the
            # error keeps code, message and hint (the webhook still gets the whole error).
            plain = JobError(code=error.code, message=error.message, hint=error.hint)
            await jobs.replace_failure(session, job.id, result=report, error=plain)
        await record(session, job, report if isinstance(report, dict) else None, error)


async def record(
    session: AsyncSession,
    job: Job,
    report: dict[str, Any] | None,
    error: JobError | None,
) -> None:
    """``last_verification`` for status; the rotation moves on once its subset was read."""
    assert job.pod_id is not None
    ok = bool(report and report.get("ok")) and error is None
    verification = {
        "at": utcnow().isoformat(),
        "ok": ok,
        "subset": report.get("subset") if report else None,
        "summary": summarize(report, error),
        "job_id": str(job.id),
        "code": error.code if error else None,
        "check_ok": (report or {}).get("check", {}).get("ok"),
        "trial_restore_ok": ((report or {}).get("trial_restore") or {}).get("ok"),
        "files_ok": ((report or {}).get("files") or {}).get("ok"),
    }
    await plan_states.upsert(session, job.pod_id, job.plan, last_verification=verification)
    if report and report.get("rotating") and report.get("subset"):
        await plan_states.advance_check_counter(session, job.pod_id, job.plan)


def summarize(report: dict[str, Any] | None, error: JobError | None) -> str:
    """One line for people: what was checked and what was found."""
    if report is None:
        message = (error.message if error else None) or "unknown error"
        return f"could not verify: {message}"
    check = report.get("check") or {}
    parts = []
    if check.get("ok"):
        read = check.get("read_data_subset")
        parts.append(f"repository ok (data read: {read})" if read else "repository ok")
    else:
        parts.append("repository damaged: " + _first_error(check.get("errors") or []))
    drill = report.get("trial_restore") or {}
    if drill.get("ok") is True:
        parts.append(f"dump restored, {len(drill.get('tables') or {})} table(s) match")
    elif drill.get("ok") is False:
        parts.append("trial restore failed: " + "; ".join((drill.get("problems") or [])[:2]))
    elif drill.get("skipped"):
        parts.append(f"trial restore skipped ({drill['skipped']})")
    files = report.get("files") or {}
    if files.get("ok") is True:
        parts.append(f"{files.get('sampled', 0)} file(s) restored and verified")
    elif files.get("ok") is False:
        parts.append("files: " + "; ".join((files.get("problems") or [])[:2]))
    return "; ".join(parts)
