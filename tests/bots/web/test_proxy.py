"""Behind a trusted proxy the visitor's address comes from X-Forwarded-For (SMS caps per address)."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from core.config import Settings
from core.db.models import PhoneCode
from tests.bots.web.conftest import Widget


@pytest.fixture
def settings(database_url: str) -> Settings:
    return Settings(database_url=database_url, secret_key="test-secret-key-" + "x" * 32,
                    trusted_proxy=True, _env_file=None)  # type: ignore[call-arg]


async def _code_sent_from(widget: Widget, core) -> str | None:
    [consent] = await widget.ask({"type": "start"})
    [ad] = await widget.press(consent, "reg:pd_yes")
    await widget.press(ad, "reg:ad_no")
    replies = await widget.ask({"type": "text", "text": "+7 916 123-45-67"})
    assert "SMS" in replies[-1]["text"]
    async with core.ctx.db.read() as session:
        return (await session.scalars(select(PhoneCode.client_ip))).one()


async def test_the_address_is_the_one_the_proxy_saw(web_client, core):
    widget = Widget(web_client)
    await widget.open(headers={"X-Forwarded-For": "10.1.2.3, 203.0.113.7"})
    assert await _code_sent_from(widget, core) == "203.0.113.7"
