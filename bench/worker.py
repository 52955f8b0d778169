"""One generator process: its own uvloop and grpc.aio channels, sending a ready-made plan."""

from __future__ import annotations

import asyncio
import math
import multiprocessing
import os
import resource
import time
import traceback
from collections.abc import Awaitable, Iterator
from typing import Any

import grpc
import uvloop

from bench import h2client, histo, payloads, schedule
from bench.config import RunConfig
from bench.scenarios import OPERATIONS, REPLAY, PlannedOp, build_plan
from bench.stats import CallStats, IntervalStats, expected
from bench.transport import LeanUnarySender, Sender, StreamSender, UnarySender, open_channel

# A payment the follow-up (capture or refund) can act on.
_FOLLOWUP_READY = {"AUTHORIZED", "CAPTURED"}


def _process_cpu_s() -> float:
    """CPU seconds of this process so far, all threads (grpc's own included), user + system."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class Generator:
    """Sends one process's share of a run and keeps its figures."""

    def __init__(self, cfg: RunConfig, index: int, queue: Any) -> None:
        self.cfg = cfg
        self.index = index
        self.queue = queue
        load = cfg.load
        self.timeout = cfg.target.deadline_ms / 1000
        key = cfg.target.api_key
        self.metadata = (("authorization", f"Bearer {key}"),) if key else None
        self.stats: dict[tuple[str, str], CallStats] = {}
        self.interval: dict[str, IntervalStats] = {}
        self.lag = histo.new_histogram()  # open loop: how late the generator itself sent
        self.slot_wait = histo.new_histogram()  # open loop: waits for a free --max-inflight slot
        self.interval_ns = int(load.interval_s * schedule.NS_PER_S)
        self.start_ns = 0
        self.measure_ns = 0
        self.stop_ns = 0
        self.last_end_ns = 0
        self.calls_total = 0
        self.cpu_s = 0.0
        self.exhausted = False
        self._senders: list[Sender] = []
        self._warmup: list[PlannedOp] = []
        self._measured: list[PlannedOp] = []
        # Authorizations that a replay repeats, and when each was answered (monotonic ns): a
        # replay is sent once its original is answered, as a caller repeats what it was answered.
        self._replayed: set[bytes] = set()
        self._answered: dict[bytes, asyncio.Future[int]] = {}

    # -- before the timed loop ---------------------------------------------------------------

    def build(self) -> None:
        """Every request this process will send, serialized now, keys unique per run."""
        load = self.cfg.load
        p, n_proc = self.index, load.processes
        if load.mode == "open":
            warm = schedule.open_loop_count(
                rate=load.rate, seconds=load.warmup_s, processes=n_proc, process_index=p
            )
            if load.requests is not None:
                count = schedule.open_loop_share(
                    total=load.requests, processes=n_proc, process_index=p
                )
            else:
                count = schedule.open_loop_count(
                    rate=load.rate,
                    seconds=load.duration_s or 0.0,
                    processes=n_proc,
                    process_index=p,
                )
            lag = max(64, int(load.rate / n_proc / 10))
        else:
            warm = math.ceil(load.warmup_s * load.pool_rate)
            if load.requests is not None:
                count = schedule.split_evenly(load.requests, n_proc)[p]
            else:
                count = math.ceil((load.duration_s or 0.0) * load.pool_rate)
            lag = 4 * max(1, load.concurrency // n_proc)
        prefix = f"bench-{self.cfg.run_id}-{p}-"
        seed = self.cfg.seed * 1000 + p
        self._warmup = build_plan(
            scenario=self.cfg.scenario,
            count=warm,
            key_prefix=prefix + "w",
            seed=seed,
            replay_lag=lag,
        )
        self._measured = build_plan(
            scenario=self.cfg.scenario,
            count=count,
            key_prefix=prefix + "m",
            seed=seed + 500,
            replay_lag=lag,
        )
        self._replayed = {
            request for op, request, _ in self._warmup + self._measured if op == REPLAY
        }
        for op in OPERATIONS:
            for rpc in (op.rpc, op.followup_rpc):
                if rpc is not None:
                    self.stats.setdefault((rpc, op.name), CallStats())
                    self.interval.setdefault(rpc, IntervalStats())

    async def connect(self) -> list[grpc.aio.Channel]:
        if self.cfg.load.transport == "unary" and self.cfg.load.unary_client == "lean":
            await self._connect_lean()
            return []
        channels = [open_channel(self.cfg) for _ in range(self.cfg.load.channels)]
        wait_s = self.cfg.target.connect_timeout_s
        try:
            await asyncio.wait_for(
                asyncio.gather(*(c.channel_ready() for c in channels)), timeout=wait_s
            )
        except TimeoutError:
            for channel in channels:
                await channel.close()
            raise ConnectionError(
                f"could not connect to {self.cfg.target.address} in {wait_s:g} s"
            ) from None
        for channel in channels:
            if self.cfg.load.transport != "unary":
                for _ in range(self.cfg.load.streams):
                    stream = StreamSender(
                        channel,
                        timeout=self.timeout,
                        metadata=self.metadata,
                        batched=self.cfg.load.transport == "batch",
                    )
                    stream.start()
                    self._senders.append(stream)
            else:
                self._senders.append(
                    UnarySender(channel, timeout=self.timeout, metadata=self.metadata)
                )
        return channels

    async def _connect_lean(self) -> None:
        target = self.cfg.target
        headers = LeanUnarySender.header_blocks(
            authority=target.address, tls=target.tls, timeout=self.timeout, metadata=self.metadata
        )

        def open_one() -> Awaitable[h2client.Connection]:
            return h2client.connect(
                target.address,
                timeout_s=self.timeout,
                connect_timeout_s=target.connect_timeout_s,
                tls=target.tls,
                ca_file=target.ca_file,
            )

        opening = [open_one() for _ in range(self.cfg.load.channels)]
        results = await asyncio.gather(*opening, return_exceptions=True)
        for result in results:
            if isinstance(result, h2client.Connection):
                self._senders.append(LeanUnarySender(result, headers, reopen=open_one))
        failed = [r for r in results if isinstance(r, BaseException)]
        if failed:
            for sender in self._senders:
                await sender.close()
            self._senders.clear()
            why = "timed out" if isinstance(failed[0], TimeoutError) else str(failed[0])
            raise ConnectionError(f"could not connect to {target.address}: {why}") from None

    # -- the timed loop ----------------------------------------------------------------------

    async def _call(
        self,
        sender: Sender,
        rpc: str,
        op_name: str,
        request: bytes,
        started_ns: int,
        measured: bool,
    ) -> Any:
        """One request; records it and returns the parsed payment (None on a non-OK status)."""
        code, payment, overhead = await sender.send(rpc, request)
        status = "" if payment is None else payloads.status_name(payment.status)
        end_ns = time.monotonic_ns()
        latency_us = (end_ns - started_ns) // 1000
        ok = expected(rpc, op_name, code, status)
        self.interval[rpc].add(latency_us, ok)
        self.calls_total += 1
        if measured:
            self.stats[(rpc, op_name)].add(latency_us, code, status, overhead, expected=ok)
            if end_ns > self.last_end_ns:
                self.last_end_ns = end_ns
        return payment

    def _answer_of(self, request: bytes) -> asyncio.Future[int]:
        """When the authorization `request` (one that a replay repeats) was answered."""
        future = self._answered.get(request)
        if future is None:
            future = self._answered[request] = asyncio.get_running_loop().create_future()
        return future

    async def _original_answered_ns(self, request: bytes) -> int:
        """Wait for the answer to the authorization that the replay `request` repeats.

        The original is earlier in the plan, so it was taken before the replay and is sent
        before it; its call ends within its deadline (after a connection is opened again, at
        worst). Past that bound the replay goes anyway rather than wait for ever."""
        bound_s = self.timeout + self.cfg.target.connect_timeout_s
        try:
            return await asyncio.wait_for(asyncio.shield(self._answer_of(request)), bound_s)
        except TimeoutError:
            return 0

    async def _execute(
        self,
        sender: Sender,
        planned: PlannedOp,
        intended_ns: int,
        measured: bool,
        taken_ns: int = 0,
    ) -> None:
        """One planned action; `intended_ns` is when an open loop meant to send it (0: at once)
        and `taken_ns` when a free slot took it from the schedule."""
        op_index, request, followup = planned
        op = OPERATIONS[op_index]
        if op_index == REPLAY:
            # A replay due before its original was answered is due when it was: sent earlier,
            # it would be refused as a key in progress, which says nothing of the switch.
            answered_ns = await self._original_answered_ns(request)
            if intended_ns:
                intended_ns = max(intended_ns, answered_ns)
        send_ns = time.monotonic_ns()
        if intended_ns and measured:
            # Late for want of a free slot (the target holds --max-inflight calls), then late
            # on the generator's own account (its loop busy or slow to wake).
            histo.record_us(self.slot_wait, max(0, taken_ns - intended_ns) // 1000)
            histo.record_us(self.lag, max(0, send_ns - max(intended_ns, taken_ns)) // 1000)
        started = intended_ns if 0 < intended_ns < send_ns else send_ns
        if request in self._replayed and op_index != REPLAY:
            try:
                payment = await self._call(sender, op.rpc, op.name, request, started, measured)
            finally:
                answered = self._answer_of(request)
                if not answered.done():
                    answered.set_result(time.monotonic_ns())
        else:
            payment = await self._call(sender, op.rpc, op.name, request, started, measured)
        if followup is None or op.followup_rpc is None or payment is None:
            return
        if payloads.status_name(payment.status) not in _FOLLOWUP_READY:
            return
        request = followup + payloads.payment_id_field(payment.id.encode())
        await self._call(sender, op.followup_rpc, op.name, request, time.monotonic_ns(), measured)

    async def _closed_caller(
        self,
        sender: Sender,
        warmup: Iterator[PlannedOp],
        measured: Iterator[PlannedOp],
    ) -> None:
        for planned in warmup:
            if time.monotonic_ns() >= self.measure_ns:
                break
            await self._execute(sender, planned, 0, False)
        wait_ns = self.measure_ns - time.monotonic_ns()
        if wait_ns > 0:  # the warm-up's requests ran out early: measure from the window's start
            await asyncio.sleep(wait_ns / schedule.NS_PER_S)
        for planned in measured:
            if time.monotonic_ns() >= self.stop_ns:
                return
            await self._execute(sender, planned, 0, True)
        if self.cfg.load.duration_s is not None:
            self.exhausted = True

    def _open_sequence(self) -> Iterator[tuple[PlannedOp, int, bool]]:
        load = self.cfg.load
        for base_ns, plan, measured in (
            (self.start_ns, self._warmup, False),
            (self.measure_ns, self._measured, True),
        ):
            for k, planned in enumerate(plan):
                at = schedule.intended_send_ns(
                    start_ns=base_ns,
                    rate=load.rate,
                    processes=load.processes,
                    process_index=self.index,
                    k=k,
                )
                yield planned, at, measured

    async def _open_sender(
        self, sender: Sender, sequence: Iterator[tuple[PlannedOp, int, bool]]
    ) -> None:
        for planned, at_ns, measured in sequence:
            taken_ns = time.monotonic_ns()
            delay = at_ns - taken_ns
            if delay > 0:
                await asyncio.sleep(delay / schedule.NS_PER_S)
            await self._execute(sender, planned, at_ns, measured, taken_ns)

    async def _ticker(self) -> None:
        k = 0
        while True:
            next_ns = self.start_ns + (k + 1) * self.interval_ns
            await asyncio.sleep(max(0, next_ns - time.monotonic_ns()) / schedule.NS_PER_S)
            self._send_interval(k)
            k += 1

    def _send_interval(self, k: int) -> None:
        payload = {rpc: s.take() for rpc, s in self.interval.items() if s.count}
        self.queue.put(("tick", self.index, k, payload))

    async def run(self, go: Any, start_at: Any) -> dict[str, Any]:
        _exit_with_parent()
        self.build()
        channels = await self.connect()
        try:
            self.queue.put(("ready", self.index, None, None))
            await asyncio.get_running_loop().run_in_executor(None, go.wait)
            load = self.cfg.load
            self.start_ns = int(start_at.value)
            self.measure_ns = self.start_ns + int(load.warmup_s * schedule.NS_PER_S)
            self.stop_ns = (
                self.measure_ns + int(load.duration_s * schedule.NS_PER_S)
                if load.duration_s is not None
                else 2**63
            )
            delay = self.start_ns - time.monotonic_ns()
            if delay > 0:
                await asyncio.sleep(delay / schedule.NS_PER_S)
            ticker = asyncio.create_task(self._ticker())
            cpu_before = _process_cpu_s()
            if load.mode == "closed":
                callers = schedule.split_evenly(load.concurrency, load.processes)[self.index]
                warm, meas = iter(self._warmup), iter(self._measured)
                tasks = [
                    self._closed_caller(self._senders[i % len(self._senders)], warm, meas)
                    for i in range(callers)
                ]
            else:
                sequence = self._open_sequence()
                tasks = [
                    self._open_sender(self._senders[i % len(self._senders)], sequence)
                    for i in range(load.max_inflight)
                ]
            await asyncio.gather(*tasks)
            self.cpu_s = _process_cpu_s() - cpu_before
            ticker.cancel()
            k = (time.monotonic_ns() - self.start_ns) // self.interval_ns
            self._send_interval(int(k))
        finally:
            for sender in self._senders:
                await sender.close()
            for channel in channels:
                await channel.close()
        return self.result()

    def result(self) -> dict[str, Any]:
        return {
            "stats": [
                {"rpc": rpc, "op": op, **s.export()}
                for (rpc, op), s in self.stats.items()
                if s.count
            ],
            "lag": histo.encode(self.lag) if self.lag.get_total_count() else "",
            "slot_wait": histo.encode(self.slot_wait) if self.slot_wait.get_total_count() else "",
            "measure_start_ns": self.measure_ns,
            "last_end_ns": self.last_end_ns,
            "exhausted": self.exhausted,
            "calls_total": self.calls_total,
            "cpu_s": self.cpu_s,
        }


def _exit_with_parent() -> None:
    """End this generator when the bench command that started it is gone.

    A bench command killed by a signal (SIGKILL, or a SIGTERM from outside) runs no cleanup, and
    its generators would go on sending to the switch for the rest of the run, unseen. The
    parent's sentinel becomes readable when the parent exits."""
    parent = multiprocessing.parent_process()
    if parent is not None:
        asyncio.get_running_loop().add_reader(parent.sentinel, os._exit, 3)


def process_main(cfg: RunConfig, index: int, queue: Any, go: Any, start_at: Any) -> None:
    """Entry point of a generator process (started with the spawn method)."""
    try:
        result = uvloop.run(Generator(cfg, index, queue).run(go, start_at))
    except ConnectionError as exc:
        queue.put(("error", index, None, str(exc)))
        return
    except BaseException:  # noqa: BLE001 - any failure must reach the parent, not vanish
        queue.put(("error", index, None, traceback.format_exc()))
        return
    queue.put(("done", index, None, result))
