"""Run a sweep: for each strategy (and repeat), the saturation point and the capacity search, each point one
replay through the normal run path (runner.session.run_trial), saved as a normal result file:

    OUT/<run-id>/<strategy>/saturation[-trial<k>].json
    OUT/<run-id>/<strategy>/rate-<R>[-trial<k>].json

The engine is built and warmed up once; the workload is loaded once and rescaled per point
(sweep/rescale.py). Only a `Point` (a few dozen figures) is kept of each saved result.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from inferneo_bench.errors import UserError
from inferneo_bench.sweep.points import SATURATION, Point, point_file
from inferneo_bench.sweep.rescale import all_at_once, at_rate, base_rate
from inferneo_bench.sweep.search import SearchSettings, quantize, search


@dataclass
class SweepOptions:
    run: Any  # runner.session.RunOptions: strategies, workload, engine, slo, repeat (= sweep repeats), out, ...
    rates: list[float] | None = None  # None: the automatic search
    settings: SearchSettings = field(default_factory=SearchSettings)
    jobs: int = 1  # simulated engine only: strategies swept in parallel processes


@dataclass
class SweepOutcome:
    folder: Path
    points: list[Point]
    interrupted: bool
    notes: list[str]


class _Interrupted(Exception):
    pass


def parse_rates(text: str | None) -> list[float] | None:
    """'auto' (or nothing) -> None; 'R1,R2,..' -> sorted rates in req/s (each > 0)."""
    if text is None or text.strip().lower() == "auto":
        return None
    rates = []
    for part in text.split(","):
        try:
            rate = float(part)
        except ValueError:
            raise UserError(
                f"--rates {text!r}: {part.strip()!r} is not a number; give R1,R2,.. in req/s, or auto"
            ) from None
        if not rate > 0 or rate == float("inf"):
            raise UserError(f"--rates {text!r}: every rate must be a finite number > 0 req/s, got {part.strip()}")
        rates.append(quantize(rate))
    return sorted(set(rates))


def check_settings(settings: SearchSettings) -> None:
    if not 0 < settings.attainment <= 1:
        raise UserError(f"--attainment {settings.attainment:g}: must be a fraction in (0, 1], e.g. 0.9")
    if not 0 < settings.precision < 1:
        raise UserError(f"--precision {settings.precision:g}: must be a fraction in (0, 1), e.g. 0.02")
    if settings.max_points < 3:
        raise UserError(f"--max-points {settings.max_points}: must be at least 3 (saturation, coarse, one more)")


def run_sweep(options: SweepOptions, console: Any = None) -> SweepOutcome:
    """Every strategy x repeat of the sweep. Ctrl-C keeps the point in progress (status interrupted) and
    stops; the saved points still make a (partial) report. With `jobs` > 1 (simulated engine only: on a real
    engine parallel points would measure each other) the strategies run in that many processes."""
    if options.jobs > 1 and len(options.run.strategies) > 1:
        return _run_parallel(options, console)
    return _run_serial(options, console)


def _run_parallel(options: SweepOptions, console: Any) -> SweepOutcome:
    """One process per strategy (at most `jobs` at once), each a serial sweep of its strategy into the same
    folder (which this process owns: created, locked, cleared with --overwrite); the points are then read back
    from the saved files, as `sweep --report` would."""
    import dataclasses
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    from inferneo_bench.runner.rundir import RunDir
    from inferneo_bench.runner.session import check_options, new_run_id
    from inferneo_bench.sweep.report import load_points

    if options.run.engine != "sim":
        raise UserError("--jobs N runs points in parallel, which only the simulated engine (--engine sim) allows")
    _check(options)
    check_options(options.run)
    run = dataclasses.replace(options.run, run_id=options.run.run_id or new_run_id())
    jobs = [dataclasses.replace(options, run=dataclasses.replace(run, strategies=[s]), jobs=1) for s in run.strategies]
    notes: list[str] = []
    interrupted = False
    with RunDir(run.out, run.run_id, run.overwrite) as rundir:
        folder = rundir.open()
        context = multiprocessing.get_context("spawn")  # no fork: torch and threads in the parent
        with ProcessPoolExecutor(max_workers=options.jobs, mp_context=context) as pool:
            futures = [pool.submit(_serial_in_worker, job) for job in jobs]
            try:
                for strategy, future in zip(run.strategies, futures, strict=True):
                    outcome = future.result()
                    interrupted |= outcome.interrupted
                    notes += [n for n in outcome.notes if n not in notes]
                    if console is not None:
                        console.print(f"{strategy}: {len(outcome.points)} points")
            except KeyboardInterrupt:
                interrupted = True
                for future in futures:
                    future.cancel()
        points, _ = load_points([folder])
    return SweepOutcome(folder, points, interrupted, notes)


def _serial_in_worker(options: SweepOptions) -> SweepOutcome:
    """A worker of --jobs: its strategy's points into the folder the parent owns."""
    return _run_serial(options, None, own_folder=False)


def _check(options: SweepOptions) -> None:
    if not options.run.slo:
        raise UserError("sweep needs --slo, e.g. --slo ttft_ms=2000,tpot_ms=100: capacity is the load that meets it")
    check_settings(options.settings)


