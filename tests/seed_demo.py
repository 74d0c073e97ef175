"""A port of the Inferneo design document's demo (examples/dynamic_batching_demo.py of deepdik/inferneo) onto
inferneo_bench.scheduler: the same four strategies on one scheduler, the same request generators, arrivals
spaced in time and then the same consumer loop (get_next_batch, complete_batch, complete_request), on the
wall clock. Changes: the sleeps are multiplied by `scale` (0.1: the whole demo takes about a second), the
random streams come from one seeded generator, the consumer reads the queue depth from get_stats() instead of
the document's private `_waiting_queue`, and each batch's figures are kept so that the document's definitions
can be applied to the same batches beside the scheduler's stats.

    python tests/seed_demo.py [scale] [seed]      # prints the demo's log lines and the comparison
"""

from __future__ import annotations

import asyncio
import random
import sys
from collections.abc import Callable
from dataclasses import dataclass, field

from inferneo_bench.scheduler import BatchingStrategy, EnhancedScheduler, ScheduledRequest, SchedulerConfig

TEST_PROMPTS = [
    "The quick brown fox jumps over the lazy dog.",
    "In a hole in the ground there lived a hobbit.",
    "It was the best of times, it was the worst of times.",
    "To be or not to be, that is the question.",
    "All happy families are alike; each unhappy family is unhappy in its own way.",
    "Call me Ishmael.",
    "It is a truth universally acknowledged, that a single man in possession of a good fortune, must be in want "
    "of a wife.",
    "The only way to do great work is to love what you do.",
    "Life is what happens when you're busy making other plans.",
    "The future belongs to those who believe in the beauty of their dreams.",
]
STATS_WINDOW = 20  # the document's get_batching_stats averages its last 20 completed batches


@dataclass
class DemoRequest:
    """Demo request for testing (the document's demo defines it so)."""

    request_id: str
    prompt: str
    max_tokens: int
    priority: int = 5


@dataclass
class ReportedBatch:
    size: int
    processing_time: float
    gpu_utilization: float


@dataclass
class StrategyRun:
    name: str
    requests: int
    batch_sizes: list[int] = field(default_factory=list)
    stats: dict = field(default_factory=dict)  # get_batching_stats() after the strategy's demo
    document: dict = field(default_factory=dict)  # the document's definitions on the same batches


