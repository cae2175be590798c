"""The OpenAPI document describes every operation with a checked example, and its error
schemas are the registries the code raises from."""

from __future__ import annotations

import ast
import json
import uuid
from collections.abc import Iterator
from functools import cache
from importlib.metadata import version
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest
from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from pydantic import TypeAdapter

from app.apidoc.build import EVENTS_PATH, operations
from app.apidoc.causes import AUTH_LIMIT, SHARED
from app.apidoc.operations import OPERATIONS
from app.apidoc.readme import block as readme_block
from app.auth.dependencies import authenticate, require_admin
from app.engine.reconcile import WORKER_LOST
from app.errors import _HTTP_NAMES
from app.jobs import repository as jobs
from app.main import create_app
from app.models import Job
from app.models.errorcodes import JOB_ERROR_CODES
from app.models.shapes import JobProgress
from tests.conftest import Tenant
from tests.jobs.test_jobs_api import configured_pod

APP = Path(__file__).resolve().parent.parent / "app"
SHARED_CAUSES = {cause.name for _call, causes in SHARED for cause in causes}


@cache
def _app() -> FastAPI:
    return create_app()


@cache
def _spec() -> dict[str, Any]:
    # A copy: the tests below must not change the document other tests read.
    spec: dict[str, Any] = json.loads(json.dumps(_app().openapi()))
    return spec


def _ops() -> Iterator[tuple[str, dict[str, Any]]]:
    for path, verbs in _spec()["paths"].items():
        for verb, op in verbs.items():
            yield f"{verb.upper()} {path}", op


def _examples(op: dict[str, Any]) -> Iterator[tuple[str, str, Any, dict[str, Any]]]:
    """(where, media type, value, schema) of every example of an operation."""
    body = op.get("requestBody", {}).get("content", {})
    for media_type, media in body.items():
        for example in media.get("examples", {}).values():
            yield "request", media_type, example["value"], media.get("schema", {})
    for status, answer in op["responses"].items():
        for media_type, media in answer.get("content", {}).items():
            for name, example in media.get("examples", {}).items():
                if name not in SHARED_CAUSES:
                    yield status, media_type, example["value"], media.get("schema", {})


def _validate(value: Any, schema: dict[str, Any]) -> None:
    document = {**schema, "components": _spec()["components"]}
    jsonschema.Draft202012Validator(document).validate(value)


def test_every_operation_has_a_description_and_an_example() -> None:
    assert set(OPERATIONS) == set(operations(_app())), "OPERATIONS names exactly the routes"
    bare = [key for key, op in _ops() if "**Who**" not in (op.get("description") or "")]
    assert bare == [], "say who may call it"
    without = [key for key, op in _ops() if not list(_examples(op))]
    assert without == []


def test_every_example_matches_its_schema() -> None:
    checked = 0
    for key, op in _ops():
        route = operations(_app())[key][0]
        for where, media_type, value, schema in _examples(op):
            if media_type != "application/json":
                assert isinstance(value, str), (key, where)
                continue
            _validate(value, schema)
            if where == "request":  # the server's own validation, validators included
                TypeAdapter(route.dependant.body_params[0].field_info.annotation).validate_python(
                    value
                )
            elif where.startswith("2") and route.response_model is not None:
                TypeAdapter(route.response_model).validate_python(value)
            checked += 1
    assert checked > 60


def test_job_error_codes_are_the_registry() -> None:
    schemas = _spec()["components"]["schemas"]
    codes = schemas["JobErrorCode"]
    assert codes["enum"] == list(JOB_ERROR_CODES)
    assert codes["x-enum-descriptions"] == [d.meaning for d in JOB_ERROR_CODES.values()]
    assert {c: v["retryable"] for c, v in codes["x-codes"].items()} == {
        c: d.retryable for c, d in JOB_ERROR_CODES.items()
    }
    assert schemas["JobErrorRead"]["properties"]["code"] == {
        "$ref": "#/components/schemas/JobErrorCode"
    }


def _app_error_classes() -> set[str]:
    """Every subclass of AppError defined in app/, read from the source."""
    classes = [
        node
        for path in APP.rglob("*.py")
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.ClassDef)
    ]
    found = {"AppError"}
    while more := {
        c.name
        for c in classes
        if c.name not in found
        and any(getattr(b, "id", getattr(b, "attr", None)) in found for b in c.bases)
    }:
        found |= more
    return found


def _error_literals() -> set[str]:
    """Names written as literals into error bodies: ``{"error": "<Name>"}`` and
    ``error: str = "<Name>"`` fields."""
    names = set()
    for path in APP.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Dict):
                for key, value in zip(node.keys, node.values, strict=True):
                    if (
                        isinstance(key, ast.Constant)
                        and key.value == "error"
                        and isinstance(value, ast.Constant)
                        and isinstance(value.value, str)
                        and value.value[:1].isupper()
                    ):
                        names.add(value.value)
            if (
                isinstance(node, ast.AnnAssign)
                and getattr(node.target, "id", None) == "error"
                and isinstance(node.value, ast.Constant)
                and isinstance(node.value.value, str)
            ):
                names.add(str(node.value.value))
    return names


