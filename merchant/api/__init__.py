"""The REST API at /api/v1 for cash registers and CRMs."""

from __future__ import annotations

from aiohttp import web

from core.domain.program import program_json_schema
from core.services.apikeys import KeyAuthenticator
from core.services.context import CoreContext
from merchant.api.http import AUTH, CORE, auth_middleware, errors_middleware, json_response
from merchant.api.openapi import build_openapi
from merchant.api.routes import ROUTES


def create_api(ctx: CoreContext, authenticator: KeyAuthenticator) -> web.Application:
    """The /api/v1 sub-application: JSON errors, key auth by route scope."""
    scopes = {route.name: route.scope for route in ROUTES}
    api = web.Application(middlewares=[errors_middleware, auth_middleware(scopes)])
    api[CORE] = ctx
    api[AUTH] = authenticator
    document = build_openapi()
    schema = program_json_schema()

    async def openapi(_request: web.Request) -> web.Response:
        return json_response(document)

    async def program_schema(_request: web.Request) -> web.Response:
        return json_response(schema)

    async def not_found(_request: web.Request) -> web.Response:
        raise web.HTTPNotFound()

    api.router.add_get("/openapi.json", openapi, name="openapi")
    api.router.add_get("/program/schema.json", program_schema, name="program.schema")
    for route in ROUTES:
        api.router.add_route(route.method, route.path, route.handler, name=route.name)
    api.router.add_route("*", "/{tail:.*}", not_found, name="not_found")
    return api
