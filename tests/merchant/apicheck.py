"""Check every answer against the published OpenAPI document."""

from __future__ import annotations

import re
from typing import Any

import jsonschema

_DOC: dict[str, Any] = {}


def _template(doc: dict[str, Any], method: str, path: str) -> dict[str, Any]:
    for template, ops in doc["paths"].items():
        pattern = "^" + re.sub(r"{\w+}", "[^/]+", template) + "$"
        if re.match(pattern, path) and method.lower() in ops:
            return ops[method.lower()]
    raise AssertionError(f"{method} {path} is not in the OpenAPI document")


async def call(client: Any, method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
    """Make a request and validate the JSON answer against the document; (status, body)."""
    if not _DOC:
        resp = await client.get("/api/v1/openapi.json")
        _DOC.update(await resp.json())
    resp = await client.request(method, path, **kwargs)
    body = await resp.json()
    op = _template(_DOC, method, path.split("?")[0])
    answer = op["responses"].get(str(resp.status))
    assert answer is not None, f"{resp.status} is not documented for {method} {path}: {body}"
    if "content" in answer:
        schema = dict(answer["content"]["application/json"]["schema"])
        schema["components"] = _DOC["components"]
        jsonschema.validate(body, schema)
    return resp.status, body
