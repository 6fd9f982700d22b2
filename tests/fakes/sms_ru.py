"""A fake SMS.ru: `POST /sms/send` answering like the real API (json=1), over real HTTP.

It knows a set of api_ids, records every accepted message, and can be told to fail
with any SMS.ru status (`fail(201)`), at the top level or for the number, or with a
bare HTTP status (`fail_http(502)`), for the next N requests or until `recover()`;
`delay` makes it slow.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from itertools import count
from types import TracebackType
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer

# The texts SMS.ru itself gives with each status.
STATUS_TEXT = {
    100: "Запрос выполнен или сообщение находится в нашей очереди",
    200: "Неправильный api_id",
    201: "Не хватает средств на лицевом счету",
    202: "Неправильно указан номер телефона получателя, либо на него нет маршрута",
    203: "Нет текста сообщения",
    204: "Имя отправителя не согласовано с администрацией",
    205: "Сообщение слишком длинное (превышает 8 СМС)",
    206: "Будет превышен или уже превышен дневной лимит на отправку сообщений",
    207: "На этот номер нет маршрута для доставки сообщений",
    209: "Вы добавили этот номер (или один из номеров) в стоп-лист",
    220: "Сервис временно недоступен, попробуйте чуть позже",
    230: "Превышен общий лимит количества сообщений на этот номер в день",
    500: "Ошибка на сервере. Повторите запрос",
}
# Statuses SMS.ru gives for the whole request; the others it gives per number.
REQUEST_LEVEL = frozenset({200, 201, 203, 204, 205, 206, 210, 211, 212, 213, 220, 300, 301, 302, 500})
NUMBER = re.compile(r"^\d{11,15}$")


@dataclass(frozen=True)
class SmsRuMessage:
    api_id: str
    to: str
    msg: str
    sender: str | None
    sms_id: str


class FakeSmsRu:
    """`async with FakeSmsRu() as fake:` then point the gateway at `fake.url`."""

    def __init__(self, api_ids: tuple[str, ...] = ("test-api-id",), balance: str = "100.50") -> None:
        self.api_ids = set(api_ids)
        self.balance = balance
        self.messages: list[SmsRuMessage] = []
        self.requests = 0
        self.delay = 0.0  # seconds before answering (a slow SMS.ru)
        self._fail: tuple[str, int] | None = None
        self._fail_left: int | None = None
        self._ids = count(1)
        self._server: TestServer | None = None

    # -- control ---------------------------------------------------------
    def fail(self, status: int, times: int | None = None) -> None:
        """Answer with SMS.ru's `status` (at the level SMS.ru gives it) for `times` requests."""
        self._fail, self._fail_left = ("status", status), times

    def fail_http(self, status: int, times: int | None = None) -> None:
        self._fail, self._fail_left = ("http", status), times

    def recover(self) -> None:
        self._fail, self._fail_left = None, None

    def texts_to(self, to: str) -> list[str]:
        return [m.msg for m in self.messages if m.to == to.lstrip("+")]

    # -- server ----------------------------------------------------------
    @property
    def url(self) -> str:
        assert self._server is not None, "start the fake first"
        return str(self._server.make_url("")).rstrip("/")

    async def __aenter__(self) -> FakeSmsRu:
        app = web.Application()
        app.router.add_route("*", "/sms/send", self._send)
        self._server = TestServer(app)
        await self._server.start_server()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        if self._server is not None:
            await self._server.close()

    def _take_failure(self) -> tuple[str, int] | None:
        if self._fail is None:
            return None
        failure = self._fail
        if self._fail_left is not None:
            self._fail_left -= 1
            if self._fail_left <= 0:
                self.recover()
        return failure

    async def _send(self, request: web.Request) -> web.Response:
        self.requests += 1
        if self.delay:
            await asyncio.sleep(self.delay)
        params: dict[str, Any] = dict(request.query)
        if request.method == "POST":
            params.update(await request.post())
        failure = self._take_failure()
        if failure is not None and failure[0] == "http":
            return web.Response(status=failure[1], text="Bad Gateway")
        api_id, to, msg = (str(params.get(k, "")) for k in ("api_id", "to", "msg"))
        if api_id not in self.api_ids:
            return _json(_error(200), params)
        if not msg.strip():
            return _json(_error(203), params)
        forced = failure[1] if failure is not None else None
        if forced is not None and forced in REQUEST_LEVEL:
            return _json(_error(forced), params)
        numbers = [n.strip() for n in to.split(",") if n.strip()]
        if not numbers or len(numbers) > 100:
            return _json(_error(202 if not numbers else 213), params)
        sms: dict[str, Any] = {}
        for number in numbers:
            if forced is not None:
                sms[number] = _error(forced)
            elif not NUMBER.match(number):
                sms[number] = _error(202)
            else:
                sms_id = f"{next(self._ids):06d}-{len(self.messages) + 1:07d}"
                self.messages.append(SmsRuMessage(api_id, number, msg,
                                                  str(params["from"]) if params.get("from") else None,
                                                  sms_id))
                sms[number] = {"status": "OK", "status_code": 100, "sms_id": sms_id}
        return _json({"status": "OK", "status_code": 100, "sms": sms, "balance": self.balance}, params)


def _error(status: int) -> dict[str, Any]:
    return {"status": "ERROR", "status_code": status,
            "status_text": STATUS_TEXT.get(status, "Неизвестная ошибка")}


def _json(body: dict[str, Any], params: dict[str, Any]) -> web.Response:
    if str(params.get("json", "")) != "1":  # SMS.ru's plain form: the status code on the first line
        return web.Response(text=str(body["status_code"]))
    return web.json_response(body)
