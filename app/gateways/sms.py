"""SMS gateways (the core's SmsGateway port): a log gateway for development, and SMS.ru.

`LogSmsGateway` sends nothing. It logs at INFO that a message went to a masked phone,
and the whole text (with the code in it) only at DEBUG — so a developer running
`KARTOCHKA_LOG_LEVEL=DEBUG` sees the codes, and a production log never does. It keeps
the last texts in memory, which the web sandbox and the tests read.

`SmsRuGateway` speaks SMS.ru's HTTP API: POST {base}/sms/send with api_id, to, msg and
json=1; the answer carries a status_code (100 = accepted) at the top and per number.
Credentials belong to the merchant (secret "sms.ru:api_id", optional sender name
"sms.ru:from").
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from itertools import count
from typing import Any

import aiohttp

from core.phones import mask_phone
from core.ports import SmsFailed

log = logging.getLogger("kartochka.sms")
SecretLookup = Callable[[str, str], Awaitable[str | None]]  # (merchant_id, name) -> value
API_ID_SECRET = "sms.ru:api_id"  # noqa: S105 - the secret's name
SENDER_SECRET = "sms.ru:from"  # noqa: S105 - the secret's name

# SMS.ru's status codes for sms/send (https://sms.ru/api/send).
SMSRU_STATUS = {
    100: "accepted",
    200: "wrong api_id",
    201: "not enough money on the account",
    202: "wrong recipient number, or no route to it",
    203: "no message text",
    204: "sender name not approved by SMS.ru",
    205: "message too long (more than 8 SMS)",
    206: "daily sending limit reached or would be exceeded",
    207: "messages cannot be sent to this number",
    208: "wrong time parameter",
    209: "the number is in the stop list",
    210: "GET used where POST is required",
    211: "method not found",
    212: "message text must be UTF-8",
    213: "more than 100 numbers in the list",
    220: "service temporarily unavailable, try again a little later",
    230: "daily limit of messages to this number exceeded",
    231: "limit of identical messages to this number per minute exceeded",
    232: "limit of identical messages to this number per day exceeded",
    233: "limit of repeated codes to this number within 2 minutes exceeded (anti-fraud)",
    300: "wrong token (expired, or the IP address changed)",
    301: "wrong api_id or password, or no such account",
    302: "account not confirmed",
    500: "server error, repeat the request",
}
RETRYABLE = frozenset({220, 500})


class SmsRuFailed(SmsFailed):
    """SMS.ru refused: `status` is its status code (or a word for a transport failure)."""

    def __init__(self, status: int | str, meaning: str) -> None:
        super().__init__(f"SMS.ru {status}: {meaning}")
        self.status = status
        self.meaning = meaning
        self.retryable = status in RETRYABLE or status in ("timeout", "network")


@dataclass(frozen=True)
class LoggedSms:
    merchant_id: str
    phone: str
    text: str
    id: str


class LogSmsGateway:
    """Development gateway: nothing is sent; the text is logged at DEBUG only and kept in memory."""

    def __init__(self, keep: int = 100) -> None:
        self.sent: deque[LoggedSms] = deque(maxlen=keep)
        self._ids = count(1)

    async def send(self, merchant_id: str, phone: str, text: str) -> str:
        sms = LoggedSms(merchant_id, phone, text, f"log-{next(self._ids)}")
        self.sent.append(sms)
        log.info("sms sent (log gateway: not really sent)",
                 extra={"merchant_id": merchant_id, "phone": mask_phone(phone), "sms_id": sms.id})
        # The code is in the text: DEBUG only, so development sees it and production never does.
        log.debug("sms text for %s: %s", mask_phone(phone), text)
        return sms.id

    def texts_to(self, phone: str, merchant_id: str | None = None) -> list[str]:
        """Texts sent to `phone` (E.164), oldest first (the sandbox shows the last)."""
        return [s.text for s in self.sent
                if s.phone == phone and (merchant_id is None or s.merchant_id == merchant_id)]


class SmsRuGateway:
    """SMS.ru's HTTP API; one HTTP session, opened on first use, closed by `close()`."""

    def __init__(self, base_url: str, secret: SecretLookup, *, timeout: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.secret = secret
        self.timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self.timeout)
        return self._session

    async def send(self, merchant_id: str, phone: str, text: str) -> str:
        """Send one SMS; the SMS.ru message id, or SmsRuFailed with its status and meaning."""
        api_id = await self.secret(merchant_id, API_ID_SECRET)
        if not api_id:
            raise SmsRuFailed("not_configured",
                              f"the merchant has no {API_ID_SECRET} secret (set it in the console)")
        to = phone.lstrip("+")
        form = {"api_id": api_id, "to": to, "msg": text, "json": "1"}
        sender = await self.secret(merchant_id, SENDER_SECRET)
        if sender:
            form["from"] = sender
        where = {"merchant_id": merchant_id, "phone": mask_phone(phone)}
        try:
            async with self._http().post(f"{self.base_url}/sms/send", data=form) as response:
                if response.status != 200:
                    raise SmsRuFailed(response.status, f"HTTP {response.status} from SMS.ru")
                answer: Any = await response.json(content_type=None)
        except TimeoutError as exc:
            log.warning("sms.ru timed out", extra=where)
            raise SmsRuFailed("timeout", "SMS.ru did not answer in time") from exc
        except (aiohttp.ClientError, ValueError) as exc:
            log.warning("sms.ru unreachable: %s", type(exc).__name__, extra=where)
            raise SmsRuFailed("network", f"SMS.ru could not be reached ({type(exc).__name__})") from exc
        sms_id = _accepted(answer, to)
        log.info("sms sent via sms.ru", extra={**where, "sms_id": sms_id})
        return sms_id


def _accepted(answer: Any, to: str) -> str:
    """The message id from SMS.ru's JSON answer, or SmsRuFailed with the status it gave."""
    if not isinstance(answer, dict):
        raise SmsRuFailed("malformed", "SMS.ru answered something that is not a JSON object")
    _raise_unless_ok(answer)
    per_number = (answer.get("sms") or {}).get(to)
    if not isinstance(per_number, dict):
        raise SmsRuFailed("malformed", "SMS.ru's answer does not name the number")
    _raise_unless_ok(per_number)
    return str(per_number.get("sms_id") or "")


def _raise_unless_ok(part: dict[str, Any]) -> None:
    try:
        status = int(part.get("status_code", 0))
    except (TypeError, ValueError):
        status = 0
    if status != 100:
        meaning = SMSRU_STATUS.get(status) or str(part.get("status_text") or "unknown status")
        raise SmsRuFailed(status, meaning)

