"""The serving path's own costs, measured (run by hand; not collected by pytest):

1. The client's ceiling: requests/s and SSE chunks/s that `run --target`'s client (one event loop, httpx,
   pooled connections) drives against a server that answers instantly (a uvicorn app in its own process that
   writes a precomputed stream of max_tokens chunks per request), with every request sent at t = 0 and
   --max-concurrency 64. The client's CPU share shows who was the bottleneck (~100%: the client); the
   figures per client CPU-second are the ceiling of one core given to the client, whatever the machine's load.
2. The serving overhead: one workload through `inferneo-bench serve` (tiny model, its own process) +
   `run --target`, beside the in-process `run` of the same workload and strategy (alternated, medians):
   TTFT, TPOT, ITL and output tok/s side by side, and the remote run's TTFT overhead over the server's
   engine-side TTFT (HTTP, tokenisation, SSE framing: the robust figure on a loaded machine).

    python tests/benchmarks/bench_serving.py [--requests 800] [--workload default] [--num-requests 40] [--pairs 2]

Timings on a shared machine are noisy: the load average is printed before and after; compare ratios within
one run.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))  # run from a checkout without installing


def instant_server(port: int) -> None:
    """An OpenAI-compatible stub that answers at once: GET /v1/models, /health, POST /v1/completions."""
    import uvicorn
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    cache: dict[int, bytes] = {}

    def body(n: int) -> bytes:
        if n not in cache:
            parts = []
            for i in range(1, n + 1):
                choice = {"index": 0, "text": "x", "logprobs": None, "finish_reason": "length" if i == n else None}
                chunk = {"id": "c", "object": "text_completion", "model": "instant", "choices": [choice],
                         "usage": {"prompt_tokens": 8, "completion_tokens": i, "total_tokens": 8 + i}}  # fmt: skip
                parts.append(f"data: {json.dumps(chunk)}\n\n")
            usage = {"prompt_tokens": 8, "completion_tokens": n, "total_tokens": 8 + n}
            parts.append(f"data: {json.dumps({'id': 'c', 'choices': [], 'usage': usage})}\n\ndata: [DONE]\n\n")
            cache[n] = "".join(parts).encode()
        return cache[n]

    async def models(request):
        return JSONResponse({"object": "list", "data": [{"id": "instant", "object": "model", "owned_by": "instant"}]})

    async def health(request):
        return JSONResponse({})

    async def completions(request):
        payload = json.loads(await request.body())
        return Response(body(int(payload.get("max_tokens") or 16)), media_type="text/event-stream")

    app = Starlette(routes=[Route("/v1/models", models), Route("/health", health),
                            Route("/v1/completions", completions, methods=["POST"])])  # fmt: skip
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(url: str, proc: subprocess.Popen, timeout_s: float = 120.0) -> None:
    import httpx

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited with {proc.returncode}")
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise SystemExit("server did not start")


def load() -> str:
    return f"load average {os.getloadavg()[0]:.2f} (1 min), {os.cpu_count()} cores"


def client_ceiling(n_requests: int, tokens: int, concurrency: int) -> dict:
    import asyncio

    from inferneo_bench.client.probe import probe
    from inferneo_bench.client.remote import RemoteOptions, replay_remote
    from inferneo_bench.client.target import parse_target
    from inferneo_bench.metrics import summarize
    from inferneo_bench.workload.spec import RequestSpec

    port = free_port()
    proc = subprocess.Popen([sys.executable, __file__, "--instant-server", str(port)])
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, proc)
        target = parse_target(url)
        info = asyncio.run(probe(target))
        specs = [RequestSpec(f"r{i}", 0.0, 8, tokens) for i in range(n_requests)]
        t = time.perf_counter()
        outcome, _ = replay_remote(specs, target, info, RemoteOptions(max_concurrency=concurrency))
        wall = time.perf_counter() - t
    finally:
        proc.terminate()
        proc.wait(10)
    s = summarize(outcome.requests, [], {"harness": outcome.harness})
    chunks = sum(len(r.chunk_tokens) for r in outcome.requests)
    return {
        "requests": n_requests,
        "tokens": tokens,
        "completed": s["completed"],
        "req_per_s": s["completed"] / wall,
        "chunks_per_s": chunks / wall,
        "client_cpu": s["client_cpu_frac"],
        "wall_s": wall,
    }


def serving_overhead(workload: str, num_requests: int, strategy: str, time_scale: float, pairs: int) -> None:
    """In-process and remote runs alternated A B B A ..., so a drift in machine load hits both; medians shown."""
    import statistics

    from inferneo_bench import results

    out = Path(tempfile.mkdtemp(prefix="bench-serving-"))
    common = ["--workload", workload, "--num-requests", str(num_requests), "--time-scale", str(time_scale),
              "--out", str(out), "--quiet", "--min-duration", "0", "--min-requests", "1"]  # fmt: skip
    cli = [sys.executable, "-m", "inferneo_bench"]
    port = free_port()
    server = subprocess.Popen([*cli, "serve", "--model", "tiny", "--strategy", strategy, "--port", str(port)],
                              stdout=subprocess.DEVNULL)  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    runs: dict[str, list] = {"local": [], "remote": []}
    try:
        wait_healthy(url, server)
        order = [("local", "remote") if i % 2 == 0 else ("remote", "local") for i in range(pairs)]
        for i, kind in enumerate(k for pair in order for k in pair):
            where = ["--strategy", strategy, "--model", "tiny"] if kind == "local" else ["--target", url]
            done = subprocess.run([*cli, "run", *where, "--run-id", f"{kind}{i}", *common], check=True,
                                  capture_output=True, text=True)  # fmt: skip
            runs[kind].append(results.load(done.stdout.split()[0]).summary)
    finally:
        server.terminate()
        server.wait(30)
    print(f"\n2. serving overhead: {workload}, {num_requests} requests, time scale {time_scale}, {strategy}, tiny "
          f"model on the CPU; {pairs} runs each, alternated; medians")  # fmt: skip
    rows = [
        ("completed", "completed", "{:.0f}"),
        ("TTFT p50 (ms)", "p50_ttft_ms", "{:.1f}"),
        ("TTFT p99 (ms)", "p99_ttft_ms", "{:.1f}"),
        ("TPOT p50 (ms)", "p50_tpot_ms", "{:.2f}"),
        ("ITL p50 (ms)", "p50_itl_ms", "{:.2f}"),
        ("output tok/s", "output_throughput", "{:.1f}"),
        ("arrival lag p99 (ms)", "arrival_lag_p99_ms", "{:.2f}"),
    ]

    def med(kind: str, key: str) -> float | None:
        values = [s[key] for s in runs[kind] if s.get(key) is not None]
        return statistics.median(values) if values else None

    print(f"   {'metric':<24}{'in-process':>14}{'serve + --target':>18}{'ratio':>9}   each run (in-process | remote)")
    for label, key, fmt in rows:
        x, y = med("local", key), med("remote", key)
        ratio = f"{y / x:.2f}x" if x and y is not None else "-"
        each = " ".join(fmt.format(s[key]) for s in runs["local"]) + " | "
        each += " ".join(fmt.format(s[key]) for s in runs["remote"])
        xs, ys = (fmt.format(v) if v is not None else "-" for v in (x, y))
        print(f"   {label:<24}{xs:>14}{ys:>18}{ratio:>9}   {each}")
    p50, p99, low = (med("remote", f"ttft_overhead_{k}_ms") for k in ("p50", "p99", "min"))
    print(
        f"   remote: TTFT overhead over the server's engine-side TTFT p50 {p50:.2f} ms, p99 {p99:.2f} ms, min "
        f"{low:.2f} ms; client CPU {med('remote', 'client_cpu_frac'):.1%} of a core; results in {out}"
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--instant-server", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--requests", type=int, default=800, help="client ceiling: requests per configuration")
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--workload", default="default")
    ap.add_argument("--num-requests", type=int, default=40)
    ap.add_argument("--time-scale", type=float, default=2.0)
    ap.add_argument("--strategy", default="continuous")
    ap.add_argument("--pairs", type=int, default=2, help="serving overhead: runs of each kind")
    args = ap.parse_args()
    if args.instant_server:
        instant_server(args.instant_server)
        return
    print(f"bench_serving: {load()}")
    print(f"1. client ceiling against an instant server (its own process), all requests at t=0, "
          f"--max-concurrency {args.concurrency}")  # fmt: skip
    print(f"   {'requests':>8} {'tokens/req':>10} {'req/s':>9} {'chunks/s':>10} {'client CPU':>11} {'wall s':>7}"
          f"   per client CPU-second: {'req':>6} {'chunks':>8}")  # fmt: skip
    for n, tokens in ((args.requests, 16), (max(1, args.requests // 8), 512)):
        r = client_ceiling(n, tokens, args.concurrency)
        assert r["completed"] == n, r
        cpu_s = r["client_cpu"] * r["wall_s"]
        print(f"   {n:>8} {tokens:>10} {r['req_per_s']:>9.0f} {r['chunks_per_s']:>10.0f} {r['client_cpu']:>11.0%} "
              f"{r['wall_s']:>7.2f}   {'':>22}{n / cpu_s:>6.0f} {n * tokens / cpu_s:>8.0f}")  # fmt: skip
    serving_overhead(args.workload, args.num_requests, args.strategy, args.time_scale, args.pairs)
    print(f"bench_serving done: {load()}")


if __name__ == "__main__":
    main()
