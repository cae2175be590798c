"""The CLI's HTTP side: where the API is, the token, requests, errors and the job stream.

The URL comes from ``PODBACKUP_URL`` (default http://127.0.0.1:8000), the token from
``PODBACKUP_TOKEN``; either falls back to the config file that ``podbackup login`` writes
(``$PODBACKUP_CONFIG``, else ``$XDG_CONFIG_HOME/podbackup/config.toml``, else
``~/.config/podbackup/config.toml``). Every failure becomes a ``CliError`` with a message
and a hint, never a traceback.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
import tomllib
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

DEFAULT_URL = "http://127.0.0.1:8000"
MIN_PREFIX = 4  # shortest id prefix taken for a pod or job
FINAL = frozenset({"succeeded", "partial", "failed", "canceled"})


class CliError(Exception):
    """Shown as ``error: message`` (+ ``hint: …``); the CLI exits with ``code``. With
    ``--json`` it is printed as ``body()``: the API's envelope ``{error, detail, hint}``."""

    def __init__(
        self, message: str, hint: str | None = None, code: int = 2, error: str = "ClientError"
    ) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.code = code
        self.error = error

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"error": self.error, "detail": self.message}
        if self.hint:
            body["hint"] = self.hint
        return body


class ApiError(CliError):
    """The API answered 4xx/5xx with its envelope ``{error, detail, hint}``."""

    def __init__(self, status: int, error: str, detail: Any, hint: str | None) -> None:
        super().__init__(f"{detail_text(detail)} ({error}, HTTP {status})", hint, error=error)
        self.status = status
        self.detail = detail

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"error": self.error, "detail": self.detail, "status": self.status}
        if self.hint:
            body["hint"] = self.hint
        return body


def detail_text(detail: Any) -> str:
    """An envelope's ``detail`` as one line: a string as is, validation errors as
    ``field: message; …``, an object as ``key: value, …`` (never a Python repr)."""
    if isinstance(detail, list):  # validation errors: [{loc, msg}, …]
        parts = []
        for item in detail:
            if isinstance(item, dict):
                loc = ".".join(str(p) for p in item.get("loc", []) if p != "body")
                parts.append(f"{loc}: {item.get('msg')}" if loc else str(item.get("msg")))
            else:
                parts.append(detail_text(item))
        return "; ".join(parts)
    if isinstance(detail, dict):
        return ", ".join(f"{k}: {detail_text(v)}" for k, v in detail.items())
    return "-" if detail is None else str(detail)


# -- configuration ---------------------------------------------------------------------


def config_path() -> Path:
    if explicit := os.environ.get("PODBACKUP_CONFIG"):
        return Path(explicit)
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "podbackup" / "config.toml"


@dataclass
class ClientConfig:
    url: str
    token: str | None


def load_config() -> ClientConfig:
    path = config_path()
    saved: dict[str, Any] = {}
    if path.exists():
        try:
            saved = tomllib.loads(path.read_text())
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise CliError(
                f"cannot read {path}: {exc}", hint="fix it or write it again: podbackup login"
            ) from None
    url = os.environ.get("PODBACKUP_URL") or str(saved.get("url") or DEFAULT_URL)
    token = os.environ.get("PODBACKUP_TOKEN") or saved.get("token")
    return ClientConfig(url=url.rstrip("/"), token=str(token) if token else None)


def save_config(url: str, token: str) -> Path:
    """Write the config file readable by its owner only (it holds the token)."""
    path = config_path()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        # JSON string quoting is valid TOML basic-string quoting.
        fh.write(f"# podbackup CLI (written by `podbackup login`)\nurl = {json.dumps(url)}\n")
        fh.write(f"token = {json.dumps(token)}\n")
    tmp.replace(path)
    return path


# -- the client ------------------------------------------------------------------------


@dataclass
class Event:
    event: str
    data: Any
    id: int | None


