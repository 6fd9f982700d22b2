"""Settings, read once from the environment (prefix KARTOCHKA_) and .env."""

from __future__ import annotations

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

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")
