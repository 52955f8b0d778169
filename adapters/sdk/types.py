"""Typed data an adapter works with: frozen dataclasses, converted to and from the Channel proto."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field


class PaymentMethodType(enum.Enum):
    """The kind of instrument; values match `payswitch.common.v1.PaymentMethodType`."""

    CARD = 1
    ALIPAY = 2
    WECHAT_PAY = 3


class OperationType(enum.Enum):
    """An operation on a payment; values match `payswitch.common.v1.OperationType`."""

    AUTHORIZE = 1
    CAPTURE = 2
    VOID = 3
    REFUND = 4


class OperationStatus(enum.Enum):
    """How an operation ended; values match `payswitch.channel.v1.OperationStatus`."""

    APPROVED = 1
    DECLINED = 2
    PENDING = 3
    NOT_FOUND = 4


class DeclineCode(enum.Enum):
    """Canonical decline reasons; values match `payswitch.common.v1.DeclineCode`."""

    DO_NOT_HONOR = 1
    INSUFFICIENT_FUNDS = 2
    EXPIRED_CARD = 3
    INVALID_CARD_NUMBER = 4
    INVALID_AMOUNT = 5
    INVALID_TRANSACTION = 6
    LOST_CARD = 7
    STOLEN_CARD = 8
    INCORRECT_PIN = 9
    TRANSACTION_NOT_PERMITTED = 10
    EXCEEDS_LIMIT = 11
    ISSUER_UNAVAILABLE = 12
    PROCESSING_ERROR = 13
    REFER_TO_ISSUER = 14
    DUPLICATE_TRANSACTION = 15
    INVALID_PAYMENT_CODE = 16
    BUYER_CANCELLED = 17
    RISK_REJECTED = 18
    INVALID_STATE = 19


@dataclass(frozen=True, slots=True)
class Money:
    """An exact amount: integer minor units of an ISO 4217 currency. Never a float."""

    amount_minor: int
    currency: str


@dataclass(frozen=True, slots=True)
class Card:
    """A payment card. Its repr never shows the number or the CVC."""

    number: str = field(repr=False)
    expiry_month: int
    expiry_year: int
    cvc: str = field(repr=False)
    holder_name: str = ""

    @property
    def masked(self) -> str:
        """The number as it may be shown: BIN and last four, for example 424242******4242."""
        return self.number[:6] + "*" * (len(self.number) - 10) + self.number[-4:]


@dataclass(frozen=True, slots=True)
class Wallet:
    """A wallet payment by the buyer's payment code (Alipay-style or WeChat-Pay-style)."""

    type: PaymentMethodType
    auth_code: str = field(repr=False)


PaymentMethod = Card | Wallet


@dataclass(frozen=True, slots=True)
class AuthorizeRequest:
    """Authorize (and with `capture`, also capture) a payment."""

    reference: str
    merchant_id: str
    amount: Money
    payment_method: PaymentMethod
    capture: bool
    description: str = ""


@dataclass(frozen=True, slots=True)
class CaptureRequest:
    """Capture all or part of the authorization named by `original_reference`."""

    reference: str
    merchant_id: str
    original_reference: str
    upstream_reference: str
    amount: Money
    authorized_amount: Money


@dataclass(frozen=True, slots=True)
class VoidRequest:
    """Release the authorization named by `original_reference`."""

    reference: str
    merchant_id: str
    original_reference: str
    upstream_reference: str
    amount: Money


@dataclass(frozen=True, slots=True)
class RefundRequest:
    """Refund all or part of the payment named by `original_reference`."""

    reference: str
    merchant_id: str
    original_reference: str
    upstream_reference: str
    amount: Money
    captured_amount: Money
    reason: str = ""


@dataclass(frozen=True, slots=True)
class InquireRequest:
    """Ask for the outcome of the earlier operation named by `reference`."""

    reference: str
    merchant_id: str
    operation: OperationType
    original_reference: str
    amount: Money | None


@dataclass(frozen=True, slots=True)
class OperationResult:
    """The outcome of an operation. A decline is a result, not an error."""

    status: OperationStatus
    decline_code: DeclineCode | None = None
    raw_code: str = ""
    message: str = ""
    upstream_reference: str = ""
    authorization_code: str = ""
    approved_amount: Money | None = None

    @classmethod
    def approved(cls, **kwargs: object) -> OperationResult:
        return cls(status=OperationStatus.APPROVED, **kwargs)  # type: ignore[arg-type]

    @classmethod
    def declined(cls, code: DeclineCode, **kwargs: object) -> OperationResult:
        return cls(status=OperationStatus.DECLINED, decline_code=code, **kwargs)  # type: ignore[arg-type]

    @classmethod
    def pending(cls, message: str = "", **kwargs: object) -> OperationResult:
        return cls(status=OperationStatus.PENDING, message=message, **kwargs)  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What a channel supports; the switch routes by it."""

    name: str
    payment_methods: frozenset[PaymentMethodType]
    currencies: frozenset[str]
    min_amount_minor: int = 1
    max_amount_minor: int = 0
    supports_manual_capture: bool = True
    supports_partial_capture: bool = True
    supports_void: bool = True
    supports_refund: bool = True
    supports_partial_refund: bool = True


@dataclass(frozen=True, slots=True)
class ChannelEvent:
    """An outcome the adapter learned on its own (a notification, a completed reversal)."""

    reference: str
    operation: OperationType
    result: OperationResult
