"""Errors of the jobs API."""

from __future__ import annotations

from app.errors import Conflict


class JobAlreadyFinished(Conflict):
    message = "The job has already finished"


class PodBusy(Conflict):
    message = "Another job is running for this pod"
