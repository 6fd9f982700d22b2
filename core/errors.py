"""Domain errors: each has a stable code the edges map to HTTP or chat replies."""

from __future__ import annotations

from typing import Any


class KartochkaError(Exception):
    """Base of every error a caller can cause; `code` is stable, `message` human."""

    code = "error"
    kind = "invalid"  # invalid | not_found | conflict | forbidden | unavailable

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class ValidationFailed(KartochkaError):
    code = "validation_failed"


class NotFound(KartochkaError):
    code = "not_found"
    kind = "not_found"


class Conflict(KartochkaError):
    code = "conflict"
    kind = "conflict"


class InvalidPhone(ValidationFailed):
    code = "invalid_phone"


class CustomerNotFound(NotFound):
    code = "customer_not_found"


class MerchantNotFound(NotFound):
    code = "merchant_not_found"


class PurchaseNotFound(NotFound):
    code = "purchase_not_found"


class ReceiptConflict(Conflict):
    code = "receipt_conflict"


class RefundConflict(Conflict):
    code = "refund_conflict"


class CardTaken(Conflict):
    code = "card_taken"


class PhoneTaken(Conflict):
    code = "phone_taken"


class RedeemExceedsLimit(ValidationFailed):
    code = "redeem_exceeds_limit"


class InsufficientPoints(ValidationFailed):
    code = "insufficient_points"


class TotalMismatch(ValidationFailed):
    code = "total_mismatch"


class RefundExceedsPurchase(ValidationFailed):
    code = "refund_exceeds_purchase"


class InvalidProgram(ValidationFailed):
    code = "invalid_program"


class CardBlocked(ValidationFailed):
    code = "card_blocked"


class ConfigurationError(KartochkaError):
    code = "configuration_error"
    kind = "unavailable"
