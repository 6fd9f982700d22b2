"""The application shell: health, metrics, OpenAPI, structured logs without personal data."""

from __future__ import annotations

import io
import json
import logging

from app.logs import JsonFormatter, redact
from tests.merchant.apicheck import call


async def test_healthz_and_metrics(client, auth):
    resp = await client.get("/healthz")
    assert resp.status == 200 and (await resp.json())["status"] == "ok"
    await call(client, "POST", "/api/v1/customers", json={"phone": "+79161234567"}, headers=auth)
    text = await (await client.get("/metrics")).text()
    assert 'kartochka_http_requests_total{method="POST",route="customers.create",status="201"}' \
        in text
    assert "kartochka_http_request_seconds_bucket" in text


async def test_openapi_describes_every_route_with_request_schemas(client):
    resp = await client.get("/api/v1/openapi.json")
    doc = await resp.json()
    assert doc["openapi"].startswith("3.")
    sale = doc["paths"]["/api/v1/purchases"]["post"]
    ref = sale["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    schema = doc["components"]["schemas"][ref.rsplit("/", 1)[1]]
    assert {"receipt_id", "total"} <= set(schema["required"])
    assert sale["x-scope"] == "till"
    assert set(doc["paths"]) >= {
        "/api/v1/customers", "/api/v1/customers/lookup", "/api/v1/customers/{id}",
        "/api/v1/customers/{id}/adjustments", "/api/v1/customers/{id}/ledger",
        "/api/v1/purchases/preview", "/api/v1/purchases",
        "/api/v1/purchases/{receipt_id}/refunds", "/api/v1/program"}


def test_redaction_masks_phones_cards_tokens_and_qr():
    line = ("phone +79161234567 raw 8 (916) 123-45-67 card 2097177470212 uk +44 20 7946 0958 "
            "bot 123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw key kk_abcDEF123456789xyz "
            "qr Q0123456789ABCDE Authorization: Bearer secret-token at 2026-03-01 09:00:00")
    masked = redact(line)
    for secret in ("79161234567", "916) 123-45-67", "2097177470212", "7946 0958", "AAHdqTcvCH1vGWJx",
                   "kk_abcDEF", "Q0123456789ABCDE", "secret-token"):
        assert secret not in masked, secret
    assert "2026-03-01 09:00:00" in masked  # times survive


async def test_a_whole_flow_logs_no_phone_card_or_key(client, core, merchant_id):
    from tests.conftest import bearer

    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.addHandler(handler)
    old = root.level
    root.setLevel(logging.DEBUG)
    try:
        auth = await bearer(core, merchant_id, "admin")
        token = auth["Authorization"].split()[1]
        _, customer = await call(client, "POST", "/api/v1/customers",
                                 json={"phone": "+79161234567"}, headers=auth)
        await call(client, "POST", "/api/v1/purchases", headers=auth, json={
            "receipt_id": "r1", "customer": {"card": customer["card_number"]}, "total": "100"})
        await call(client, "POST", "/api/v1/purchases", headers=auth, json={
            "receipt_id": "r2", "customer": {"phone": "+79990001122"}, "total": "100"})
        await call(client, "GET", "/api/v1/customers/lookup?phone=%2B79161234567", headers=auth)
    finally:
        root.removeHandler(handler)
        root.setLevel(old)
    logs = stream.getvalue()
    assert '"route": "purchases.register"' in logs  # the request lines are there
    for line in logs.splitlines():
        json.loads(line)  # every line is one JSON object
    for secret in ("79161234567", "9161234567", customer["card_number"], token, "79990001122"):
        assert secret not in logs, secret
