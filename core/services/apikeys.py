"""REST API keys: random 256-bit tokens kept as SHA-256 digests, with scopes."""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass

from sqlalchemy import select

from core.db.models import ApiKey, Merchant
from core.errors import NotFound, ValidationFailed
from core.ids import new_id
from core.services.context import CoreContext

SCOPES = ("till", "integration", "admin")
TOKEN_PREFIX = "kk_"  # noqa: S105 - a prefix, not a secret


@dataclass(frozen=True)
class KeyIdentity:
    key_id: str
    merchant_id: str
    scope: str

    def allows(self, needed: str) -> bool:
        """Scopes nest: admin ⊃ integration ⊃ till."""
        return SCOPES.index(self.scope) >= SCOPES.index(needed)


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def create_key(
    ctx: CoreContext, merchant_id: str, scope: str = "integration", name: str | None = None
) -> tuple[ApiKey, str]:
    """A new key; the token is returned once and never stored."""
    if scope not in SCOPES:
        raise ValidationFailed(f"scope must be one of {', '.join(SCOPES)}")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    async with ctx.uow() as uow:
        if await uow.session.get(Merchant, merchant_id) is None:
            raise NotFound("merchant not found")
        key = ApiKey(
            id=new_id("key"),
            merchant_id=merchant_id,
            digest=digest(token),
            prefix=token[:10],
            scope=scope,
            name=name,
            created_at=ctx.now(),
        )
        uow.session.add(key)
        await uow.commit()
    return key, token


async def revoke_key(ctx: CoreContext, merchant_id: str, key_id: str) -> None:
    async with ctx.uow() as uow:
        key = await uow.session.scalar(
            select(ApiKey).where(ApiKey.id == key_id, ApiKey.merchant_id == merchant_id)
        )
        if key is None:
            raise NotFound("no such key")
        key.revoked_at = ctx.now()
        await uow.commit()


class KeyAuthenticator:
    """Resolves bearer tokens; a short cache keeps the hot path off the database.

    A revoked key stops working within `cache_seconds` in every process.
    """

    def __init__(self, ctx: CoreContext, cache_seconds: float = 5.0) -> None:
        self.ctx = ctx
        self.cache_seconds = cache_seconds
        self._cache: dict[str, tuple[float, KeyIdentity | None]] = {}

    async def authenticate(self, token: str) -> KeyIdentity | None:
        if not token.startswith(TOKEN_PREFIX) or len(token) > 128:
            return None
        key_digest = digest(token)
        hit = self._cache.get(key_digest)
        now = time.monotonic()
        if hit is not None and now - hit[0] < self.cache_seconds:
            return hit[1]
        async with self.ctx.db.read() as session:
            row = await session.scalar(
                select(ApiKey).where(ApiKey.digest == key_digest, ApiKey.revoked_at.is_(None))
            )
        identity = None if row is None else KeyIdentity(row.id, row.merchant_id, row.scope)
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[key_digest] = (now, identity)
        return identity
