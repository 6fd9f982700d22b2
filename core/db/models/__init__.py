"""All tables; importing this package registers them on Base.metadata."""

from core.db.models.customer import (
    Card,
    ChannelAccount,
    Consent,
    Customer,
    CustomerDate,
    QrToken,
)
from core.db.models.ledger import LedgerEntry, LotAllocation
from core.db.models.merchant import ApiKey, Cashier, Merchant, MerchantSecret, ProgramVersion, Store
from core.db.models.ops import Job, OutboxEvent, OutboxOffset
from core.db.models.purchase import Purchase, PurchaseLine, Refund

__all__ = [
    "ApiKey",
    "Card",
    "Cashier",
    "ChannelAccount",
    "Consent",
    "Customer",
    "CustomerDate",
    "Job",
    "LedgerEntry",
    "LotAllocation",
    "Merchant",
    "MerchantSecret",
    "OutboxEvent",
    "OutboxOffset",
    "ProgramVersion",
    "Purchase",
    "PurchaseLine",
    "QrToken",
    "Refund",
    "Store",
]
