"""Per-call figures a generator keeps, and how the parent merges them across processes."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

from bench import histo


class CallStats:
    """The measured calls of one RPC within one operation: latency, overhead, outcomes.

    Latency and the switch's overhead are kept over the calls that got the outcome their
    operation is meant to get; the latency of the others (unexpected outcomes: errors) is kept
    apart, so that fast refusals or slow timeouts do not move the figures of the calls that
    went through."""

    __slots__ = ("codes", "count", "error_hist", "hist", "overhead", "statuses")

    def __init__(self) -> None:
        self.count = 0
        self.hist = histo.new_histogram()
        self.error_hist = histo.new_histogram()
        self.overhead = histo.new_histogram()
        self.codes: dict[str, int] = {}
        self.statuses: dict[str, int] = {}

    def add(
        self, latency_us: int, code: str, status: str, overhead_us: int | None, *, expected: bool
    ) -> None:
        self.count += 1
        self.codes[code] = self.codes.get(code, 0) + 1
        if status:
            self.statuses[status] = self.statuses.get(status, 0) + 1
        if not expected:
            histo.record_us(self.error_hist, latency_us)
            return
        histo.record_us(self.hist, latency_us)
        if overhead_us is not None:
            histo.record_us(self.overhead, overhead_us)

    def export(self) -> dict[str, Any]:
        """Plain data that crosses the process boundary (histograms encoded)."""
        return {
            "count": self.count,
            "hist": histo.encode(self.hist),
            "error_hist": histo.encode(self.error_hist),
            "overhead": histo.encode(self.overhead) if self.overhead.get_total_count() else "",
            "codes": dict(self.codes),
            "statuses": dict(self.statuses),
        }


class IntervalStats:
    """Calls of one RPC completed in the current progress interval, measured or not; latency
    of those with the expected outcome."""

    __slots__ = ("count", "errors", "hist")

    def __init__(self) -> None:
        self.count = 0
        self.errors = 0
        self.hist = histo.new_histogram()

    def add(self, latency_us: int, expected: bool) -> None:
        self.count += 1
        if not expected:
            self.errors += 1
            return
        histo.record_us(self.hist, latency_us)

    def take(self) -> tuple[int, int, str]:
        """(calls, unexpected outcomes, encoded histogram) so far, and start afresh."""
        taken = (self.count, self.errors, histo.encode(self.hist))
        self.count = 0
        self.errors = 0
        self.hist.reset()
        return taken


def expected_code(op: str) -> str:
    """The gRPC status an operation is meant to get: a bad request is meant to be refused."""
    return "INVALID_ARGUMENT" if op == "bad" else "OK"


# The payment status each RPC of an operation is meant to answer with the sandbox's test cards
# (an OK answer that says PENDING or FAILED is not a payment that went through). An answer
# without a payment status (a target that sends none) is judged by its gRPC status alone.
EXPECTED_STATUS: Mapping[tuple[str, str], str] = {
    ("Authorize", "authorize"): "CAPTURED",
    ("Authorize", "authorize_capture"): "AUTHORIZED",
    ("Capture", "authorize_capture"): "CAPTURED",
    ("Authorize", "refund"): "CAPTURED",
    ("Refund", "refund"): "REFUNDED",
    ("Authorize", "replay"): "CAPTURED",
    ("Authorize", "decline"): "DECLINED",
}


def expected(rpc: str, op: str, code: str, status: str) -> bool:
    """Whether one call ended as its operation is meant to."""
    if code != expected_code(op):
        return False
    return not status or EXPECTED_STATUS.get((rpc, op), status) == status


def unexpected(
    op: str, codes: Mapping[str, int], rpc: str = "", statuses: Mapping[str, int] | None = None
) -> int:
    """Calls of an operation that ended with another gRPC status than the one it is meant to
    get, or OK with another payment status than the one it is meant to reach."""
    want = expected_code(op)
    wrong = sum(n for code, n in codes.items() if code != want)
    meant = EXPECTED_STATUS.get((rpc, op))
    if meant is not None and statuses:
        wrong += sum(n for status, n in statuses.items() if status != meant)
    return wrong


def merge_exports(exports: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """One RPC/operation's figures merged from its exports (several processes or operations).

    `calls` and `errors` count every call; `latency_us` and `overhead_us` are over the calls
    with the expected outcome, `error_latency_us` over the others (None when there were none)."""
    count = 0
    hists: list[str] = []
    error_hists: list[str] = []
    overheads: list[str] = []
    codes: Counter[str] = Counter()
    statuses: Counter[str] = Counter()
    errors = 0
    for e in exports:
        count += int(e["count"])
        hists.append(str(e["hist"]))
        error_hists.append(str(e["error_hist"]))
        overheads.append(str(e["overhead"]))
        codes.update(e["codes"])
        statuses.update(e["statuses"])
        errors += unexpected(str(e["op"]), e["codes"], str(e.get("rpc", "")), e["statuses"])
    hist = histo.merge(hists)
    error_hist = histo.merge(error_hists)
    overhead = histo.merge(overheads)
    return {
        "calls": count,
        "errors": errors,
        "latency_us": histo.summarize(hist),
        "overhead_us": histo.summarize(overhead) if overhead.get_total_count() else None,
        "error_latency_us": histo.summarize(error_hist) if error_hist.get_total_count() else None,
        "codes": dict(sorted(codes.items())),
        "statuses": dict(sorted(statuses.items())),
        "histogram": histo.encode(hist),
        "overhead_histogram": histo.encode(overhead) if overhead.get_total_count() else "",
    }
