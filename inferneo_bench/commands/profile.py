"""`inferneo-bench profile`: measure an engine's step times over a grid (for the simulator), or check how
well a profile predicts held-out real steps (`--validate`)."""

from __future__ import annotations

from pathlib import Path

import typer

from inferneo_bench.errors import UserError

EPILOG = """\
[bold]Example[/]: profile the tiny model on this CPU (small grid), then run the simulator on that profile:

  inferneo-bench profile --model tiny --device cpu --quick
  inferneo-bench run --engine sim --profile profiles/tiny-cpu-local.json --strategy all

Without --out the file is profiles/<model>-<device>-local.json (never a shipped profile's name; an existing \
file is kept and a numbered name used).
"""


def profile(
    model: str = typer.Option(
        "tiny", "--model", "-m", metavar="PRESET|DIR", help="Model preset or local Hugging Face checkpoint folder."
    ),
    device: str = typer.Option("auto", "--device", "-d", metavar="DEVICE", help="auto, cpu or cuda[:N]."),
    dtype: str | None = typer.Option(
        None, "--dtype", metavar="DTYPE", help="float32, bfloat16 or float16 (default per device)."
    ),
    out: Path | None = typer.Option(
        None, "--out", "-o", metavar="FILE", help="Profile file (default: profiles/<model>-<device>-local.json)."
    ),
    quick: bool = typer.Option(False, "--quick", help="A small grid with fewer repeats (for CI)."),
    max_num_seqs: int | None = typer.Option(
        None,
        "--max-num-seqs",
        metavar="N",
        help="KV slots of the profiled engine (default: enough for every decode pool).",
    ),
    max_model_len: int | None = typer.Option(
        None, "--max-model-len", metavar="TOKENS", help="Context length (default: model's)."
    ),
    validate: str | None = typer.Option(
        None,
        "--validate",
        metavar="NAME|FILE",
        help="A profile file or shipped name (tiny-cpu): instead of profiling, measure held-out random steps "
        "on the real engine and print the error of the profile's predictions.",
    ),
    steps: int = typer.Option(40, "--steps", metavar="N", help="Held-out steps measured by --validate."),
    json_out: Path | None = typer.Option(
        None,
        "--json",
        metavar="FILE",
        help="With --validate: also write the errors (overall, per kind, per step) to this JSON file.",
    ),
    seed: int = typer.Option(
        0, "--seed", metavar="N", help="Seed of the model weights and of --validate's random steps."
    ),
    threads: int | None = typer.Option(
        None, "--threads", metavar="N", help="torch CPU threads (default: torch's; --validate: the profile's)."
    ),
) -> None:
    """Profile the real engine's step times (prefill, decode, mixed) for the simulator, or --validate a profile."""
    if validate is not None:
        _validate(validate, steps, seed, threads, json_out)
        return
    if json_out is not None:
        raise UserError("--json goes with --validate (the profile itself is written to --out)")
    _profile(model, device, dtype, out, quick, max_num_seqs, max_model_len, seed, threads)


def _engine(model, device, dtype, max_num_seqs, max_model_len, seed, threads=None):
    if threads is not None:
        if threads < 1:
            raise UserError(f"--threads {threads}: must be >= 1")
        import torch

        torch.set_num_threads(threads)
    try:
        from inferneo_bench.engine import load_engine
    except ImportError as exc:  # pragma: no cover - the torch engine ships with the package
        raise UserError(f"the torch engine is not available ({exc}); cannot profile") from None
    engine = load_engine(
        model, device=device, dtype=dtype, max_num_seqs=max_num_seqs, max_model_len=max_model_len, seed=seed
    )
    if hasattr(engine, "warmup"):
        engine.warmup(max_num_seqs)
    return engine


