"""Small result files for the gate's tests: only the fields the gate reads matter."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from inferneo_bench import results
from inferneo_bench.results import RunInfo, RunResult


def make_run(
    strategy: str = "adaptive",
    summary: dict[str, Any] | None = None,
    *,
    trial: int | None = None,
    engine: str = "torch",
    content_hash: str = "wl-hash",
    model: str = "tiny",
    device_type: str = "cuda",
    label: str | None = None,
    config: dict[str, Any] | None = None,
    status: str = "completed",
) -> RunResult:
    return RunResult(
        run=RunInfo(
            id="run",
            started_at="2026-11-27T00:00:00+00:00",
            finished_at="2026-11-27T00:01:00+00:00",
            command="inferneo-bench run",
            seed=0,
            engine=engine,
            status=status,
            validity={"valid": True, "failed": []},
            trial=trial,
            label=label,
        ),
        environment={},
        model={"name": model, "device_type": device_type, "device_name": "GPU"},
        workload={"name": "chat", "content_hash": content_hash},
        strategy={"name": strategy, "config": config or {}},
        summary=summary or {},
    )


def summary(tput: float, ttft: float = 100.0, tpot: float = 20.0, goodput: float | None = None) -> dict[str, Any]:
    return {"output_throughput": tput, "p99_ttft_ms": ttft, "p99_tpot_ms": tpot, "request_goodput": goodput}


def write_trials(folder: Path, strategy: str, summaries: list[dict[str, Any]], **kw: Any) -> list[Path]:
    """results/<run>/<strategy>-trial<N>.json with run.trial set, one per summary."""
    return [
        results.save(make_run(strategy, s, trial=i, **kw), folder / f"{strategy}-trial{i}.json")
        for i, s in enumerate(summaries, start=1)
    ]


def write_single(folder: Path, strategy: str, s: dict[str, Any], **kw: Any) -> Path:
    """A deterministic single run: results/<run>/<strategy>.json, run.trial null."""
    kw.setdefault("engine", "sim")
    return results.save(make_run(strategy, s, **kw), folder / f"{strategy}.json")