def test_api_error_names_are_every_error_the_code_answers() -> None:
    schemas = _spec()["components"]["schemas"]
    names = schemas["ApiError"]["enum"]
    assert len(names) == len(schemas["ApiError"]["x-enum-descriptions"])
    assert _app_error_classes() - {"AppError"} <= set(names)
    assert set(_HTTP_NAMES.values()) | {"InternalError", "HTTPError"} <= set(names)
    assert _error_literals() <= set(names)
    assert {"RepositoryMismatch", "PodBusy", "NoBackupTarget"} <= set(names)
    assert schemas["ErrorBody"]["properties"]["error"] == {"$ref": "#/components/schemas/ApiError"}


def _calls(dependant: Dependant) -> set[Any]:
    return {d.call for d in dependant.dependencies} | {
        call for d in dependant.dependencies for call in _calls(d)
    }


def test_authenticated_operations_document_429_and_503() -> None:
    admin_only = 0
    for key, (route, _path, _verb) in operations(_app()).items():
        op = dict(_ops())[key]
        if authenticate not in _calls(route.dependant):
            continue
        admin_only += require_admin in _calls(route.dependant)
        for status in ("429", "503"):
            answer = op["responses"][status]
            media = answer["content"]["application/json"]
            assert media["schema"] == {"$ref": "#/components/schemas/ErrorBody"}, (key, status)
            assert "Retry-After" in answer["headers"], (key, status)
    assert admin_only >= 5
    download = dict(_ops())["GET /v1/pods/{pod_id}/snapshots/{snapshot_id}/download"]
    assert set(download["responses"]["429"]["content"]["application/json"]["examples"]) == {
        "auth_limit",
        "slots_full",
        "account_share",
    }


async def test_the_served_document_is_the_completed_one(client: httpx.AsyncClient) -> None:
    served = (await client.get("/openapi.json")).json()
    assert served["components"]["schemas"]["JobErrorCode"]["enum"] == list(JOB_ERROR_CODES)
    assert served["paths"] == _spec()["paths"]


async def test_the_documented_429_is_what_the_limiter_answers(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    headers = {"Authorization": f"Bearer pb_{uuid.uuid4().hex}"}
    for _ in range(app.state.settings.auth_fail_limit):
        assert (await client.get("/v1/me", headers=headers)).status_code == 401
    r = await client.get("/v1/me", headers=headers)
    assert r.status_code == 429
    assert r.json() == AUTH_LIMIT.body
    assert r.headers["Retry-After"] == str(AUTH_LIMIT.retry_after)


def _stream(text: str) -> list[tuple[str, Any]]:
    events = []
    for block in text.strip().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        if "event" in fields:
            events.append((fields["event"], json.loads(fields["data"])))
    return events


async def test_the_event_stream_matches_its_schemas(
    client: httpx.AsyncClient, tenant: Tenant, app: FastAPI
) -> None:
    pod = await configured_pod(client, tenant, app)
    job = (await client.post(f"/v1/pods/{pod['id']}/backups", headers=tenant.headers)).json()
    job_id = uuid.UUID(job["id"])
    # The job's life as a worker and the reconciler write it: running, progress, a cancel
    # request (a log line), then its worker lost on the last attempt (failed, coded).
    async with app.state.sessionmaker() as session:
        assert await jobs.claim(session, job_id, "worker-1") is not None
        await jobs.set_progress(session, job_id, JobProgress(percent=12.5, phase="uploading"))
        await session.commit()
    await client.post(f"/v1/jobs/{job['id']}/cancel", headers=tenant.headers)
    async with app.state.sessionmaker() as session:
        await jobs.fail_lost(session, await session.get_one(Job, job_id), WORKER_LOST)
        await session.commit()
    r = await client.get(
        f"/v1/jobs/{job['id']}/events", headers={**tenant.headers, "Last-Event-ID": "0"}
    )
    documented = _spec()["paths"][EVENTS_PATH]["get"]["responses"]["200"]["x-events"]
    seen = _stream(r.text)
    assert {name for name, _ in seen} == {"state", "progress", "log", "end"}
    for name, data in seen:
        _validate(data, documented[name])
    assert seen[-2][1]["error"]["code"] == "worker_lost"
    with pytest.raises(jsonschema.ValidationError):
        _validate({"status": "exploded"}, documented["end"])


def test_info_has_the_package_version_and_an_overview() -> None:
    info = _spec()["info"]
    assert info["version"] == version("podbackup")
    for section in ("## Authentication", "## Errors", "## Lists", "## Jobs"):
        assert section in info["description"]


def test_readme_job_error_table_is_current() -> None:
    readme = (APP.parent / "README.md").read_text()
    assert readme_block() in readme, "README.md's job error table is stale: run `make docs`"
