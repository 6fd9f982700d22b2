"""OpenAPI 3.1 document, generated from the same schemas that validate requests."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from core.domain.program import program_json_schema
from merchant.api.routes import ROUTES

REF = "#/components/schemas/{model}"


def build_openapi() -> dict[str, Any]:
    models: list[type[BaseModel]] = []
    for route in ROUTES:
        if route.body is not None and route.body not in models:
            models.append(route.body)
        for model in route.answers.values():
            if model not in models:
                models.append(model)
    refs, defs = models_json_schema([(m, _mode(m)) for m in models], ref_template=REF)
    schemas = dict(defs.get("$defs", {}))
    schemas["ProgramDocument"] = program_json_schema()
    paths: dict[str, Any] = {}
    for route in ROUTES:
        op: dict[str, Any] = {
            "operationId": route.name,
            "summary": route.summary,
            "security": [{"apiKey": []}],
            "x-scope": route.scope,
            "parameters": [
                {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
                for name in re.findall(r"{(\w+)}", route.path)
            ] + [
                {"name": name, "in": "query", "required": False, "schema": {"type": "string"}}
                for name in route.query
            ],
            "responses": {
                str(code): {
                    "description": model.__doc__ or model.__name__,
                    "content": {"application/json": {"schema": refs[(model, _mode(model))]}},
                }
                for code, model in sorted(route.answers.items())
            },
        }
        op["responses"]["401"] = {"description": "No key, or an unknown or revoked one"}
        op["responses"]["403"] = {"description": "The key's scope does not allow this call"}
        if route.body is not None:
            op["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": refs[(route.body, "validation")]}},
            }
        paths.setdefault("/api/v1" + route.path, {})[route.method.lower()] = op
    return {
        "openapi": "3.1.0",
        "info": {"title": "Kartochka REST API", "version": "1",
                 "description": "Money and points are decimal strings; errors are "
                                "{\"error\": {\"code\", \"message\"}}."},
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {"apiKey": {"type": "http", "scheme": "bearer"}},
        },
    }


def _mode(model: type[BaseModel]) -> Literal["validation", "serialization"]:
    return "validation" if any(r.body is model for r in ROUTES) else "serialization"
