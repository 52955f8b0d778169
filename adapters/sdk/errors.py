"""The adapter error tree, and what the worker turns each error into.

    AdapterError                      base; `retryable` says whether trying again may help
    ├── InvalidRequestError           bad input: INVALID_ARGUMENT with one violation per field
    ├── NotSupportedError             the channel cannot do this: FAILED_PRECONDITION
    ├── UpstreamUnavailableError      upstream unreachable, request certainly NOT sent:
    │                                 UNAVAILABLE, so the switch may try another channel
    └── OutcomeUnknownError           the request may have reached the upstream; the worker
        ├── UpstreamTimeoutError      answers a PENDING result, resolved later by Inquire
        └── InvalidResponseError      (an answer that cannot be trusted: bad signature,
                                       garbled frame, stale timestamp)

Raise the most specific error where a foreign exception first appears (`raise ... from exc`).
Never put card data or secrets into an error message.
"""

from __future__ import annotations

from collections.abc import Sequence


class AdapterError(Exception):
    """Base of every error an adapter raises on purpose."""

    retryable: bool = False

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidRequestError(AdapterError):
    """The request is malformed for this channel; `violations` lists (field, description)."""

    def __init__(self, violations: Sequence[tuple[str, str]]) -> None:
        self.violations = list(violations)
        super().__init__("; ".join(f"{f}: {d}" for f, d in self.violations) or "invalid request")


class NotSupportedError(AdapterError):
    """The channel does not support this operation or this variant of it."""


class UpstreamUnavailableError(AdapterError):
    """The upstream could not be reached and the request was certainly not sent to it."""

    retryable = True


class OutcomeUnknownError(AdapterError):
    """The request may have reached the upstream but its outcome is not known."""


class UpstreamTimeoutError(OutcomeUnknownError):
    """The upstream did not answer in time."""


class InvalidResponseError(OutcomeUnknownError):
    """The upstream answered with something that cannot be trusted or parsed."""
