"""The switch's error tree and the one function that turns an error into a rich gRPC status.

    SwitchError                         base; `code` is the gRPC status, `reason` the ErrorReason
    ├── InvalidRequest                  INVALID_ARGUMENT + BadRequest (one violation per field)
    ├── Unauthenticated                 UNAUTHENTICATED
    ├── IdempotencyKeyInProgress        ABORTED: the first request with the key is still running
    ├── IdempotencyKeyReused            FAILED_PRECONDITION: same key, different request
    ├── RateLimited                     RESOURCE_EXHAUSTED + RetryInfo          (retryable)
    ├── StoreUnavailable                UNAVAILABLE: Redis is down, nothing accepted (retryable)
    ├── NoRoute                         FAILED_PRECONDITION: no channel supports the payment
    ├── ChannelUnavailable              UNAVAILABLE: no channel reachable, nothing sent (retryable)
    ├── InvalidPaymentState             FAILED_PRECONDITION + PreconditionFailure
    ├── AmountTooLarge                  FAILED_PRECONDITION + PreconditionFailure
    ├── PaymentBusy                     ABORTED: another operation on the payment is in flight
    ├── OperationNotSupported           FAILED_PRECONDITION
    └── PaymentNotFound                 NOT_FOUND

Foreign exceptions (redis, grpc) are translated where they first appear, with `raise ... from`.
"""

from __future__ import annotations

from collections.abc import Sequence

import grpc
from google.protobuf import duration_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2

from payswitch.common.v1 import error_reason_pb2

DOMAIN = "payswitch"


class SwitchError(Exception):
    """Base of every error the switch answers with on purpose."""

    code: grpc.StatusCode = grpc.StatusCode.INTERNAL
    reason: int = error_reason_pb2.ERROR_REASON_INTERNAL
    retryable: bool = False

    def __init__(self, message: str, *, metadata: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.metadata = metadata or {}

    def details(self) -> list[object]:
        """Rich-status details beyond ErrorInfo (BadRequest, RetryInfo, ...)."""
        return []


class InvalidRequest(SwitchError):
    code = grpc.StatusCode.INVALID_ARGUMENT
    reason = error_reason_pb2.ERROR_REASON_INVALID_REQUEST

    def __init__(self, violations: Sequence[tuple[str, str]]) -> None:
        self.violations = list(violations)
        fields = ", ".join(f for f, _ in self.violations)
        super().__init__(f"invalid request: {fields}")

    def details(self) -> list[object]:
        return [
            error_details_pb2.BadRequest(
                field_violations=[
                    error_details_pb2.BadRequest.FieldViolation(field=f, description=d)
                    for f, d in self.violations
                ]
            )
        ]


class Unauthenticated(SwitchError):
    code = grpc.StatusCode.UNAUTHENTICATED
    reason = error_reason_pb2.ERROR_REASON_API_KEY_INVALID


class IdempotencyKeyInProgress(SwitchError):
    code = grpc.StatusCode.ABORTED
    reason = error_reason_pb2.ERROR_REASON_IDEMPOTENCY_KEY_IN_PROGRESS
    retryable = True


class IdempotencyKeyReused(SwitchError):
    code = grpc.StatusCode.FAILED_PRECONDITION
    reason = error_reason_pb2.ERROR_REASON_IDEMPOTENCY_KEY_REUSED


class RateLimited(SwitchError):
    code = grpc.StatusCode.RESOURCE_EXHAUSTED
    reason = error_reason_pb2.ERROR_REASON_MERCHANT_RATE_LIMITED
    retryable = True

    def __init__(self, message: str, *, retry_after_ms: int, channel: str = "") -> None:
        super().__init__(message, metadata={"retry_after_ms": str(retry_after_ms)})
        self.retry_after_ms = retry_after_ms
        if channel:
            self.reason = error_reason_pb2.ERROR_REASON_CHANNEL_RATE_LIMITED
            self.metadata["channel"] = channel

    def details(self) -> list[object]:
        delay = duration_pb2.Duration()
        delay.FromMilliseconds(max(1, self.retry_after_ms))
        return [error_details_pb2.RetryInfo(retry_delay=delay)]


class StoreUnavailable(SwitchError):
    code = grpc.StatusCode.UNAVAILABLE
    reason = error_reason_pb2.ERROR_REASON_STORE_UNAVAILABLE
    retryable = True


class NoRoute(SwitchError):
    code = grpc.StatusCode.FAILED_PRECONDITION
    reason = error_reason_pb2.ERROR_REASON_NO_ROUTE


class ChannelUnavailable(SwitchError):
    code = grpc.StatusCode.UNAVAILABLE
    reason = error_reason_pb2.ERROR_REASON_CHANNEL_UNAVAILABLE
    retryable = True


class _Precondition(SwitchError):
    code = grpc.StatusCode.FAILED_PRECONDITION
    violation_type = ""

    def __init__(self, message: str, *, subject: str) -> None:
        super().__init__(message)
        self.subject = subject

    def details(self) -> list[object]:
        return [
            error_details_pb2.PreconditionFailure(
                violations=[
                    error_details_pb2.PreconditionFailure.Violation(
                        type=self.violation_type, subject=self.subject, description=self.message
                    )
                ]
            )
        ]


class InvalidPaymentState(_Precondition):
    reason = error_reason_pb2.ERROR_REASON_INVALID_PAYMENT_STATE
    violation_type = "PAYMENT_STATE"


class AmountTooLarge(_Precondition):
    reason = error_reason_pb2.ERROR_REASON_AMOUNT_TOO_LARGE
    violation_type = "AMOUNT"


class PaymentBusy(SwitchError):
    code = grpc.StatusCode.ABORTED
    reason = error_reason_pb2.ERROR_REASON_PAYMENT_BUSY
    retryable = True


class OperationNotSupported(SwitchError):
    code = grpc.StatusCode.FAILED_PRECONDITION
    reason = error_reason_pb2.ERROR_REASON_OPERATION_NOT_SUPPORTED


class PaymentNotFound(SwitchError):
    code = grpc.StatusCode.NOT_FOUND
    reason = error_reason_pb2.ERROR_REASON_PAYMENT_NOT_FOUND


def to_status(error: SwitchError) -> status_pb2.Status:
    """The google.rpc.Status for an error: ErrorInfo always, plus the error's own details."""
    info = error_details_pb2.ErrorInfo(
        reason=error_reason_pb2.ErrorReason.Name(error.reason),  # type: ignore[arg-type]
        domain=DOMAIN,
        metadata=error.metadata,
    )
    status = status_pb2.Status(code=_CODES[error.code], message=error.message)
    for detail in [info, *error.details()]:
        status.details.add().Pack(detail)
    return status


_CODES: dict[grpc.StatusCode, int] = {
    grpc.StatusCode.INVALID_ARGUMENT: code_pb2.INVALID_ARGUMENT,
    grpc.StatusCode.UNAUTHENTICATED: code_pb2.UNAUTHENTICATED,
    grpc.StatusCode.ABORTED: code_pb2.ABORTED,
    grpc.StatusCode.FAILED_PRECONDITION: code_pb2.FAILED_PRECONDITION,
    grpc.StatusCode.RESOURCE_EXHAUSTED: code_pb2.RESOURCE_EXHAUSTED,
    grpc.StatusCode.UNAVAILABLE: code_pb2.UNAVAILABLE,
    grpc.StatusCode.NOT_FOUND: code_pb2.NOT_FOUND,
    grpc.StatusCode.INTERNAL: code_pb2.INTERNAL,
}
