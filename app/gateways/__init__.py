"""Gateways to outside services the core reaches through its ports (SMS, ...)."""

from __future__ import annotations

from app.gateways.sms import LogSmsGateway, SmsRuFailed, SmsRuGateway
from core.config import Settings
from core.ports import SmsGateway
from core.services import merchants
from core.services.context import CoreContext


def build_sms_gateway(settings: Settings, ctx: CoreContext) -> SmsGateway:
    """The SMS gateway the settings name: "log" (development) or "smsru" (per-merchant credentials)."""
    if settings.sms_gateway == "smsru":
        async def secret(merchant_id: str, name: str) -> str | None:
            return await merchants.get_secret(ctx, merchant_id, name)

        return SmsRuGateway(settings.sms_api_url, secret, timeout=settings.sms_timeout_seconds)
    return LogSmsGateway()


__all__ = ["LogSmsGateway", "SmsRuFailed", "SmsRuGateway", "build_sms_gateway"]
