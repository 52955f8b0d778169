"""Scenarios as weighted mixes of operations, and the plan of ready-made requests each one makes."""

from __future__ import annotations

import bisect
import random
from dataclasses import dataclass

from bench import payloads


@dataclass(frozen=True, slots=True)
class Operation:
    """One kind of caller action: a first RPC, maybe a follow-up on the payment it made."""

    name: str
    rpc: str
    followup_rpc: str | None
    expected_code: str
    description: str


# Index in this tuple is how a plan refers to an operation (a small int on the hot path).
OPERATIONS: tuple[Operation, ...] = (
    Operation("authorize", "Authorize", None, "OK", "authorize with automatic capture"),
    Operation(
        "authorize_capture", "Authorize", "Capture", "OK", "authorize (manual), then capture all"
    ),
    Operation("refund", "Authorize", "Refund", "OK", "authorize with capture, then refund all"),
    Operation("replay", "Authorize", None, "OK", "repeat an earlier authorize, same key and body"),
    Operation("decline", "Authorize", None, "OK", "authorize with the declining test card"),
    Operation("bad", "Authorize", None, "INVALID_ARGUMENT", "a malformed authorize request"),
)
OPERATION_INDEX: dict[str, int] = {op.name: i for i, op in enumerate(OPERATIONS)}
AUTHORIZE, AUTHORIZE_CAPTURE, REFUND, REPLAY, DECLINE, BAD = range(len(OPERATIONS))

# What a plan holds for one action: the operation's index, the first request's bytes, and the
# follow-up request's bytes less its payment id (which only the first answer gives).
PlannedOp = tuple[int, bytes, bytes | None]


@dataclass(frozen=True, slots=True)
class Scenario:
    """A named weighted mix of operations."""

    name: str
    weights: tuple[tuple[str, int], ...]

    def as_dict(self) -> dict[str, object]:
        return {"name": self.name, "weights": dict(self.weights)}


SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario("authorize", (("authorize", 1),)),
        Scenario(
            "mixed",
            (
                ("authorize", 60),
                ("authorize_capture", 15),
                ("refund", 5),
                ("replay", 10),
                ("decline", 5),
                ("bad", 5),
            ),
        ),
        Scenario("capture", (("authorize_capture", 1),)),
        Scenario("refund", (("refund", 1),)),
        Scenario("replay", (("authorize", 1), ("replay", 1))),
        Scenario("decline", (("decline", 1),)),
    )
}


def parse_mix(text: str) -> Scenario:
    """A scenario by name, or a custom mix such as `authorize=70,replay=20,bad=10`."""
    text = text.strip()
    if text in SCENARIOS:
        return SCENARIOS[text]
    weights: list[tuple[str, int]] = []
    for part in text.split(","):
        name, sep, weight = part.partition("=")
        name = name.strip()
        if not sep or name not in OPERATION_INDEX:
            known = ", ".join(sorted(SCENARIOS))
            ops = ", ".join(op.name for op in OPERATIONS)
            raise ValueError(
                f"scenario {text!r}: expected a name ({known}) or OP=WEIGHT,... with OP in {ops}"
            )
        try:
            value = int(weight)
        except ValueError as exc:
            raise ValueError(f"scenario {text!r}: weight of {name!r} is not an integer") from exc
        if value < 0:
            raise ValueError(f"scenario {text!r}: weight of {name!r} is negative")
        if value:
            weights.append((name, value))
    if not weights:
        raise ValueError(f"scenario {text!r}: every weight is zero")
    return Scenario("custom:" + ",".join(f"{n}={w}" for n, w in weights), tuple(weights))


def build_plan(
    *, scenario: Scenario, count: int, key_prefix: str, seed: int, replay_lag: int
) -> list[PlannedOp]:
    """`count` ready-made actions drawn from the mix, each with its own idempotency key.

    A replay repeats the bytes of an authorize at least `replay_lag` places earlier, so that
    the original has normally been answered when the repeat is sent; the first actions of a
    plan have nothing to repeat yet and are sent as fresh authorizations.
    """
    rng = random.Random(seed)
    ops = [OPERATION_INDEX[name] for name, _ in scenario.weights]
    weights = [weight for _, weight in scenario.weights]
    choices = rng.choices(ops, weights=weights, k=count)
    auto_bodies = [payloads.authorize_body(amount_minor=a) for a in payloads.AMOUNTS_MINOR]
    manual_bodies = [
        payloads.authorize_body(amount_minor=a, automatic=False) for a in payloads.AMOUNTS_MINOR
    ]
    decline_bodies = [
        payloads.authorize_body(amount_minor=a, card_number=payloads.DECLINE_CARD)
        for a in payloads.AMOUNTS_MINOR
    ]
    bad_bodies = payloads.bad_authorize_bodies()
    n_amounts = len(payloads.AMOUNTS_MINOR)
    plan: list[PlannedOp] = []
    authorized: list[int] = []  # plan positions of plain authorizations, for replays
    for seq, op in enumerate(choices):
        key = payloads.key_field(f"{key_prefix}{seq:x}")
        body_index = seq % n_amounts
        if op == REPLAY:
            eligible = bisect.bisect_right(authorized, seq - replay_lag)
            if eligible:
                original = plan[authorized[rng.randrange(eligible)]][1]
                plan.append((REPLAY, original, None))
                continue
            op = AUTHORIZE
        if op == AUTHORIZE:
            authorized.append(seq)
            plan.append((AUTHORIZE, key + auto_bodies[body_index], None))
        elif op == AUTHORIZE_CAPTURE:
            followup = payloads.key_field(f"{key_prefix}{seq:x}-c")
            plan.append((AUTHORIZE_CAPTURE, key + manual_bodies[body_index], followup))
        elif op == REFUND:
            followup = payloads.key_field(f"{key_prefix}{seq:x}-r")
            plan.append((REFUND, key + auto_bodies[body_index], followup))
        elif op == DECLINE:
            plan.append((DECLINE, key + decline_bodies[body_index], None))
        else:
            plan.append((BAD, key + bad_bodies[seq % len(bad_bodies)], None))
    return plan
