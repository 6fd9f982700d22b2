"""Replays a golden table: a program document and dated steps with the expected results.

Each folder under tests/programs/ holds `program.yaml` and `golden.yaml`. Steps run
through the REST API (the clock is set to each step's `at`), through `jobs run
--until` for schedules, and through the service layer only for what the API does not
carry (a review, a manual tier). See tests/programs/README.md for the format.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import select

from core.db.models import Customer, OutboxEvent
from core.services.jobs import run_due
from core.services.merchants import NewMerchant, create_merchant
from core.services.rewards import credit_review_bonus
from tests.conftest import bearer
from tests.merchant.apicheck import call

ROOT = Path(__file__).parent


def folders() -> list[Path]:
    return sorted(p for p in ROOT.iterdir() if (p / "golden.yaml").exists())


def _time(value: str) -> datetime:
    moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    assert moment.tzinfo is not None, f"{value}: give a time zone"
    return moment


class Replay:
    def __init__(self, folder: Path, core: Any, client: Any, clock: Any) -> None:
        self.folder, self.core, self.client, self.clock = folder, core, client, clock
        self.table = yaml.safe_load((folder / "golden.yaml").read_text(encoding="utf-8"))
        self.program = yaml.safe_load((folder / "program.yaml").read_text(encoding="utf-8"))
        self.ids: dict[str, str] = {}
        self.auth: dict[str, str] = {}

    async def run(self) -> None:
        merchant = self.table.get("merchant", {})
        self.clock.advance_to(_time(self.table["start"]))
        created = await create_merchant(self.core.ctx, NewMerchant(
            name=merchant.get("name", self.folder.name), slug="golden",
            timezone=merchant.get("timezone", "Europe/Moscow"),
            currency=merchant.get("currency", "RUB")))
        self.merchant_id = created.id
        self.auth = await bearer(self.core, created.id, "admin")
        status, body = await call(self.client, "PUT", "/api/v1/program", json=self.program,
                                  headers=self.auth)
        assert status == 200, body
        for number, step in enumerate(self.table["steps"], start=1):
            try:
                await self.step(step)
            except AssertionError as exc:
                why = step.get("why", "")
                raise AssertionError(f"{self.folder.name} step {number} {step}: {exc}\n{why}") from exc

    async def step(self, step: dict[str, Any]) -> None:
        if "at" in step:
            self.clock.advance_to(_time(step["at"]))
        for kind in ("register", "sale", "refund", "check", "jobs_until", "review",
                     "set_tier", "gift", "preview", "ledger"):
            if kind in step:
                await getattr(self, f"do_{kind}")(step[kind], step.get("expect", {}))
                return
        raise AssertionError(f"unknown step {step}")

    def _ref(self, name: str) -> dict[str, str]:
        customer = self.table["customers"][name]
        return {"phone": customer["phone"]}

    async def do_register(self, name: str, expect: dict[str, Any]) -> None:
        customer = dict(self.table["customers"][name])
        body: dict[str, Any] = {"phone": customer["phone"]}
        for key in ("name", "birth_date", "card"):
            if key in customer:
                body[key] = str(customer[key])
        if customer.get("referrer"):
            body["referrer"] = self._ref(customer["referrer"])
        status, answer = await call(self.client, "POST", "/api/v1/customers", json=body,
                                    headers=self.auth)
        assert status == 201, answer
        self.ids[name] = answer["id"]
        compare(expect, answer)
        if customer.get("dates"):
            status, saved = await call(self.client, "PUT", f"/api/v1/customers/{answer['id']}/dates",
                                       json={"dates": customer["dates"]}, headers=self.auth)
            assert status == 200, saved

    async def _post(self, path: str, body: dict[str, Any], expect: dict[str, Any]) -> None:
        status, answer = await call(self.client, "POST", path, json=body, headers=self.auth)
        want = expect.get("status", 201)
        assert status == want, f"status {status}, expected {want}: {answer}"
        compare({k: v for k, v in expect.items() if k != "status"}, answer)

    def _sale_body(self, sale: dict[str, Any]) -> dict[str, Any]:
        body = {k: (str(v) if k in ("total", "redeem") else v) for k, v in sale.items()
                if k != "customer"}
        if sale.get("customer"):
            body["customer"] = self._ref(sale["customer"])
        body.setdefault("occurred_at", self.clock.now().isoformat())
        for line in body.get("lines", []):
            line["price"], line["quantity"] = str(line["price"]), str(line.get("quantity", 1))
        return body

    async def do_sale(self, sale: dict[str, Any], expect: dict[str, Any]) -> None:
        body = self._sale_body(sale)
        status, answer = await call(self.client, "POST", "/api/v1/purchases", json=body,
                                    headers=self.auth)
        if status == 428 and expect.get("status") != 428:
            # The program asks the customer to confirm (seeds 002, 003): they read out the
            # code from their messenger and the till repeats the sale with it.
            assert answer["error"]["code"] == "confirmation_required", answer
            body["confirmation_code"] = await self._code_sent(body["receipt_id"])
            status, answer = await call(self.client, "POST", "/api/v1/purchases", json=body,
                                        headers=self.auth)
        want = expect.get("status", 201)
        assert status == want, f"status {status}, expected {want}: {answer}"
        compare({k: v for k, v in expect.items() if k != "status"}, answer)

    async def _code_sent(self, receipt_id: str) -> str:
        async with self.core.ctx.db.read() as session:
            payload = await session.scalar(
                select(OutboxEvent.payload).where(OutboxEvent.type == "RedemptionCodeIssued")
                .order_by(OutboxEvent.id.desc()).limit(1))
        assert payload is not None and payload["receipt_id"] == receipt_id, payload
        return str(self.core.ctx.secrets.decrypt(payload["code_sealed"]))

    async def do_preview(self, sale: dict[str, Any], expect: dict[str, Any]) -> None:
        status, answer = await call(self.client, "POST", "/api/v1/purchases/preview",
                                    json=self._sale_body(sale), headers=self.auth)
        assert status == expect.get("status", 200), answer
        compare({k: v for k, v in expect.items() if k != "status"}, answer)

    async def do_refund(self, refund: dict[str, Any], expect: dict[str, Any]) -> None:
        body = {k: (str(v) if k == "amount" else v) for k, v in refund.items() if k != "receipt_id"}
        body.setdefault("occurred_at", self.clock.now().isoformat())
        await self._post(f"/api/v1/purchases/{refund['receipt_id']}/refunds", body, expect)

    async def do_gift(self, gift: dict[str, Any], expect: dict[str, Any]) -> None:
        body = {"customer": self._ref(gift["customer"]), "gift_id": gift["gift_id"],
                "redemption_id": gift["redemption_id"]}
        await self._post("/api/v1/rewards/redeem", body, expect)

    async def do_check(self, name: str, expect: dict[str, Any]) -> None:
        stamp = self.clock.now().isoformat().replace("+", "%2B")
        status, answer = await call(self.client, "GET", f"/api/v1/customers/{self.ids[name]}"
                                    f"?at={stamp}", headers=self.auth)
        assert status == 200, answer
        compare(expect, answer)

    async def do_ledger(self, name: str, expect: dict[str, Any]) -> None:
        """Expect `entries`: the customer's ledger, oldest first, as [kind, points] pairs."""
        status, page = await call(self.client, "GET",
                                  f"/api/v1/customers/{self.ids[name]}/ledger?limit=200",
                                  headers=self.auth)
        assert status == 200, page
        got = [[item["kind"], item["points"]] for item in reversed(page["items"])]
        want = [[kind, f"{float(points):.2f}"] for kind, points in expect["entries"]]
        assert got == want, f"ledger {got} != {want}"

    async def do_jobs_until(self, until: str, expect: dict[str, Any]) -> None:
        moment = _time(until)
        self.clock.advance_to(moment)
        await run_due(self.core.ctx, moment)

    async def do_review(self, name: str, expect: dict[str, Any]) -> None:
        points = await credit_review_bonus(self.core.ctx, self.merchant_id, self.ids[name],
                                           f"review-{self.clock.now().isoformat()}")
        if "points" in expect:
            assert f"{points / 100:.2f}" == f"{float(expect['points']):.2f}", points

    async def do_set_tier(self, value: dict[str, Any], expect: dict[str, Any]) -> None:
        async with self.core.ctx.uow() as uow:
            customer = await uow.session.scalar(
                select(Customer).where(Customer.id == self.ids[value["customer"]]))
            customer.tier_id, customer.tier_manual = value["tier"], True
            await uow.commit()


def compare(expect: Any, got: Any, path: str = "") -> None:
    """Every expected key must match; money and points compare as two-decimal strings."""
    if isinstance(expect, dict):
        assert isinstance(got, dict), f"{path}: expected an object, got {got!r}"
        for key, value in expect.items():
            assert key in got, f"{path}.{key} missing in {got}"
            compare(value, got[key], f"{path}.{key}")
    elif isinstance(expect, list):
        assert isinstance(got, list) and len(got) == len(expect), f"{path}: {got!r} != {expect!r}"
        for i, (a, b) in enumerate(zip(expect, got, strict=True)):
            compare(a, b, f"{path}[{i}]")
    elif isinstance(expect, int | float) and isinstance(got, str):
        assert got == f"{expect:.2f}", f"{path}: {got} != {expect:.2f}"
    elif isinstance(expect, str) and isinstance(got, str) and _decimal(expect) and _decimal(got):
        assert f"{float(got):.2f}" == f"{float(expect):.2f}", f"{path}: {got} != {expect}"
    else:
        assert got == expect, f"{path}: {got!r} != {expect!r}"


def _decimal(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
