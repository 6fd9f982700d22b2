"""HTTP plumbing of the REST API: app keys, JSON bodies, errors, key authentication."""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError

from core.errors import KartochkaError
from core.services.apikeys import KeyAuthenticator, KeyIdentity
from core.services.context import CoreContext

log = logging.getLogger("kartochka.api")
CORE = web.AppKey("kartochka_core", CoreContext)
AUTH = web.AppKey("kartochka_key_auth", KeyAuthenticator)
IDENTITY = web.RequestKey("kartochka_identity", KeyIdentity)
MERCHANT_ID = web.RequestKey("kartochka_merchant_id", str)
M = TypeVar("M", bound=BaseModel)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
MAX_BODY = 1024 * 1024

STATUS = {"invalid": 422, "not_found": 404, "conflict": 409, "forbidden": 403, "unavailable": 503,
          "precondition": 428, "rate_limited": 429}


class ApiError(Exception):
    """An error decided at the HTTP edge (bad JSON, no key, wrong scope)."""

    def __init__(self, status: int, code: str, message: str, **details: Any) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.details = status, code, message, details


def error_response(status: int, code: str, message: str, **details: Any) -> web.Response:
    return web.json_response({"error": {"code": code, "message": message, **details}},
                             status=status)


def json_response(body: Any, status: int = 200) -> web.Response:
    return web.Response(text=json.dumps(body, ensure_ascii=False, separators=(",", ":")),
                        status=status, content_type="application/json")


def field_errors(exc: ValidationError) -> list[dict[str, str]]:
    return [{"field": ".".join(str(p) for p in err["loc"]) or "(body)", "message": err["msg"]}
            for err in exc.errors()]


async def parse_body(request: web.Request, model: type[M]) -> M:
    """The JSON body validated by `model`; 400 for malformed JSON, 422 naming each field."""
    if request.content_length is not None and request.content_length > MAX_BODY:
        raise ApiError(413, "body_too_large", "request body is larger than 1 MiB")
    raw = await request.read()
    try:
        data = json.loads(raw or b"null")
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(400, "malformed_json", f"request body is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise ApiError(400, "malformed_json", "request body must be a JSON object")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        errors = field_errors(exc)
        raise ApiError(422, "validation_failed",
                       f"{errors[0]['field']}: {errors[0]['message']}", errors=errors) from exc


def identity(request: web.Request) -> KeyIdentity:
    ident: KeyIdentity = request[IDENTITY]
    return ident


def core(request: web.Request) -> CoreContext:
    return request.app[CORE]


@web.middleware
async def errors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every failure becomes {"error": {"code", "message"}}; the transaction is already rolled back."""
    try:
        return await handler(request)
    except ApiError as exc:
        return error_response(exc.status, exc.code, exc.message, **exc.details)
    except KartochkaError as exc:
        return error_response(STATUS.get(exc.kind, 422), exc.code, exc.message, **exc.details)
    except web.HTTPException as exc:
        if exc.status >= 400:
            return error_response(exc.status, exc.reason.lower().replace(" ", "_"), exc.reason)
        raise
    except Exception:  # a bug: say so in JSON, keep the details in the log
        log.exception("unhandled error", extra={"route": request.match_info.route.name})
        return error_response(500, "internal_error", "something went wrong on our side")


def auth_middleware(scopes: dict[str, str]) -> Any:
    """Bearer key → identity; the scope named for the route decides; answers are JSON."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        needed = scopes.get(request.match_info.route.name or "")
        if needed is None:
            return await handler(request)
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise ApiError(401, "unauthorized", "send Authorization: Bearer <api key>")
        ident = await request.app[AUTH].authenticate(token.strip())
        if ident is None:
            raise ApiError(401, "unauthorized", "this API key is unknown or revoked")
        if not ident.allows(needed):
            raise ApiError(403, "forbidden_scope",
                           f"this key's scope is {ident.scope}; this call needs {needed}")
        request[IDENTITY] = ident
        request[MERCHANT_ID] = ident.merchant_id
        return await handler(request)

    return middleware
