"""The open-loop replay against a server: every request is sent at its arrival time, whether or not earlier
ones have finished (no coordinated omission), on one asyncio event loop with one pooled HTTP client.

Per request it fills the same `RequestRecord` as the in-process replay (times in seconds from the run's start,
on the client's clock): arrival (the workload's; with `--max-concurrency`, the moment a concurrency slot freed,
as vLLM's client starts its clock when it may send), enqueued = actually sent, arrival lag = sent - arrival,
first token and finish from the token chunks, ITL = one gap per chunk (see stream.py), status and reason.

The harness proves it kept up: arrival lag per request, and the event-loop thread's own CPU time
(`time.thread_time`; a server in the same process does not count) over the run's wall time.

A server that goes away mid-run: a request that cannot connect, or whose connection breaks, triggers one
health probe; if the server cannot be reached, nothing more is sent, the requests not yet sent end
`cancelled` ("not sent: ..."), those in flight end `failed` with their own error, and the run is `failed`.
Ctrl-C or SIGTERM: the same with "run interrupted" and an interrupted run.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from inferneo_bench.client import prompts
from inferneo_bench.client.stream import StreamResult, stream_request
from inferneo_bench.client.target import ServerInfo, Target
from inferneo_bench.results import RequestRecord
from inferneo_bench.runner.replay import Progress, ReplayOutcome, Request, quantize


@dataclass(frozen=True)
class RemoteOptions:
    max_concurrency: int | None = None
    request_timeout_s: float | None = None  # the client cancels a request not finished this long after arrival
    warmup: int = 0
    seed: int = 0
    connect_timeout_s: float = 10.0
    max_model_len: int | None = None  # known context: longer requests are rejected at arrival, not sent


def build_payload(spec: Request, target: Target, info: ServerInfo, seed: int) -> dict[str, Any]:
    """The request body: a fixed output length (max_tokens = the workload's output length, plus vLLM's
    ignore_eos and min_tokens where the server accepts them), streaming, with usage."""
    n_out = spec.output_tokens
    payload: dict[str, Any] = {"model": info.model_id, "stream": True, "stream_options": {"include_usage": True}}
    if target.api == "completions":
        payload["max_tokens"] = n_out
        if info.token_ids:
            payload["prompt"] = prompts.token_ids(spec.prompt_tokens, seed, spec.request_id)
        else:
            payload["prompt"] = prompts.text(spec.prompt_tokens, seed, spec.request_id, info.tokens_per_word)
    else:
        payload["max_completion_tokens"] = n_out
        content = prompts.text(spec.prompt_tokens, seed, spec.request_id, info.tokens_per_word)
        payload["messages"] = [{"role": "user", "content": content}]
    if info.extensions:
        payload["ignore_eos"] = True
        payload["min_tokens"] = n_out
        payload["stream_options"]["continuous_usage_stats"] = True
    return payload


def fill_record(record: RequestRecord, res: StreamResult, t0: float, token_ids: bool) -> None:
    """Copy a finished stream into the record (times relative to the run's start t0)."""
    times = [t - t0 for t in res.chunk_times]
    record.chunk_tokens = list(res.chunk_tokens)
    if times:
        record.first_token_s = times[0]
        record.itl_s = [b - a for a, b in zip(times, times[1:], strict=False)]
        record.finish_s = times[-1]
    counted = res.usage_completion if res.usage_completion is not None else sum(res.chunk_tokens)
    record.output_tokens = counted
    if res.usage_prompt is not None:
        record.prompt_tokens = res.usage_prompt
    timing = res.engine_timing or {}
    if isinstance(timing.get("ttft_ms"), (int, float)):
        record.server_ttft_s = timing["ttft_ms"] / 1000.0
    if res.status != "completed":
        return
    problems = []
    if counted != record.target_output_tokens:
        problems.append(f"{counted} output tokens for {record.target_output_tokens} requested")
    if token_ids and res.usage_prompt is not None and res.usage_prompt != record.sent_prompt_tokens:
        problems.append(f"{res.usage_prompt} prompt tokens for {record.sent_prompt_tokens} sent")
    if res.usage_completion is None:
        problems.append("no usage reported; output counted from the chunks")
    record.usage_mismatch = "; ".join(problems) or None


class _Run:
    """State of one replay (one event loop)."""

    def __init__(
        self,
        specs: Sequence[Request],
        target: Target,
        info: ServerInfo,
        options: RemoteOptions,
        on_progress: Callable[[Progress], None] | None,
        clock: Callable[[], float],
    ) -> None:
        self.specs = sorted(specs, key=lambda r: r.arrival_s)
        self.target, self.info, self.options, self.on_progress, self.clock = target, info, options, on_progress, clock
        self.records = [self._record(i, s) for i, s in enumerate(self.specs)]
        self.t0 = 0.0
        self.stop_reason: str | None = None  # set when nothing more may be sent
        self.interrupted = False
        self.failed_run = False
        self.ended = 0
        self.in_flight = 0
        self.waiting_slot = 0
        self.output_tokens = 0
        self._probing: asyncio.Task[bool] | None = None
        self.streams: dict[str, StreamResult] = {}  # in flight: what each has received so far
        self.halted = asyncio.Event()  # set with stop_reason when the server is gone: the launcher stops waiting

    def _record(self, index: int, spec: Request) -> RequestRecord:
        return RequestRecord(
            request_id=spec.request_id,
            arrival_s=spec.arrival_s,
            prompt_tokens=spec.prompt_tokens,
            output_tokens=0,
            target_output_tokens=spec.output_tokens,
            max_tokens=spec.output_tokens,  # what the server was asked for (see build_payload)
            priority=spec.priority,
            status="pending",
            warmup=index < self.options.warmup,
            sent_prompt_tokens=spec.prompt_tokens,
        )

    def now(self) -> float:
        return self.clock() - self.t0

    def _end(self, record: RequestRecord, status: str, reason: str | None) -> None:
        record.status, record.reason = status, reason
        self.ended += 1
        self.output_tokens += record.output_tokens if status == "completed" else 0
        if self.on_progress is not None:
            total = len(self.records)
            self.on_progress(
                Progress(self.now(), self.ended, total, self.waiting_slot, self.in_flight, self.output_tokens)
            )

    async def _server_alive(self, client: httpx.AsyncClient) -> bool:
        """One health probe at a time: can a fresh connection still reach the server?"""
        if self._probing is None or self._probing.done():

            async def probe() -> bool:
                try:
                    async with httpx.AsyncClient(timeout=self.options.connect_timeout_s) as fresh:
                        await fresh.get(self.target.url("/health", root=True), headers=self.target.headers)
                    return True  # any HTTP answer: something is listening
                except httpx.TransportError:
                    return False

            self._probing = asyncio.ensure_future(probe())
        return await asyncio.shield(self._probing)

    async def one(self, client: httpx.AsyncClient, spec: Request, record: RequestRecord, sem: Any) -> None:
        try:
            if sem is not None:
                self.waiting_slot += 1
                try:
                    await sem.acquire()
                finally:
                    self.waiting_slot -= 1
                got = self.now()
                if got > record.arrival_s:
                    record.client_queue_s = got - record.arrival_s
                    record.arrival_s = got
            try:
                if self.stop_reason is not None:
                    self._end(record, "cancelled", f"not sent: {self.stop_reason}")
                    return
                await self._send(client, spec, record)
            finally:
                if sem is not None:
                    sem.release()
        except asyncio.CancelledError:
            if record.status == "pending":
                sent = record.enqueued_s is not None
                if sent:
                    self._partial(record)
                why = self.stop_reason or "run interrupted"
                self._end(record, "cancelled", why if sent else f"not sent: {why}")
            raise

    def _partial(self, record: RequestRecord) -> None:
        """A request stopped by the client: keep the chunks it received, end it now."""
        res = self.streams.pop(record.request_id, None)
        if res is not None:
            fill_record(record, res, self.t0, token_ids=False)
        record.finish_s = self.now()

    async def _send(self, client: httpx.AsyncClient, spec: Request, record: RequestRecord) -> None:
        payload = build_payload(spec, self.target, self.info, self.options.seed)

        def sent() -> None:
            record.enqueued_s = self.now()
            record.arrival_lag_s = max(0.0, record.enqueued_s - record.arrival_s)

        res = self.streams[record.request_id] = StreamResult()
        coro = stream_request(client, self.target.endpoint, payload, self.target.headers, self.target.api == "chat",
                              self.clock, on_sent=sent, out=res)  # fmt: skip
        self.in_flight += 1
        try:
            if self.options.request_timeout_s is None:
                res = await coro
            else:
                deadline = record.arrival_s + self.options.request_timeout_s - self.now()
                try:
                    res = await asyncio.wait_for(coro, max(0.0, deadline))
                except asyncio.TimeoutError:
                    self._partial(record)
                    self._end(record, "cancelled", f"client timeout after {self.options.request_timeout_s:g} s")
                    return
        finally:
            self.in_flight -= 1
        del self.streams[record.request_id]
        fill_record(record, res, self.t0, self.info.token_ids and self.target.api == "completions")
        if res.status != "completed" and record.finish_s is None:
            record.finish_s = self.now()
        self._end(record, res.status, res.reason)
        if res.connection_error and self.stop_reason is None and not await self._server_alive(client):
            self.stop_reason = f"the server became unreachable ({res.reason})"
            self.failed_run = True
            self.halted.set()

    async def main(self) -> None:
        opts = self.options
        limits = httpx.Limits(max_connections=opts.max_concurrency, max_keepalive_connections=opts.max_concurrency)
        timeout = httpx.Timeout(connect=opts.connect_timeout_s, read=None, write=opts.connect_timeout_s, pool=None)
        sem = asyncio.Semaphore(opts.max_concurrency) if opts.max_concurrency else None
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        installed = []
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(sig, stop.set)
                installed.append(sig)
            except (NotImplementedError, RuntimeError, ValueError):  # not the main thread, or no signals here
                pass
        tasks: list[asyncio.Task[None]] = []
        try:
            async with httpx.AsyncClient(limits=limits, timeout=timeout) as client:
                self.t0 = self.clock()
                launcher = asyncio.ensure_future(self._launch(client, sem, tasks))
                stopper = asyncio.ensure_future(stop.wait())
                await asyncio.wait({launcher, stopper}, return_when=asyncio.FIRST_COMPLETED)
                if stop.is_set():
                    self.interrupted = True
                    self.stop_reason = "run interrupted"
                    launcher.cancel()
                    for task in tasks:
                        task.cancel()
                else:
                    stopper.cancel()
                await asyncio.gather(launcher, *tasks, return_exceptions=True)
            for record in self.records:  # never launched (the launcher was stopped)
                if record.status == "pending" and record.enqueued_s is None:
                    self._end(record, "cancelled", f"not sent: {self.stop_reason or 'run interrupted'}")
        finally:
            for sig in installed:
                loop.remove_signal_handler(sig)

    async def _launch(self, client: httpx.AsyncClient, sem: Any, tasks: list[asyncio.Task[None]]) -> None:
        for spec, record in zip(self.specs, self.records, strict=True):
            if self.stop_reason is not None:
                self._end(record, "cancelled", f"not sent: {self.stop_reason}")
                continue
            delay = spec.arrival_s - self.now()
            if delay > 0:
                try:  # the wait ends early when the server is found gone
                    await asyncio.wait_for(self.halted.wait(), delay)
                except asyncio.TimeoutError:
                    pass
            if self.stop_reason is not None:
                self._end(record, "cancelled", f"not sent: {self.stop_reason}")
                continue
            context = self.options.max_model_len
            if context is not None and spec.prompt_tokens + spec.output_tokens > context:
                record.enqueued_s, record.arrival_lag_s = self.now(), max(0.0, self.now() - spec.arrival_s)
                reason = f"prompt {spec.prompt_tokens} + max_tokens {spec.output_tokens} exceeds the model context"
                self._end(record, "rejected", f"{reason} {context} (not sent)")  # as the in-process replay does
                continue
            tasks.append(asyncio.ensure_future(self.one(client, spec, record, sem)))
        await asyncio.gather(*tasks, return_exceptions=True)


def replay_remote(
    specs: Sequence[Request],
    target: Target,
    info: ServerInfo,
    options: RemoteOptions,
    on_progress: Callable[[Progress], None] | None = None,
    clock: Callable[[], float] = time.perf_counter,
) -> tuple[ReplayOutcome, bool]:
    """Replay `specs` against the target; returns (outcome, server_lost). outcome.harness holds wall_s and the
    client's CPU seconds."""
    run = _Run(specs, target, info, options, on_progress, clock)
    wall0, cpu0 = time.perf_counter(), 0.0

    async def main() -> float:
        nonlocal cpu0
        cpu0 = time.thread_time()
        await run.main()
        return time.thread_time() - cpu0

    cpu_s = asyncio.run(main())
    wall_s = time.perf_counter() - wall0
    for record in run.records:
        if record.status == "pending":  # cannot happen unless the code above has a bug; keep it visible
            record.status, record.reason = "failed", "lost by the harness"
        if record.server_ttft_s is not None:
            record.server_ttft_s = round(record.server_ttft_s * 1e7) / 1e7
        if record.client_queue_s is not None:
            record.client_queue_s = round(record.client_queue_s * 1e7) / 1e7
    quantize(run.records, [])
    harness = {
        "wall_s": wall_s,
        "harness_s": None,
        "client_cpu_s": cpu_s,
        "reason": "remote target: the client's own CPU time (client_cpu_s) is the harness figure",
    }
    return ReplayOutcome(run.records, [], harness, run.interrupted), run.failed_run