def _profile(model, device, dtype, out, quick, max_num_seqs, max_model_len, seed, threads) -> None:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from inferneo_bench.engine.profile import (
        FULL_GRID,
        QUICK_GRID,
        decode_bandwidth,
        measure_copy_bandwidth,
        measure_swap_bandwidth,
        run_profile,
        save_profile,
        slots_needed,
    )
    from inferneo_bench.environment import capture

    console = Console()
    grid = QUICK_GRID if quick else FULL_GRID
    engine = _engine(model, device, dtype, max_num_seqs or slots_needed(grid), max_model_len, seed, threads)
    info = engine.model_info()
    dev = str(getattr(engine, "device", info.get("device_type", "cpu")))
    console.print(f"profiling [bold]{info.get('name', model)}[/] on {info.get('device_name')} ({info.get('dtype')})")
    copy_bw = measure_copy_bandwidth(dev)
    swap_bw = measure_swap_bandwidth(dev)
    console.print(f"peak copy bandwidth {copy_bw:.1f} GB/s, swap bandwidth {swap_bw:.1f} GB/s")
    with Progress(
        TextColumn("{task.description:<36}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console
    ) as bar:
        task = bar.add_task("prefilling decode pools", total=None)

        def progress(point, done, total) -> None:
            bar.update(task, description=point.describe() if done < total else "done", completed=done, total=total)

        prof = run_profile(
            engine,
            model=model,
            device_type=info.get("device_type", dev.split(":")[0]),
            device_name=info.get("device_name", dev),
            dtype=str(info.get("dtype", dtype)),
            grid=grid,
            copy_bandwidth_gbs=copy_bw,
            swap_bandwidth_gbs=swap_bw,
            environment=capture(),
            progress=progress,
        )
    engine.close()
    from rich.table import Table

    table = Table(title="decode: achieved bandwidth (weights + KV read per step)")
    for col in ("batch", "context", "step ms", "tokens/s", "GB/s", "MBU"):
        table.add_column(col, justify="right")
    for b, c, t, gbs, mbu in decode_bandwidth(prof):
        table.add_row(
            str(b), str(c), f"{t * 1e3:.3f}", f"{b / t:,.0f}", f"{gbs:.2f}", "n/a" if mbu is None else f"{mbu:.1%}"
        )
    console.print(table)
    path = out or default_profile_path(model, prof.device_type)
    save_profile(prof, path)
    console.print(f"profile written to {path} ({prof.profile_seconds:.0f} s)")
    console.print(f"next: inferneo-bench run --engine sim --profile {path} --strategy all", style="bold")


def default_profile_path(model: str, device_type: str, folder: Path = Path("profiles")) -> Path:
    """profiles/<model>-<device>-local.json: the `-local` suffix keeps it from shadowing a shipped profile
    (tiny-cpu), and an existing file is never overwritten (-local-2, -local-3, ... instead)."""
    from inferneo_bench.engine.profile import shipped_profiles

    stem = f"{Path(model).name if Path(model).is_dir() else model.replace('/', '_')}-{device_type}-local"
    shipped = set(shipped_profiles())
    candidate, n = folder / f"{stem}.json", 1
    while candidate.exists() or candidate.stem in shipped:
        n += 1
        candidate = folder / f"{stem}-{n}.json"
    return candidate


def _validate(path: str, steps: int, seed: int, threads: int | None, json_out: Path | None = None) -> None:
    import statistics

    import numpy as np
    from rich.console import Console
    from rich.progress import Progress
    from rich.table import Table

    from inferneo_bench.engine.profile import load_profile, validate_profile

    prof = load_profile(path)
    if threads is None and prof.device_type == "cpu":
        threads = (prof.environment.get("torch") or {}).get("num_threads")
    engine = _engine(prof.model, prof.device_type, prof.dtype, prof.num_slots, prof.max_model_len, seed, threads)
    console = Console()
    name = engine.model_info().get("device_name")
    if name != prof.device_name:
        console.print(f"[yellow]warning:[/] profile made on {prof.device_name}, validating on {name}")
    with Progress(console=console) as bar:
        task = bar.add_task("held-out steps", total=steps)
        rows = validate_profile(engine, prof, n=steps, seed=seed + 1234,
                                progress=lambda i, n: bar.update(task, completed=i))  # fmt: skip
    engine.close()
    table = Table(title=f"held-out steps: {prof.model} on {name}")
    for col in ("kind", "shape", "measured ms", "predicted ms", "error"):
        table.add_column(col, justify="right" if col != "shape" else "left")
    for r in rows:
        table.add_row(r.kind, r.shape, f"{r.measured_s * 1e3:.3f}", f"{r.predicted_s * 1e3:.3f}", f"{r.ape:.1%}")
    console.print(table)
    for kind in dict.fromkeys(r.kind for r in rows):
        apes = [r.ape for r in rows if r.kind == kind]
        console.print(f"{kind:>17}: median APE {statistics.median(apes):.1%} over {len(apes)} steps")
    apes = np.array([r.ape for r in rows])
    console.print(
        f"absolute percentage error of predicted step times over {len(rows)} held-out steps: "
        f"median {np.percentile(apes, 50):.1%}, p90 {np.percentile(apes, 90):.1%} "
        "(measured: median of the passes; predicted: from the profile's medians)"
    )
    mins = np.array([r.ape_min for r in rows])
    console.print(
        f"same, fastest pass vs the profile's minima (insensitive to load drift between profiling and now): "
        f"median {np.percentile(mins, 50):.1%}, p90 {np.percentile(mins, 90):.1%}"
    )
    if json_out is not None:
        import dataclasses
        import json

        from inferneo_bench.fileio import atomic_writer

        report = {
            "profile": str(path),
            "model": prof.model,
            "profile_device_name": prof.device_name,
            "device_name": name,
            "steps": len(rows),
            "median_ape": float(np.percentile(apes, 50)),
            "p90_ape": float(np.percentile(apes, 90)),
            "median_ape_min": float(np.percentile(mins, 50)),
            "per_kind": {
                kind: statistics.median(r.ape for r in rows if r.kind == kind)
                for kind in dict.fromkeys(r.kind for r in rows)
            },
            "rows": [{**dataclasses.asdict(r), "ape": r.ape} for r in rows],
        }
        with atomic_writer(json_out) as fh:
            json.dump(report, fh, indent=1)
            fh.write("\n")
        console.print(f"errors written to {json_out}")


def register(app: typer.Typer) -> None:
    app.command(epilog=EPILOG)(profile)
