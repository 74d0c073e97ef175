"""The server's Prometheus metrics (`GET /metrics`), under vLLM's metric names where vLLM has one, so dashboards
and scrapers written for vLLM read them unchanged. Every series carries the label `model_name`, as vLLM's do.

vLLM's names used: vllm:num_requests_running, vllm:num_requests_waiting, vllm:kv_cache_usage_perc (0..1),
vllm:prompt_tokens_total, vllm:generation_tokens_total, vllm:request_success_total{finished_reason="length"},
vllm:num_preemptions_total, vllm:time_to_first_token_seconds, vllm:inter_token_latency_seconds,
vllm:time_per_output_token_seconds (per request), vllm:e2e_request_latency_seconds,
vllm:request_queue_time_seconds. Ours, without a vLLM equivalent: inferneo:requests_ended_total{status},
inferneo:engine_steps_total. Times are engine-side (see engine_loop.EngineTiming). One registry per server,
so several servers in one process (tests) do not mix their series.
"""

from __future__ import annotations

from typing import Any

TTFT_BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0)
TOKEN_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0)
REQUEST_BUCKETS = (0.01, 0.05, 0.1, 0.3, 0.5, 1.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0, 120.0, 300.0)


class ServerMetrics:
    """The engine loop's metric hooks (called on the engine thread; prometheus_client is thread-safe)."""

    def __init__(self, model_name: str, kv_slots: int) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = CollectorRegistry(auto_describe=True)
        self.kv_slots = max(1, kv_slots)
        labels = ("model_name",)
        reg = self.registry

        def gauge(name: str, doc: str) -> Any:
            return Gauge(name, doc, labels, registry=reg).labels(model_name)

        def counter(name: str, doc: str) -> Any:  # prometheus_client appends _total
            return Counter(name, doc, labels, registry=reg).labels(model_name)

        def hist(name: str, doc: str, buckets: tuple[float, ...]) -> Any:
            return Histogram(name, doc, labels, buckets=buckets, registry=reg).labels(model_name)

        self.running = gauge("vllm:num_requests_running", "Requests in the running batch (prefill or decode).")
        self.waiting = gauge("vllm:num_requests_waiting", "Requests waiting in the scheduler's queue.")
        self.kv_usage = gauge("vllm:kv_cache_usage_perc", "Fraction of the engine's KV cache slots in use (0..1).")
        self.prompt_tokens = counter("vllm:prompt_tokens", "Prompt tokens of admitted requests.")
        self.generation_tokens = counter("vllm:generation_tokens", "Output tokens generated.")
        self.preemptions = counter("vllm:num_preemptions", "Preemptions by the scheduler.")
        self.success = Counter(
            "vllm:request_success",
            "Requests that finished generating.",
            ("model_name", "finished_reason"),
            registry=reg,
        ).labels(model_name, "length")
        self.ended = Counter(
            "inferneo:requests_ended", "Requests by final status.", ("model_name", "status"), registry=reg
        )
        self._ended = {s: self.ended.labels(model_name, s) for s in ("completed", "cancelled", "failed", "rejected")}
        self.steps = counter("inferneo:engine_steps", "Engine steps run.")
        self.ttft = hist("vllm:time_to_first_token_seconds", "Engine-side time to first token.", TTFT_BUCKETS)
        self.itl = hist("vllm:inter_token_latency_seconds", "Gap between consecutive output tokens.", TOKEN_BUCKETS)
        self.tpot = hist(
            "vllm:time_per_output_token_seconds", "Per request: (finish - first token) / (tokens - 1).", TOKEN_BUCKETS
        )
        self.e2e = hist("vllm:e2e_request_latency_seconds", "Engine-side request latency.", REQUEST_BUCKETS)
        self.queue = hist("vllm:request_queue_time_seconds", "Time from hand-over to first scheduled.", REQUEST_BUCKETS)

    # ---- engine loop hooks ------------------------------------------------------------------------------
    def on_admitted(self, prompt_tokens: int) -> None:
        self.prompt_tokens.inc(prompt_tokens)

    def on_first_token(self, ttft_s: float) -> None:
        self.ttft.observe(ttft_s)

    def on_token_gap(self, gap_s: float) -> None:
        self.itl.observe(gap_s)

    def on_step(self, tokens: int) -> None:
        self.steps.inc()
        if tokens:
            self.generation_tokens.inc(tokens)

    def on_end(self, status: str, timing: Any) -> None:
        self._ended[status].inc()
        if timing.preemptions:
            self.preemptions.inc(timing.preemptions)
        if status != "completed":
            return
        self.success.inc()
        if timing.finish_s is not None:
            self.e2e.observe(timing.finish_s - timing.received_s)
        if timing.scheduled_s is not None:
            self.queue.observe(timing.scheduled_s - timing.received_s)
        if timing.output_tokens > 1 and timing.first_token_s is not None and timing.finish_s is not None:
            self.tpot.observe((timing.finish_s - timing.first_token_s) / (timing.output_tokens - 1))

    def set_state(self, running: int, waiting: int, kv_slots_used: int) -> None:
        self.running.set(running)
        self.waiting.set(waiting)
        self.kv_usage.set(kv_slots_used / self.kv_slots)

    def render(self) -> tuple[bytes, str]:
        """(body, content type) of the Prometheus text exposition."""
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return generate_latest(self.registry), CONTENT_TYPE_LATEST
