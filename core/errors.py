"""Domain errors: each has a stable code the edges map to HTTP or chat replies."""

from __future__ import annotations

from datetime import datetime
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


class ConfirmationRequired(KartochkaError):
    """The program asks the customer to confirm a redemption: a code went to their messenger."""

    code = "confirmation_required"
    kind = "precondition"


class ConfirmationInvalid(ValidationFailed):
    code = "confirmation_invalid"


class ConfirmationLimit(KartochkaError):
    """Too many codes or wrong codes for this customer today: guessing is not a way in."""

    code = "confirmation_limit"
    kind = "rate_limited"


class CodeNotSent(ValidationFailed):
    """No code is waiting for this phone (never asked, already used, or replaced)."""

    code = "code_not_sent"


class CodeMalformed(ValidationFailed):
    """What was typed is not a code of the right form (no try is counted)."""

    code = "code_malformed"


class CodeWrong(ValidationFailed):
    """A wrong code; `tries_left` more before the lock."""

    code = "code_wrong"

    def __init__(self, message: str, *, tries_left: int) -> None:
        super().__init__(message, tries_left=tries_left)
        self.tries_left = tries_left


class CodeExpired(ValidationFailed):
    code = "code_expired"


class CodeLocked(KartochkaError):
    """Too many wrong codes for this phone: no checks and no new codes until `until`."""

    code = "code_locked"
    kind = "forbidden"

    def __init__(self, message: str, *, until: datetime) -> None:
        super().__init__(message, until=until.isoformat())
        self.until = until


class ResendTooSoon(KartochkaError):
    """A new code may be asked for in `seconds`."""

    code = "resend_too_soon"
    kind = "conflict"

    def __init__(self, message: str, *, seconds: int) -> None:
        super().__init__(message, seconds=seconds)
        self.seconds = seconds


class SmsLimitReached(KartochkaError):
    """A daily cap on codes is reached (`scope`: phone, account, merchant or ip)."""

    code = "sms_limit_reached"
    kind = "forbidden"

    def __init__(self, message: str, *, scope: str) -> None:
        super().__init__(message, scope=scope)
        self.scope = scope


class InvalidBirthDate(ValidationFailed):
    code = "invalid_birth_date"


class InvalidName(ValidationFailed):
    code = "invalid_name"


class SmsCountryRefused(ValidationFailed):
    """Codes go only to the countries the merchant serves (SMS pumping to premium numbers)."""

    code = "sms_country_refused"
