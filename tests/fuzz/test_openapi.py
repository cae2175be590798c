"""Property-based fuzzing of every operation in the app's OpenAPI document (schemathesis,
in-process ASGI app on the real PostgreSQL and Redis, populated with two accounts' pods,
settings, jobs, snapshots, exports and webhooks).

Each operation is called with an admin token and with an account token, with valid and
with invalid data, half of the time addressing objects that exist. Required: no 5xx;
every 4xx/5xx in the error envelope ``{"error", "detail", "hint"?}``; the status code
documented; the body matching its schema; invalid data rejected with a 4xx.

Bounded for CI (a few examples per operation, about a minute in all);
PODBACKUP_TEST_LONG=1 (``make test-long``) runs many more.

Left out, and why:
- ``positive_data_acceptance``: schema-valid ids are mostly of objects that do not
  exist, and a 404 for them is right;
- ``negative_data_rejection``: what it flags here is by design — unknown query
  parameters are ignored, query values are strings on the wire ("false" is a valid
  action filter), and pydantic's lax mode reads ``true`` as 1 and ``"5"`` as 5; the
  Authorization header it drops is put back by the test (every case runs with a token).
  Invalid data still runs (negative mode) under every other check: no 5xx, the
  envelope, documented status codes;
- stateful checks (``use_after_free``, ``ensure_resource_availability``) and
  ``ignored_auth``/``object_level_authorization``: tenancy and auth have their own
  exact suite (tests/security);
- ``max_response_time``: tests never assert timings;
- ``GET /v1/jobs/{job_id}/events`` is a stream: seeded jobs are finished, so it ends;
  a stream of a job that never ends is cut after a few events by schemathesis.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import traceback
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from app.config import Settings
from app.main import create_app
from tests.conftest import REDIS_URL, SECRET_KEY
from tests.fixtures.database import truncate_all
from tests.security.world import World, build_world

LONG = os.environ.get("PODBACKUP_TEST_LONG") == "1"
EXAMPLES = 200 if LONG else 20  # per operation, token and generation mode


def envelope(ctx: Any, response: Any, case: Any) -> bool | None:
    """Every 4xx/5xx body is the error envelope."""
    if response.status_code < 400:
        return None
    try:
        body = response.json()
    except ValueError:
        raise AssertionError(f"{response.status_code} without a JSON body") from None
    assert isinstance(body, dict), body
    assert isinstance(body.get("error"), str), f"no 'error' name: {body}"
    assert "detail" in body, f"no 'detail': {body}"
    assert body.get("hint") is None or isinstance(body["hint"], str), body
    return None


CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance, envelope]  # fmt: skip


@dataclass
class Fuzz:
    schema: Any
    world: World


@pytest.fixture(scope="module")
def fuzz(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fuzz]:
    tmp: Path = tmp_path_factory.mktemp("fuzz")
    config = Settings(
        _env_file=None,  # type: ignore[call-arg]
        database_url=database_url,
        redis_url=REDIS_URL,
        queue_name=f"podbackup-test:fuzz:{secrets.token_hex(4)}",
        secret_keys=[SECRET_KEY],  # type: ignore[list-item]
        allow_networks=["127.0.0.0/8", "::1/128"],
        data_dir=tmp / "data",
        cache_dir=tmp / "cache",
        scheduler_enabled=False,
        auth_fail_limit=1_000_000,  # the fuzzer fails auth on purpose, all from one address
        verify_budget_seconds=3,
        before_update_max_wait_seconds=1,  # no worker runs: it answers 202 after a second
    )
    asyncio.run(truncate_all(database_url))
    app = create_app(config)
    world = asyncio.run(_populate(app))
    # schemathesis serves the app in its own event loop (lifespan included).
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    yield Fuzz(schema, world)
    with contextlib.suppress(Exception):
        from schemathesis.python.asgi import shutdown_lifespans

        shutdown_lifespans()


async def _populate(app: Any) -> World:
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            return await build_world(client, app.state.sessionmaker)


def _existing(world: World, operation: Any) -> dict[str, str] | None:
    names = [p.name for p in operation.path_parameters]
    if not names or any(n not in world.a.ids for n in names):
        return None
    return {n: world.a.ids[n] for n in names}


def _run(
    operation: Any,
    mode: GenerationMode,
    headers: dict[str, str],
    real: Any,
    statuses: set[int],
) -> None:
    strategy = operation.as_strategy(generation_mode=mode)
    if real is not None:
        strategy = st.one_of(strategy, operation.as_strategy(generation_mode=mode,
                                                             path_parameters=real))  # fmt: skip

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=not LONG,  # the same cases every CI run
        database=None,
        suppress_health_check=list(HealthCheck),
        phases=[Phase.explicit, Phase.generate, Phase.shrink],
    )
    @given(case=strategy)
    def run(case: Any) -> None:
        response = case.call(headers=headers)
        statuses.add(response.status_code)
        case.validate_response(response, checks=CHECKS, headers=headers)

    run()


def test_every_operation_survives_fuzzing(fuzz: Fuzz) -> None:
    world = fuzz.world
    tokens = {"admin": {"Authorization": f"Bearer {world.admin_token}"}, "account": world.a.headers}
    failures: list[str] = []
    reached: dict[str, set[int]] = {}
    operations = [r.ok() for r in fuzz.schema.get_all_operations()]
    # Deletions last: they remove what the others address.
    operations.sort(key=lambda op: op.method.upper() == "DELETE")
    for operation in operations:
        real = _existing(world, operation)
        if real and "token_id" in real:
            real = None  # never revoke the tokens the fuzzer itself uses
        for who, headers in tokens.items():
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                statuses = reached.setdefault(operation.label, set())
                try:
                    _run(operation, mode, headers, real, statuses)
                except Unsatisfiable:
                    assert mode == GenerationMode.NEGATIVE  # nothing to get wrong (no input)
                except (
                    Exception,
                    BaseExceptionGroup,
                ) as exc:  # collect all; fail once, listing all
                    text = "".join(traceback.format_exception_only(exc)).strip()
                    failures.append(f"{operation.label} [{who}, {mode.value}]: {text[:2000]}")
    assert len(operations) >= 40
    assert not failures, "\n\n".join(failures)
    # Not only 404s and 422s: most operations were driven to a success with real objects.
    succeeded = [label for label, codes in reached.items() if any(c < 300 for c in codes)]
    assert len(succeeded) >= 0.7 * len(operations), sorted(set(reached) - set(succeeded))