class DynamicBatchingDemo:
    def __init__(self, scale: float = 0.1, seed: int = 0, log: Callable[[str], None] = print) -> None:
        config = SchedulerConfig(
            max_num_partial_prefills=4, max_waiting_tokens=2048, enable_priority_queue=True, preemption_mode="recompute"
        )
        self.scheduler = EnhancedScheduler(config)
        self.scale = scale
        self.random = random.Random(seed)
        self.log = log
        self.reported: list[ReportedBatch] = []  # every batch this demo completed, in order
        self.runs: list[StrategyRun] = []
        self.final_stats: dict = {}

    async def run_demo(self) -> list[StrategyRun]:
        await self.scheduler.initialize()
        await self._demo("Adaptive", BatchingStrategy.ADAPTIVE, self._generate_diverse_requests(20), 0.1)
        await self._demo("Coalescing", BatchingStrategy.COALESCING, self._generate_similar_length_requests(25), 0.05)
        await self._demo(
            "Latency-Optimized", BatchingStrategy.LATENCY_OPTIMIZED, self._generate_high_priority_requests(15), 0.2
        )
        await self._demo(
            "Throughput-Optimized", BatchingStrategy.THROUGHPUT_OPTIMIZED, self._generate_throughput_requests(30), 0.02
        )
        self.show_final_stats()
        await self.scheduler.cleanup()
        return self.runs

    async def _demo(self, name: str, strategy: BatchingStrategy, requests: list[DemoRequest], gap_s: float) -> None:
        self.log(f"\n{name} Batching Strategy\n" + "=" * 50)
        self.scheduler.set_batching_strategy(strategy)
        for request in requests:
            await self.scheduler.add_request(request)
            await asyncio.sleep(gap_s * self.scale)  # simulate request arrival
        run = StrategyRun(name, len(requests))
        await self._process_batches(run)
        run.stats = self.scheduler.get_batching_stats()
        run.document = self._document_definitions()
        self.runs.append(run)
        s, d = run.stats, run.document
        self.log(f"{name} Batching Results (document's definition on the same batches in brackets):")
        self.log(f"  - Average Batch Size: {s.get('avg_batch_size', 0):.2f} [{d['avg_batch_size']:.2f}]")
        self.log(f"  - Average Throughput: {s.get('avg_throughput', 0):.2f} req/s [{d['avg_throughput']:.2f}]")
        self.log(f"  - Average Latency: {s.get('avg_latency', 0):.3f}s [{d['avg_latency']:.3f}]")
        self.log(f"  - GPU Utilization: {s.get('avg_gpu_utilization', 0):.2f} [{d['avg_gpu_utilization']:.2f}]")
        self.log(f"  - Queue Size: {s.get('queue_size', 0)}, Coalescing Buckets: {s.get('coalescing_buckets', 0)}")
        self.log(f"  - Current Batch Size: {s['current_batch_size']}, batch sizes: {run.batch_sizes}")

    async def _process_batches(self, run: StrategyRun) -> None:
        batch_count = 0
        total_requests = 0
        while True:
            batch = await self.scheduler.get_next_batch()
            if not batch:
                await asyncio.sleep(0.1 * self.scale)
                if self.scheduler.get_stats()["queue_depth"] == 0:
                    break
                continue
            batch_count += 1
            total_requests += len(batch)
            processing_time = self._simulate_batch_processing(batch)
            gpu_utilization = self.random.uniform(0.6, 0.95)
            memory_usage = self.random.uniform(0.4, 0.8)
            batch_id = batch[0].batch_id if batch else f"batch_{batch_count}"
            await self.scheduler.complete_batch(batch_id, processing_time, gpu_utilization, memory_usage)
            for request in batch:
                await self.scheduler.complete_request(
                    request.request_id,
                    success=True,
                    processing_time=processing_time / len(batch),
                    gpu_utilization=gpu_utilization,
                )
            self.reported.append(ReportedBatch(len(batch), processing_time, gpu_utilization))
            run.batch_sizes.append(len(batch))
            self.log(
                f"{run.name} Batch {batch_count}: {len(batch)} requests, {processing_time:.3f}s, "
                f"GPU: {gpu_utilization:.2f}  ({batch_id})"
            )
            await asyncio.sleep(0.05 * self.scale)
        self.log(f"{run.name}: Processed {batch_count} batches, {total_requests} total requests")

    def _document_definitions(self) -> dict:
        """The document's get_batching_stats, applied to the batches this demo reported: over its last 20
        batches, mean batch size, mean of size/processing_time (req/s), mean of processing_time/size (s)."""
        recent = self.reported[-STATS_WINDOW:]
        n = len(recent)
        return {
            "avg_batch_size": sum(b.size for b in recent) / n,
            "avg_throughput": sum(b.size / b.processing_time for b in recent) / n,
            "avg_latency": sum(b.processing_time / b.size for b in recent) / n,
            "avg_gpu_utilization": sum(b.gpu_utilization for b in recent) / n,
        }

    def _simulate_batch_processing(self, batch: list[ScheduledRequest]) -> float:
        base_time = 0.1
        batch_size_factor = len(batch) * 0.02
        total_tokens = sum(req.estimated_tokens for req in batch)
        token_factor = total_tokens * 0.001
        random_factor = self.random.uniform(0.8, 1.2)
        return (base_time + batch_size_factor + token_factor) * random_factor

    def _generate_diverse_requests(self, count: int) -> list[DemoRequest]:
        rng = self.random
        return [
            DemoRequest(f"req_{i:03d}", rng.choice(TEST_PROMPTS), rng.randint(10, 100), rng.randint(1, 10))
            for i in range(count)
        ]

    def _generate_similar_length_requests(self, count: int) -> list[DemoRequest]:
        rng = self.random
        requests = []
        for i in range(count):
            prompt_length = 50 + rng.randint(-10, 10)
            words = rng.choice(TEST_PROMPTS).split()
            if len(words) > prompt_length:
                words = words[:prompt_length]
            else:
                while len(words) < prompt_length:
                    words.append(rng.choice(["the", "and", "or", "but", "in", "on", "at"]))
            requests.append(DemoRequest(f"coalesce_{i:03d}", " ".join(words), rng.randint(20, 60), 5))
        return requests

    def _generate_high_priority_requests(self, count: int) -> list[DemoRequest]:
        rng = self.random
        return [
            DemoRequest(f"latency_{i:03d}", rng.choice(TEST_PROMPTS), rng.randint(5, 30), rng.randint(8, 10))
            for i in range(count)
        ]

    def _generate_throughput_requests(self, count: int) -> list[DemoRequest]:
        rng = self.random
        return [
            DemoRequest(f"throughput_{i:03d}", rng.choice(TEST_PROMPTS), rng.randint(30, 80), rng.randint(1, 7))
            for i in range(count)
        ]

    def show_final_stats(self) -> None:
        self.log("\nFinal Statistics\n" + "=" * 50)
        stats = self.final_stats = self.scheduler.get_stats()
        self.log(f"Total Requests Processed: {stats['total_requests']}")
        self.log(f"Completed Requests: {stats['completed_requests']}")
        self.log(f"Average Wait Time: {stats['avg_wait_time']:.3f}s")
        self.log(f"Average Processing Time: {stats['avg_processing_time']:.3f}s")
        batching_stats = self.scheduler.get_batching_stats()
        if batching_stats:
            self.log(f"Average Batch Size: {batching_stats['avg_batch_size']:.2f}")
            self.log(f"Average Throughput: {batching_stats['avg_throughput']:.2f} req/s")
            self.log(f"Average Latency: {batching_stats['avg_latency']:.3f}s")
            self.log(f"Average GPU Utilization: {batching_stats['avg_gpu_utilization']:.2f}")


if __name__ == "__main__":
    scale = float(sys.argv[1]) if len(sys.argv) > 1 else 0.1
    seed = int(sys.argv[2]) if len(sys.argv) > 2 else 0
    asyncio.run(DynamicBatchingDemo(scale, seed).run_demo())
