"""Settings, read once from the environment (prefix KARTOCHKA_) and .env."""

from __future__ import annotations

from datetime import time

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Every knob of a Kartochka process; passed down, never read from os.environ."""

    model_config = SettingsConfigDict(
        env_prefix="KARTOCHKA_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    database_url: str = "sqlite+aiosqlite:///./kartochka.db"
    redis_url: str | None = None
    host: str = "127.0.0.1"
    port: int = 8080
    public_url: str | None = None
    secret_key: SecretStr | None = None
    log_level: str = "INFO"
    log_format: str = Field(default="json", pattern="^(json|text)$")
    db_pool_size: int = 10
    sqlite_busy_timeout_ms: int = 30_000
    scheduler_interval_seconds: float = 30.0
    api_key_cache_seconds: float = 5.0

    telegram_api_url: str = "https://api.telegram.org"
    vk_api_url: str = "https://api.vk.com/method"
    max_api_url: str = "https://platform-api2.max.ru"
    max_ca_file: str | None = None
    apns_url: str = "https://api.push.apple.com"
    google_wallet_api_url: str = "https://walletobjects.googleapis.com"
    google_token_url: str = "https://oauth2.googleapis.com/token"  # noqa: S105 - a URL
    sms_api_url: str = "https://sms.ru"
    # Telegram: getUpdates long-poll seconds (no PUBLIC_URL); how often a process looks for stored
    # updates other processes saved, and for bots added or removed while it runs.
    telegram_poll_seconds: int = 25
    telegram_worker_poll_seconds: float = 5.0
    telegram_refresh_seconds: float = 60.0
    # SMS codes: "log" (development: codes go to the log at DEBUG) or "smsru" (SMS.ru's HTTP API).
    sms_gateway: str = Field(default="log", pattern="^(log|smsru)$")
    sms_timeout_seconds: float = 10.0
    # Daily caps on SMS codes against SMS pumping (a rolling 24 hours).
    sms_daily_per_phone: int = 5
    sms_daily_per_account: int = 10
    sms_daily_per_merchant: int = 1000
    sms_daily_per_ip: int = 20
    sms_hourly_per_merchant: int = 200
    # Countries codes may go to (ISO codes); empty: the merchant's own country only.
    sms_countries: list[str] = Field(default_factory=list)
    # Client addresses from X-Forwarded-For are believed (and capped) only behind a trusted proxy.
    trusted_proxy: bool = False
    # Sites allowed to embed the web chat widget (origins like "https://shop.example"), JSON list.
    web_chat_origins: list[str] = Field(default_factory=list)
    # A web chat visitor silent this long is signed out: their token opens nothing any more.
    web_chat_idle_days: int = Field(default=90, ge=1)

    # The outgoing queue: platform rate limits on (off only for benchmarks); quiet hours in the
    # merchant's time zone delay reminders and marketing (never what the customer caused).
    send_rate_limit: bool = True
    send_concurrency: int = 64
    quiet_hours_start: time = time(21, 0)
    quiet_hours_end: time = time(9, 0)

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")
