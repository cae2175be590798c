"""One error envelope for every 4xx/5xx: ``{"error": "<Name>", "detail": ..., "hint": ...}``."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger(__name__)


class AppError(Exception):
    status_code: int = 500
    message: str = "Internal error"

    def __init__(
        self,
        message: str | None = None,
        *,
        hint: str | None = None,
        detail: Any = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.message = message or self.message
        self.hint = hint
        self.detail = detail if detail is not None else self.message
        self.headers = headers
        super().__init__(self.message)

    @property
    def name(self) -> str:
        return type(self).__name__

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"error": self.name, "detail": self.detail}
        if self.hint:
            body["hint"] = self.hint
        return body


class BadRequest(AppError):
    status_code = 400
    message = "Bad request"


class Unauthorized(AppError):
    status_code = 401
    message = "Missing or invalid token"

    def __init__(self, message: str | None = None, *, hint: str | None = None) -> None:
        super().__init__(
            message,
            hint=hint or "send `Authorization: Bearer <token>`; `podbackup token create` makes one",
            headers={"WWW-Authenticate": "Bearer"},
        )


class Forbidden(AppError):
    status_code = 403
    message = "This token may not do that"


class NotFound(AppError):
    status_code = 404
    message = "Not found"


class Conflict(AppError):
    status_code = 409
    message = "Conflict"


class Gone(AppError):
    status_code = 410
    message = "Gone"


class ValidationFailed(AppError):
    """A value is well-formed JSON but not acceptable (422, like schema errors)."""

    status_code = 422
    message = "Invalid value"

    def __init__(self, field: str, message: str, *, hint: str | None = None) -> None:
        super().__init__(
            message,
            hint=hint,
            detail=[{"loc": ["body", *field.split(".")], "msg": message, "type": "value_error"}],
        )


class TooManyRequests(AppError):
    status_code = 429
    message = "Too many requests"


class ServiceUnavailable(AppError):
    status_code = 503
    message = "A backing service is unavailable"


class ErrorBody(BaseModel):
    """The error envelope, for OpenAPI."""

    error: str
    detail: Any
    hint: str | None = None


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses=` entries documenting the envelope for the given status codes."""
    text = {
        400: "Bad request",
        401: "Missing or invalid token",
        403: "Token scope does not allow this",
        404: "Not found (or owned by another account)",
        409: "Conflict with the current state",
        410: "Expired",
        422: "Invalid input, with the field named",
        429: "Rate limited",
        502: "The storage behind it answered with an error",
        503: "A backing service is unavailable",
    }
    return {code: {"model": ErrorBody, "description": text.get(code, "Error")} for code in codes}


def _envelope(status: int, name: str, detail: Any, hint: str | None = None) -> JSONResponse:
    body: dict[str, Any] = {"error": name, "detail": detail}
    if hint:
        body["hint"] = hint
    return JSONResponse(status_code=status, content=body)


_HTTP_NAMES = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    406: "NotAcceptable",
    409: "Conflict",
    413: "PayloadTooLarge",
    415: "UnsupportedMediaType",
    422: "ValidationFailed",
    429: "TooManyRequests",
}


def _clean_validation_errors(errors: list[dict[str, Any]]) -> list[dict[str, Any]]:
    cleaned = []
    for err in errors:
        item = {"loc": list(err.get("loc", ())), "msg": err.get("msg", ""), "type": err.get("type")}
        # Never echo input back: it may carry a secret the client mistyped into a field.
        cleaned.append(item)
    return cleaned


def _validation_hint(errors: list[dict[str, Any]]) -> str:
    first = errors[0] if errors else {}
    where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
    if first.get("type") == "extra_forbidden":
        return f"remove the unknown field '{where}'; see /docs for the accepted fields"
    if first.get("type") == "missing":
        return f"add the required field '{where}'"
    return f"fix '{where}': {first.get('msg', '')}" if where else "see /docs for the request shape"


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(AppError)
    async def _app_error(_: Request, exc: AppError) -> JSONResponse:
        response = JSONResponse(status_code=exc.status_code, content=exc.body())
        for key, value in (exc.headers or {}).items():
            response.headers[key] = value
        return response

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = _clean_validation_errors(list(exc.errors()))
        return _envelope(422, "ValidationFailed", errors, _validation_hint(errors))

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 400 and exc.detail == _BODY_PARSE_ERROR:
            # FastAPI's answer to a body it cannot decode: a validation error like any other.
            errors = [
                {"loc": ["body"], "msg": "the body is not valid JSON", "type": "json_invalid"}
            ]
            return _envelope(
                422,
                "ValidationFailed",
                errors,
                "send a JSON document (UTF-8) with Content-Type: application/json",
            )
        name = _HTTP_NAMES.get(exc.status_code, "HTTPError")
        response = _envelope(exc.status_code, name, exc.detail)
        for key, value in (exc.headers or {}).items():
            response.headers[key] = value
        return response

    @app.exception_handler(DBAPIError)
    async def _db_error(request: Request, exc: DBAPIError) -> JSONResponse:
        if _unstorable_text(exc):
            # PostgreSQL text cannot hold NUL: bad input, whichever field or filter carried it.
            errors = [{"loc": ["request"], "msg": "a text value contains a NUL character "
                       "(\\u0000), which cannot be stored", "type": "value_error"}]  # fmt: skip
            return _envelope(422, "ValidationFailed", errors, "remove NUL characters from the text")
        if isinstance(exc, OperationalError | InterfaceError) or _is_connection_error(exc):
            return await _db_down(request, exc)
        return await _unexpected(request, exc)

    async def _db_down(_: Request, exc: DBAPIError) -> JSONResponse:
        log.warning("database unavailable: %s", type(exc.orig).__name__ if exc.orig else exc)
        return JSONResponse(
            status_code=503,
            content={
                "error": "ServiceUnavailable",
                "detail": "the database is unavailable",
                "hint": "retry in a few seconds",
            },
            headers={"Retry-After": "5"},
        )

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        if _is_connection_error(exc):
            return JSONResponse(
                status_code=503,
                content={
                    "error": "ServiceUnavailable",
                    "detail": "a backing service is unavailable",
                    "hint": "retry in a few seconds",
                },
                headers={"Retry-After": "5"},
            )
        log.exception("unhandled error")
        return _envelope(500, "InternalError", "internal error; the event was logged")


_BODY_PARSE_ERROR = "There was an error parsing the body"


def _unstorable_text(exc: DBAPIError) -> bool:
    import asyncpg

    return isinstance(
        exc.orig.__cause__ if exc.orig is not None else None,
        asyncpg.exceptions.CharacterNotInRepertoireError
        | asyncpg.exceptions.UntranslatableCharacterError,
    ) or "invalid byte sequence for encoding" in str(exc.orig)


def _is_connection_error(exc: BaseException) -> bool:
    import asyncpg
    from redis.exceptions import ConnectionError as RedisConnectionError

    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        if isinstance(
            cur,
            ConnectionError
            | OSError
            | asyncpg.exceptions.ConnectionDoesNotExistError
            | asyncpg.exceptions.CannotConnectNowError
            | asyncpg.exceptions.AdminShutdownError
            | RedisConnectionError,
        ):
            return True
        if isinstance(cur, DBAPIError) and cur.connection_invalidated:
            return True
        cur = cur.__cause__ or cur.__context__
    return False