def _run_serial(options: SweepOptions, console: Any = None, own_folder: bool = True) -> SweepOutcome:
    """The sweep in this process, with the run path's machinery: the run folder (created, locked, cleared with
    --overwrite), signals (the first Ctrl-C or SIGTERM stops the point in progress between steps; it is saved
    with status interrupted and the sweep ends), one engine built and warmed up once."""
    from inferneo_bench.environment import capture
    from inferneo_bench.runner.progress import ReplayProgress
    from inferneo_bench.runner.rundir import RunDir
    from inferneo_bench.runner.session import (
        build_engine,
        check_options,
        load_session_workload,
        new_run_id,
        run_trial,
        scheduler_config,
        warm_up,
    )
    from inferneo_bench.runner.signals import Interrupts

    run = options.run
    _check(options)
    check_options(run)
    settings = options.settings
    run_id = run.run_id or new_run_id()
    folder = run.out / run_id
    points: list[Point] = []
    notes: list[str] = []
    interrupts = Interrupts()
    with interrupts.installed(), RunDir(run.out, run_id, run.overwrite) as rundir:
        try:  # until the first point starts, a stop signal raises KeyboardInterrupt: nothing measured
            if own_folder:
                rundir.open()
            engine = build_engine(run, scheduler_config(run.config, {}).max_num_seqs)
        except KeyboardInterrupt:
            return SweepOutcome(folder, points, True, notes)
        try:
            workload, context = load_session_workload(run, engine.max_model_len)
            rate0 = base_rate(workload)
            notes += _rejection_note(context, len(workload.requests), settings.attainment)
            warm_up(engine)
            environment = capture(torch_runtime=run.engine == "torch")
        except KeyboardInterrupt:
            engine.close()
            return SweepOutcome(folder, points, True, notes)
        except BaseException:
            engine.close()
            raise
        base_hash = workload.content_hash
        repeats: list[int | None] = [None] if run.repeat == 1 else list(range(1, run.repeat + 1))

        def measure(strategy: str, repeat: int | None, rate: float | None, phase: str, index: int) -> Point:
            if interrupts.requested:
                raise _Interrupted
            replayed = all_at_once(workload) if rate is None else at_rate(workload, rate)
            where = "all at once" if rate is None else f"{rate:g} req/s"
            title = f"{strategy} {where}" + (f" trial {repeat}" if repeat else "") + f" #{index}"
            sweep = {
                "id": run_id,
                "rate": rate,
                "phase": phase,
                "attainment_target": settings.attainment,
                "precision": settings.precision,
                "base_rate": rate0,
                "base_workload_hash": base_hash,
            }
            with ReplayProgress(console, title, len(replayed.requests)) as progress:
                outcome = run_trial(
                    options=run,
                    strategy=strategy,
                    trial=repeat,
                    run_id=run_id,
                    workload=replayed,
                    context=context,
                    engine=engine,
                    environment=environment,
                    on_progress=progress.update,
                    interrupts=interrupts,
                    on_replayed=progress.close,
                    name=f"{strategy}/{Path(point_file(rate, repeat)).stem}",
                    sweep=sweep,
                )
            point = Point.from_result(outcome.result, outcome.path)  # (the result's records are released)
            stopped = outcome.result.run.status == "interrupted"
            del outcome, replayed
            points.append(point)
            if stopped:
                raise _Interrupted
            return point

        def one(strategy: str, repeat: int | None) -> None:
            """Every point of one strategy and repeat: the given rates, or the saturation point and the search."""
            count = iter(range(1, 10**6))
            if options.rates is not None:
                for rate in options.rates:
                    measure(strategy, repeat, rate, "given", next(count))
                return
            ceiling = measure(strategy, repeat, None, SATURATION, next(count)).figures["request_throughput"]
            if not ceiling:
                notes.append(f"{strategy}: no request completed at the saturation point; nothing to search")
                return
            search(lambda rate, phase: measure(strategy, repeat, rate, phase, next(count)).passed, ceiling, settings)

        try:
            with interrupts.deferred():  # from here on a signal only asks the replay loop to stop
                for strategy in run.strategies:
                    for repeat in repeats:
                        one(strategy, repeat)
        except _Interrupted:
            return SweepOutcome(folder, points, True, notes)
        finally:
            engine.close()
        return SweepOutcome(folder, points, interrupts.requested, notes)


def _rejection_note(context: Any, total: int, target: float) -> list[str]:
    """Requests over the model context are rejected at every rate and count as misses: say what that costs,
    and refuse (before any measurement) when they alone keep attainment under the target."""
    rejected = len(context.rejected) if context is not None else 0
    if not rejected or not total:
        return []
    best = 1 - rejected / total
    share, limit = rejected / total, context.max_model_len
    what = f"{rejected} of {total} requests ({share:.1%}) exceed the model context ({limit} tokens)"
    if best < target - 1e-12:
        raise UserError(
            f"{what}: rejected at every rate, they keep SLO attainment at or under {best:.1%}, below the "
            f"{target:.0%} target; use --context-policy truncate (or scale), a model with a longer context, or "
            "a lower --attainment"
        )
    return [
        f"{what}: rejected at every rate and counted as SLO misses, they cap attainment at {best:.1%} (target "
        f"{target:.0%}); --context-policy truncate keeps them"
    ]
