"""`run --target URL`: the benchmark session against a server, one result file per trial, in the same schema
as an in-process run (`run.engine = "remote"`).

What the result says about the server comes from the server: `model` is its model card's metadata (for
`inferneo-bench serve`: the engine's model info) or, for other servers, the served model's name and
`max_model_len`; `strategy.name` is the strategy `serve` reports, else the card's `owned_by` (e.g. "vllm",
"sglang"), else "remote"; `environment` is this client machine's, with the target (no credentials), the
probe's findings and the server's own environment when it reports one. The client sees no engine steps and no
GPU: `steps` is empty and `telemetry` says why.
"""

from __future__ import annotations

import asyncio
import shlex
from datetime import datetime, timezone
from typing import Any

from inferneo_bench import results
from inferneo_bench.errors import UserError


def redact_command(command: str) -> str:
    """run.command without credentials: header values and URL user:password@ / query are removed."""
    from inferneo_bench.client.target import redact_url

    try:
        argv = shlex.split(command)
    except ValueError:
        return command
    out: list[str] = []
    redact_next: str | None = None
    for arg in argv:
        if redact_next == "--header":
            out.append(f"{arg.partition(':')[0]}:REDACTED")
        elif redact_next == "--target":
            out.append(redact_url(arg))
        elif arg.startswith("--header="):
            out.append(f"--header={arg[9:].partition(':')[0]}:REDACTED")
        elif arg.startswith("--target="):
            out.append(f"--target={redact_url(arg[9:])}")
        else:
            out.append(arg)
        redact_next = arg if arg in ("--header", "--target") else None
    return shlex.join(out)


def _model_info(info: Any) -> dict[str, Any]:
    meta = info.metadata
    model = dict(meta["model"]) if isinstance(meta.get("model"), dict) else {"name": info.model_id}
    model.setdefault("device_type", None)
    model["served_model"] = info.model_id
    model["served_by"] = info.card.get("owned_by")
    if info.max_model_len is not None:
        model.setdefault("max_model_len", info.max_model_len)
    return model


def _strategy_info(info: Any) -> dict[str, Any]:
    meta = info.metadata
    name = meta.get("strategy") or info.card.get("owned_by") or "remote"
    config = meta.get("scheduler_config") if isinstance(meta.get("scheduler_config"), dict) else {}
    return {"name": str(name), "config": config, "stats": {}}


def remote_lines(outcomes: list[Any]) -> list[str]:
    """What a remote run adds below the summary table: serving overhead, client load, token accounting."""
    lines = []
    for o in outcomes:
        r = o.result
        if r.run.engine != "remote":
            continue
        s = r.summary

        def ms(key: str, s: dict[str, Any] = s) -> str:
            return "-" if s.get(key) is None else f"{s[key]:.2f} ms"

        cpu = s.get("client_cpu_frac")
        overhead = (
            f"TTFT overhead over the server's engine-side TTFT: p50 {ms('ttft_overhead_p50_ms')}, "
            f"p99 {ms('ttft_overhead_p99_ms')}, min {ms('ttft_overhead_min_ms')}"
            if s.get("ttft_overhead_p50_ms") is not None
            else "the server reports no engine-side TTFT (no overhead figure)"
        )
        lines.append(
            f"{r.strategy['name']} @ {r.environment.get('target', {}).get('url')}: {overhead}; client CPU "
            f"{'-' if cpu is None else f'{cpu:.0%}'} of a core; arrival lag p99 {ms('arrival_lag_p99_ms')}; "
            f"{s.get('mean_tokens_per_chunk') or 0:.2f} tokens/chunk; {s.get('usage_mismatches', 0)} usage mismatches"
        )
    return lines


def run_remote_session(options: Any, console: Any = None) -> tuple[list[Any], bool]:
    """Every trial of a remote session; Ctrl-C saves the trial in progress (interrupted) and stops."""
    from inferneo_bench.client.probe import probe
    from inferneo_bench.client.remote import RemoteOptions, replay_remote
    from inferneo_bench.client.target import parse_target
    from inferneo_bench.environment import capture
    from inferneo_bench.metrics import summarize
    from inferneo_bench.runner.progress import ReplayProgress
    from inferneo_bench.runner.session import TrialOutcome, load_session_workload, new_run_id, write_requests_csv
    from inferneo_bench.runner.validity import judge

    if options.max_concurrency is not None and options.max_concurrency < 1:
        raise UserError(f"--max-concurrency {options.max_concurrency}: must be >= 1")
    target = parse_target(options.target, options.api, options.served_model, options.headers, options.api_key_env)
    info = asyncio.run(probe(target))
    max_model_len = options.max_model_len or info.max_model_len
    if max_model_len is None:  # the server did not say: it judges each request itself (HTTP 400 -> rejected)
        max_model_len = 2**62
    workload, context = load_session_workload(options, max_model_len)
    environment = capture()
    environment["target"] = {**target.public(), "probe": info.features()}
    if isinstance(info.metadata.get("environment"), dict):
        environment["server"] = info.metadata["environment"]
    run_id = options.run_id or new_run_id()
    strategy = _strategy_info(info)
    label = options.label or "remote"
    seed = options.seed if options.seed is not None else int(workload.replay.get("seed") or 0)
    remote_options = RemoteOptions(
        options.max_concurrency,
        options.request_timeout_s,
        options.warmup,
        seed,
        max_model_len=options.max_model_len or info.max_model_len,
    )
    outcomes: list[Any] = []
    trials: list[int | None] = [None] if options.repeat == 1 else list(range(1, options.repeat + 1))
    for trial in trials:
        title = f"{strategy['name']} @ {target.public()['url']}" + ("" if trial is None else f" trial {trial}")
        started_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
        with ReplayProgress(console, title, len(workload.requests)) as progress:
            outcome, server_lost = replay_remote(
                workload.requests, target, info, remote_options, on_progress=progress.update
            )
        telemetry = {
            "available": False,
            "reason": "remote target: the client cannot read the server's GPU; scrape the server's /metrics",
            "samples": [],
            "harness": outcome.harness,
        }
        summary = summarize(outcome.requests, outcome.steps, telemetry, options.slo)
        status = "interrupted" if outcome.interrupted else ("failed" if server_lost else "completed")
        run = results.RunInfo(
            id=run_id,
            started_at=started_at,
            finished_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
            command=redact_command(options.command),
            seed=seed,
            engine="remote",
            status=status,
            validity=judge(summary, status, options.validity),
            trial=trial,
            label=label,
        )
        result = results.RunResult(
            run=run,
            environment=environment,
            model=_model_info(info),
            workload=workload.info(context),
            strategy=strategy,
            summary=summary,
            requests=outcome.requests,
            steps=[],
            telemetry=telemetry,
        )
        name = strategy["name"] if trial is None else f"{strategy['name']}-trial{trial}"
        path = results.save(result, options.out / run_id / name)
        if options.csv:
            write_requests_csv(result, path / "requests.csv")
        outcomes.append(TrialOutcome(path, results.release_records(result)))
        if status != "completed":
            return outcomes, status == "interrupted"
    return outcomes, False
