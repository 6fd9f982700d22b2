"""All tables; importing this package registers them on Base.metadata."""

from core.db.models.chat import (
    Bot,
    ChatMessage,
    DialogState,
    InboundUpdate,
    Media,
    OutgoingMessage,
    PhoneCode,
    RedemptionConfirmation,
    Review,
)
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
    "Bot",
    "Card",
    "Cashier",
    "ChannelAccount",
    "ChatMessage",
    "Consent",
    "Customer",
    "CustomerDate",
    "DialogState",
    "InboundUpdate",
    "Job",
    "LedgerEntry",
    "LotAllocation",
    "Media",
    "Merchant",
    "MerchantSecret",
    "OutboxEvent",
    "OutboxOffset",
    "OutgoingMessage",
    "PhoneCode",
    "ProgramVersion",
    "Purchase",
    "PurchaseLine",
    "QrToken",
    "RedemptionConfirmation",
    "Refund",
    "Review",
    "Store",
]