class Api:
    def __init__(self, config: ClientConfig, *, require_token: bool = True) -> None:
        if require_token and not config.token:
            raise CliError(
                "no API token",
                hint="export PODBACKUP_TOKEN=<token>, or save one: "
                "podbackup login --url URL --token TOKEN",
                error="NoToken",
            )
        self.url = config.url
        headers = {"Authorization": f"Bearer {config.token}"} if config.token else {}
        self.http = httpx.Client(base_url=config.url, headers=headers, timeout=30)

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> Api:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- plumbing ----------------------------------------------------------------------

    @contextlib.contextmanager
    def _network(self) -> Iterator[None]:
        try:
            yield
        except httpx.ConnectError:
            raise CliError(
                f"cannot reach the podbackup API at {self.url}",
                hint="is it running (`make run`)? Set PODBACKUP_URL or `podbackup login --url`",
                error="Unreachable",
            ) from None
        except httpx.TimeoutException:
            raise CliError(
                f"the API at {self.url} did not answer in time", "retry", error="Timeout"
            ) from None
        except httpx.HTTPError as exc:
            raise CliError(f"talking to {self.url} failed: {exc}", error="NetworkError") from None

    def check(self, r: httpx.Response) -> None:
        if r.status_code < 400:
            return
        r.read()
        try:
            body = r.json()
        except ValueError:
            body = None
        if isinstance(body, dict) and "error" in body:
            hint = body.get("hint")
            if r.status_code == 401:
                hint = "check PODBACKUP_TOKEN (or `podbackup login`): the token is missing, "
                hint += "mistyped or revoked"
            raise ApiError(r.status_code, str(body["error"]), body.get("detail"), hint)
        raise ApiError(
            r.status_code, f"HTTP {r.status_code}", r.text[:300] or r.reason_phrase, None
        )

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        with self._network():
            r = self.http.request(method, path, **kwargs)
        self.check(r)
        return r.json() if r.content else None

    def get(self, path: str, **kwargs: Any) -> Any:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> Any:
        return self.request("POST", path, **kwargs)

    def items(self, path: str, params: dict[str, Any] | None = None, limit: int = 50) -> list[Any]:
        """Up to ``limit`` items of a paginated list, page by page."""
        out: list[Any] = []
        page = 1
        while len(out) < limit:
            size = min(200, limit - len(out))
            body = self.get(path, params={**(params or {}), "page": page, "limit": size})
            out.extend(body["items"])
            if page >= int(body["pagination"]["max_page"]) or not body["items"]:
                break
            page += 1
        return out[:limit]

    @contextlib.contextmanager
    def stream(self, path: str, params: dict[str, Any] | None = None) -> Iterator[httpx.Response]:
        with self._network(), self.http.stream("GET", path, params=params, timeout=120) as r:
            self.check(r)
            yield r

    # -- names -------------------------------------------------------------------------

    def pod(self, ref: str) -> dict[str, Any]:
        """A pod by id, unique name, or unique id prefix (4 characters at least)."""
        if _is_uuid(ref):
            return dict(self.get(f"/v1/pods/{ref}"))
        pods = self.items("/v1/pods", limit=10_000)
        matchers: list[Callable[[dict[str, Any]], bool]] = [
            lambda p: bool(p["name"] == ref),
            lambda p: bool(p["name"].lower() == ref.lower()),
            lambda p: len(ref) >= MIN_PREFIX and str(p["id"]).startswith(ref.lower()),
        ]
        for match in matchers:
            found = [p for p in pods if match(p)]
            if len(found) == 1:
                return dict(found[0])
            if len(found) > 1:
                ids = ", ".join(f"{p['id']} ({p['name']})" for p in found)
                raise CliError(
                    f"'{ref}' matches several pods: {ids}", hint="use the pod id", error="Ambiguous"
                )
        if len(ref) < MIN_PREFIX:
            raise CliError(
                f"no pod named '{ref}', and '{ref}' is too short for an id prefix",
                hint=f"give at least {MIN_PREFIX} characters of the id, or the pod name "
                "(`podbackup pods list` shows both)",
                error="NotFound",
            )
        raise CliError(
            f"no pod named '{ref}'", hint="`podbackup pods list` shows your pods", error="NotFound"
        )

    def job_id(self, ref: str) -> str:
        """A job id from a full id or a unique prefix of a recent job's id."""
        if _is_uuid(ref):
            return ref
        if len(ref) < MIN_PREFIX:
            raise CliError(
                f"'{ref}' is too short for a job id",
                hint=f"give at least {MIN_PREFIX} characters of the id (8 are safer)",
                error="UsageError",
            )
        found = {
            str(j["id"]) for j in self.items("/v1/jobs", limit=1000) if j["id"].startswith(ref)
        }
        if len(found) == 1:
            return found.pop()
        if found:
            raise CliError(
                f"'{ref}' matches several jobs", hint="give more of the id", error="Ambiguous"
            )
        raise CliError(
            f"no job '{ref}'", hint="`podbackup jobs list` shows recent jobs", error="NotFound"
        )

    def snapshot(self, pod_id: str, ref: str) -> dict[str, Any]:
        """One snapshot by full or short id, or ``latest``: the newest backup as the API
        resolves it (never a safety snapshot, which the newest one may be)."""
        return dict(self.get(f"/v1/pods/{pod_id}/snapshots/{quote(ref, safe='')}"))

    def snapshot_id(self, pod_id: str, ref: str) -> str:
        """``latest`` → the newest backup's id; anything else as given (full or short id)."""
        if ref != "latest":
            return ref
        return str(self.snapshot(pod_id, ref)["id"])

    # -- the job stream ----------------------------------------------------------------

    def events(self, job_id: str, after: int = 0) -> Iterator[Event]:
        """The job's Server-Sent Events from event ``after`` on (0: its whole history),
        until the ``end`` event; reconnects (with Last-Event-ID) when the stream drops."""
        cursor, failures = after, 0
        while True:
            try:
                with self.http.stream(
                    "GET",
                    f"/v1/jobs/{job_id}/events",
                    headers={"Last-Event-ID": str(cursor)},
                    timeout=httpx.Timeout(30, read=90),
                ) as r:
                    self.check(r)
                    for event in _parse_sse(r.iter_lines()):
                        failures = 0
                        if event.id is not None:
                            cursor = event.id
                        yield event
                        if event.event == "end":
                            return
            except httpx.TransportError as exc:
                failures += 1
                if failures > 5:
                    raise CliError(
                        f"lost the job's event stream ({type(exc).__name__})",
                        hint=f"podbackup jobs show {job_id}",
                    ) from None
                time.sleep(min(0.5 * 2**failures, 8))


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def _parse_sse(lines: Iterator[str]) -> Iterator[Event]:
    name: str = "message"
    data: list[str] = []
    ident: int | None = None
    for line in lines:
        if not line:
            if data:
                text = "\n".join(data)
                try:
                    payload: Any = json.loads(text)
                except ValueError:
                    payload = text
                yield Event(name, payload, ident)
            name, data, ident = "message", [], None
            continue
        if line.startswith(":"):
            continue  # keep-alive comment
        field, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if field == "event":
            name = value
        elif field == "data":
            data.append(value)
        elif field == "id" and value.isdigit():
            ident = int(value)
