"""The GPU acceptance run (issue 16): every GPU figure of the project from one call of at most 9 minutes.

Run it through bench/gpu-acceptance.sh (it picks the Python that holds torch); docs/engine.md says how a GPU
session calls it through the device tool. Stages, in priority order, each with its own time budget, its own
log and its own outcome; a stage that fails or runs out of time never stops the next one:

  setup        Python, torch and the CUDA device found; carried wheels (bench/wheels/) installed beside the
               image's packages; every requirement of pyproject.toml checked; `env --json`; nvidia-smi (read only)
  cuda-tests   pytest on every test file that is skipped without CUDA (CUDA-graph decode, bf16, NVML)
  bench        tests/benchmarks/bench_engine.py: decode tokens/s, GB/s and MBU per batch
  profile      `inferneo-bench profile`: the step-time profile of the model, for the simulator
  validate     `inferneo-bench profile --validate`: that profile's error on held-out real steps
  run          `inferneo-bench run --strategy all` on a slice of azure-conv, with NVML telemetry
  sim-run      the same run on the simulator with the profile just made (how far the simulator is off)
  sweep        `inferneo-bench sweep`, when this checkout has it (detected, not assumed)
  serve        `inferneo-bench serve` + `run --target` on the run stage's workload, when both exist

The time is shared out in that order: a stage gets min(its budget, the time left before the deadline less a
reserve for the report). Everything lands under one work folder (logs/, machine.json, env.json, bench.json,
profile/, runs/, summary.json, summary.md); with $OUT (the device tool's folder) or --out, the report and
tarballs of the work folder are copied there (gpu_acceptance_report.package). The final table comes last.

`--dry-run` runs the same stages on the CPU with the tiny model and small sizes (2-3 minutes on a 2-core
machine), so a typo cannot waste the GPU call; tests/test_gpu_acceptance.py checks every command of both
plans against the real command-line parsers in seconds. Standard library only: the report is written even
when the setup stage fails.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TextIO

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gpu_acceptance_report import (  # noqa: E402
    build_summary,
    collect,
    mbu_headline,
    package,
    pct,
    read_json,
    read_results,
    render,
)

REPO = Path(__file__).resolve().parents[1]
WHEELS = REPO / "bench" / "wheels"
STAGES = ("setup", "cuda-tests", "bench", "profile", "validate", "run", "sim-run", "sweep", "serve")
REPORT_RESERVE_S = 25.0  # kept back for the report, the tarballs and the copy to $OUT
GPU_BUDGET_S = 510.0  # the device call gets timeout_s=540 (docs/engine.md): the script ends 30 s before
DRY_BUDGET_S = 170.0
STOP_MARK = "[gpu-acceptance] time budget reached"
WHEEL_PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64")


@dataclass
class Settings:
    """What the stages run; `for_mode` gives the GPU call's values and the CPU dry run's."""

    dry_run: bool
    model: str
    device: str
    budget_s: float
    threads: int | None  # torch CPU threads of every stage (dry run: 1, a shared machine)
    bench_batches: str
    bench_steps: int | None
    bench_ctx: int
    profile_quick: bool
    validate_steps: int
    workload: str = "azure-conv"
    run_trace_s: float = 180.0  # the first 3 minutes of the trace ...
    run_time_scale: float = 6.0  # ... replayed 6x faster (~26 req/s), so that six strategies fit the call
    run_request_timeout_s: float = 15.0  # a drowning strategy ends this long after its last arrival
    sweep_strategies: str = "continuous,fixed"
    sweep_rates: str = "8,16,32"
    sweep_requests: int = 150
    sweep_slo: str = "ttft_ms=1000,tpot_ms=100"
    serve_strategy: str = "continuous"
    budgets: dict[str, float] = field(default_factory=dict)

    @classmethod
    def for_mode(cls, dry_run: bool) -> Settings:
        if dry_run:
            return cls(
                dry_run=True, model="tiny", device="cpu", budget_s=DRY_BUDGET_S, threads=1, bench_batches="1,4",
                bench_steps=3, bench_ctx=64, profile_quick=True, validate_steps=8, run_trace_s=12.0,
                run_time_scale=4.0, run_request_timeout_s=4.0, sweep_rates="2,4", sweep_requests=16,
                sweep_slo="ttft_ms=2000,tpot_ms=200",
                budgets={"setup": 40, "cuda-tests": 40, "bench": 30, "profile": 60, "validate": 45, "run": 75,
                         "sim-run": 30, "sweep": 40, "serve": 50},
            )  # fmt: skip
        return cls(
            dry_run=False, model="llama-1b", device="cuda", budget_s=GPU_BUDGET_S, threads=None,
            bench_batches="1,8,64,256", bench_steps=None, bench_ctx=128, profile_quick=True, validate_steps=40,
            budgets={"setup": 60, "cuda-tests": 90, "bench": 90, "profile": 120, "validate": 90, "run": 300,
                     "sim-run": 45, "sweep": 120, "serve": 150},
        )  # fmt: skip


@dataclass(frozen=True)
class Paths:
    work: Path

    @property
    def logs(self) -> Path:
        return self.work / "logs"

    @property
    def site(self) -> Path:  # carried wheels are installed here, on PYTHONPATH, beside the image's packages
        return self.work / "_site"

    @property
    def bin(self) -> Path:  # an `inferneo-bench` wrapper, for anything that calls the CLI by name
        return self.work / "_bin"

    @property
    def profile(self) -> Path:
        return self.work / "profile" / "profile.json"

    @property
    def validate(self) -> Path:
        return self.work / "profile" / "validate.json"

    @property
    def bench(self) -> Path:
        return self.work / "bench.json"

    @property
    def runs(self) -> Path:
        return self.work / "runs"

    @property
    def sweep(self) -> Path:
        return self.work / "sweep"


# ---------------------------------------------------------------------------------------------------------
# the commands (pure functions of the settings: tests/test_gpu_acceptance.py parses each with the real CLI)


def ib(*args: str) -> list[str]:
    """An `inferneo-bench` command line; run as `python -m inferneo_bench`, which needs nothing installed."""
    return ["inferneo-bench", *args]


def threads(s: Settings) -> list[str]:
    return ["--threads", str(s.threads)] if s.threads else []


def cuda_test_files(repo: Path = REPO) -> list[str]:
    """Every test file that is skipped without CUDA: what only a GPU machine runs."""
    pattern = re.compile(r"skipif\(\s*not torch\.cuda\.is_available\(\)")
    files = (repo / "tests").glob("test_*.py")
    return sorted(str(p.relative_to(repo)) for p in files if pattern.search(p.read_text(encoding="utf-8")))


def pytest_cmd(s: Settings, p: Paths) -> list[str]:
    junit = f"--junitxml={p.work / 'cuda-tests.xml'}"
    return ["python", "-m", "pytest", "-p", "no:cacheprovider", "-o", "addopts=", "-q", "-rfEs", junit,
            *cuda_test_files()]  # fmt: skip


def bench_cmd(s: Settings, p: Paths) -> list[str]:
    cmd = ["python", "tests/benchmarks/bench_engine.py", "--model", s.model, "--device", s.device,
           "--batches", s.bench_batches, "--ctx", str(s.bench_ctx), "--json", str(p.bench)]  # fmt: skip
    return cmd + (["--steps", str(s.bench_steps)] if s.bench_steps else []) + threads(s)


def profile_cmd(s: Settings, p: Paths) -> list[str]:
    cmd = ib("profile", "--model", s.model, "--device", s.device, "--out", str(p.profile))
    return cmd + (["--quick"] if s.profile_quick else []) + threads(s)


def validate_cmd(s: Settings, p: Paths) -> list[str]:
    cmd = ib("profile", "--validate", str(p.profile), "--steps", str(s.validate_steps), "--json", str(p.validate))
    return cmd + threads(s)


def workload_args(s: Settings) -> list[str]:
    return ["--workload", s.workload, "--duration", f"{s.run_trace_s:g}", "--time-scale", f"{s.run_time_scale:g}",
            "--request-timeout", f"{s.run_request_timeout_s:g}"]  # fmt: skip


def run_cmd(s: Settings, p: Paths) -> list[str]:
    return ib("run", "--strategy", "all", *workload_args(s), "--model", s.model, "--device", s.device,
              "--out", str(p.runs), "--run-id", "inproc", "--label", "gpu-acceptance", *threads(s))  # fmt: skip


def sim_run_cmd(s: Settings, p: Paths) -> list[str]:
    return ib("run", "--strategy", "all", *workload_args(s), "--engine", "sim", "--profile", str(p.profile),
              "--out", str(p.runs), "--run-id", "sim", "--label", "gpu-acceptance-sim", "--quiet")  # fmt: skip


SWEEP_NEEDS = ("--strategy", "--workload", "--slo", "--rates", "--out")
SERVE_NEEDS = ("--port",)


def with_known(cmd: list[str], optional: list[tuple[str, str | None]], known: set[str]) -> list[str]:
    """`cmd` plus each optional (option, value) whose option the command accepts: sweep and serve are other
    branches' work, so this script takes what their CLI offers rather than assume it."""
    for opt, value in optional:
        if opt in known:
            cmd = cmd + ([opt] if value is None else [opt, value])
    return cmd


def sweep_cmd(s: Settings, p: Paths, known: set[str]) -> list[str]:
    cmd = ib("sweep", "--strategy", s.sweep_strategies, "--workload", s.workload, "--slo", s.sweep_slo,
             "--rates", s.sweep_rates, "--out", str(p.sweep))  # fmt: skip
    optional: list[tuple[str, str | None]] = [
        ("--model", s.model), ("--device", s.device), ("--engine", "torch"), ("--run-id", "sweep"),
        ("--num-requests", str(s.sweep_requests)), ("--request-timeout", f"{s.run_request_timeout_s:g}"),
    ]  # fmt: skip
    return with_known(cmd, optional + ([("--threads", str(s.threads))] if s.threads else []), known)


def serve_cmds(s: Settings, p: Paths, port: int, serve_known: set[str], run_known: set[str]) -> list[list[str]]:
    """[server, client]: the client replays the run stage's workload against the server."""
    optional: list[tuple[str, str | None]] = [
        ("--model", s.model), ("--device", s.device), ("--strategy", s.serve_strategy), ("--host", "127.0.0.1"),
    ]  # fmt: skip
    optional += [("--threads", str(s.threads))] if s.threads else []
    server = with_known(ib("serve", "--port", str(port)), optional, serve_known)
    client = ib("run", "--target", f"http://127.0.0.1:{port}", *workload_args(s), "--out", str(p.runs),
                "--run-id", "serve", "--label", "gpu-acceptance-serve")  # fmt: skip
    return [server, with_known(client, [("--quiet", None)], run_known)]


def cli_options(command: str) -> tuple[set[str] | None, str | None]:
    """The options of `inferneo-bench COMMAND`, read from the CLI's own definition; (None, why) without it."""
    try:
        import typer.main

        from inferneo_bench.cli import app

        group = typer.main.get_command(app)
    except Exception as exc:  # noqa: BLE001 - a broken setup is reported, not raised
        return None, f"the CLI does not load ({type(exc).__name__}: {exc})"
    cmd = group.commands.get(command)  # type: ignore[attr-defined]
    if cmd is None:
        return None, f"`inferneo-bench {command}` does not exist in this checkout"
    return {opt for param in cmd.params for opt in (*param.opts, *param.secondary_opts)}, None


def wheel_install_cmd(dry_run: bool, wheels: list[Path], p: Paths) -> list[str]:
    """GPU: install the carried wheels into the work folder's _site (on PYTHONPATH; the image is untouched).
    Dry run: they are for the GPU machine's CPython 3.12, so pip only checks it would install them there."""
    if dry_run:
        cmd = ["python", "-m", "pip", "install", "--dry-run", "--no-index", "--no-deps", "--only-binary=:all:",
               "--python-version", "3.12", "--implementation", "cp", "--target", str(p.work / "_wheel-check"),
               *(f"--platform={tag}" for tag in WHEEL_PLATFORMS)]  # fmt: skip
    else:
        cmd = ["python", "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-compile", "--no-cache-dir",
               "--upgrade", "--target", str(p.site)]  # fmt: skip
    return cmd + [str(w) for w in wheels]


def plan(s: Settings, p: Paths) -> dict[str, list[list[str]]]:
    """Every command of the plan (sweep and serve with every option they may get): --list and the tests."""
    every = {"--model", "--device", "--engine", "--run-id", "--num-requests", "--request-timeout", "--threads",
             "--strategy", "--host", "--quiet"}  # fmt: skip
    return {
        "setup": [["python", "bench/gpu_probe.py", "torch"], wheel_install_cmd(s.dry_run, [], p),
                  ["python", "bench/gpu_probe.py", "requirements", "pyproject.toml"], ib("env", "--json")],
        "cuda-tests": [pytest_cmd(s, p)],
        "bench": [bench_cmd(s, p)],
        "profile": [profile_cmd(s, p)],
        "validate": [validate_cmd(s, p)],
        "run": [run_cmd(s, p)],
        "sim-run": [sim_run_cmd(s, p)],
        "sweep": [sweep_cmd(s, p, every)],
        "serve": serve_cmds(s, p, 8000, every, every),
    }  # fmt: skip


# ---------------------------------------------------------------------------------------------------------
# running stages


@dataclass
class StageResult:
    name: str
    status: str = "skipped"  # ok | failed | timeout | skipped
    wall_s: float = 0.0
    note: str = ""  # the headline figure, the skip reason, or the first error line
    log: str | None = None


class Skip(Exception):
    """The stage does not apply (a command this checkout lacks, an input an earlier stage did not make)."""


class StageFailed(Exception):
    def __init__(self, timed_out: bool) -> None:
        super().__init__("timed out" if timed_out else "failed")
        self.timed_out = timed_out


_ERROR_PATTERNS = (
    re.compile(r"^FAILED .*"),  # pytest's short summary
    re.compile(r"^ERROR .*"),
    re.compile(r"^error: .*"),  # the CLI's one-line errors
    re.compile(r"^(\w+\.)*\w*(Error|Exception|Interrupt)\b.*"),  # a traceback's exception line: the last one
    re.compile(r"^Usage: .*"),
)


def first_error_line(text: str) -> str:
    """The line of a log that says what went wrong: pytest's FAILED line, the CLI's `error:` line, a
    traceback's exception line, else the last line (this script's own lines aside)."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("[gpu-acceptance]")]
    for pattern in _ERROR_PATTERNS:
        hits = [ln for ln in lines if pattern.match(ln)]
        if hits:
            return clip(hits[-1] if pattern is _ERROR_PATTERNS[3] else hits[0])
    return clip(lines[-1]) if lines else "(empty log)"


def clip(text: str, n: int = 150) -> str:
    return text if len(text) <= n else text[: n - 3] + "..."


class Runner:
    """Runs commands under one deadline; remembers the process in flight so that a signal can stop it."""

    def __init__(self, settings: Settings, paths: Paths, python: str, env: dict[str, str]) -> None:
        self.s, self.p, self.python, self.env = settings, paths, python, env
        self.deadline = time.monotonic() + settings.budget_s
        self.current: subprocess.Popen | None = None
        self.stopping = False
        self.grace_s = 5.0 if settings.dry_run else 15.0

    def left(self) -> float:
        return self.deadline - time.monotonic() - REPORT_RESERVE_S

    def argv(self, cmd: list[str]) -> list[str]:
        if cmd[0] == "inferneo-bench":
            return [self.python, "-m", "inferneo_bench", *cmd[1:]]
        return [self.python, *cmd[1:]] if cmd[0] == "python" else cmd

    def start(self, cmd: list[str], log: TextIO) -> subprocess.Popen:
        log.write(f"$ {' '.join(cmd)}\n")
        log.flush()
        return subprocess.Popen(self.argv(cmd), cwd=REPO, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)  # fmt: skip

    def stop(self, proc: subprocess.Popen) -> None:
        """SIGINT first (inferneo-bench then saves what it measured, status interrupted), then TERM, KILL."""
        for sig, wait_s in ((signal.SIGINT, self.grace_s), (signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
            if proc.poll() is not None:
                return
            try:
                os.killpg(proc.pid, sig)
                proc.wait(wait_s)
            except ProcessLookupError:
                return
            except subprocess.TimeoutExpired:
                continue

    def run(self, cmd: list[str], log: TextIO, until: float) -> tuple[int | None, bool]:
        """Run to the end or until `until` (monotonic seconds); returns (exit code, timed out)."""
        proc = self.current = self.start(cmd, log)
        try:
            proc.wait(max(0.1, until - time.monotonic()))
            return proc.returncode, False
        except subprocess.TimeoutExpired:
            log.write(f"\n{STOP_MARK}: stopping {cmd[:2]} (SIGINT, then TERM, KILL)\n")
            log.flush()
            self.stop(proc)
            return proc.returncode, True
        finally:
            self.current = None

    def check(self, cmd: list[str], log: TextIO, until: float, ok: tuple[int, ...] = (0,)) -> int:
        """Run `cmd`; a time-out or an exit code outside `ok` fails the stage. Returns the exit code."""
        rc, timed_out = self.run(cmd, log, until)
        if timed_out or rc not in ok:
            raise StageFailed(timed_out)
        return rc


Body = Callable[[Runner, TextIO, float], str]


def run_stage(runner: Runner, name: str, body: Body) -> StageResult:
    """Give the stage its share of the time left and run `body(runner, log, until)`, which returns the stage's
    headline, raises Skip, or fails (StageFailed, a time-out, or any exception: a bug in one stage must not
    cost the others)."""
    res = StageResult(name)
    budget = runner.s.budgets.get(name, 60.0)
    timeout_s = min(budget, runner.left())
    log_path = runner.p.logs / f"{STAGES.index(name) + 1:02d}-{name}.log"
    res.log = str(log_path.relative_to(runner.p.work))
    if runner.stopping:
        res.note = "not started: the call was stopped by a signal"
        return res
    why = PRECHECKS[name](runner) if name in PRECHECKS else None
    if why:  # a stage that cannot apply says why, whatever the time left
        res.note = why
        return res
    if timeout_s < min(15.0, budget):
        res.note = f"not started: {max(0.0, runner.left()):.0f} s left of the call's budget"
        return res
    print(f"[gpu-acceptance] {name}: up to {timeout_s:.0f} s (budget {budget:.0f} s)", flush=True)
    t0 = time.monotonic()
    with log_path.open("w", encoding="utf-8") as log:
        try:
            res.note, res.status = body(runner, log, t0 + timeout_s), "ok"
        except Skip as exc:
            res.note = str(exc)
        except StageFailed as exc:
            log.flush()
            text = log_path.read_text(encoding="utf-8", errors="replace")
            if exc.timed_out:  # what the command was doing when the budget ran out (before our SIGINT)
                before = text.split(f"\n{STOP_MARK}")[0].split("\n$ ")[-1].strip().splitlines()
                last = clip(before[-1].strip()) if len(before) > 1 else "(no output)"
                res.status, res.note = "timeout", f"stopped after {time.monotonic() - t0:.0f} s; last line: {last}"
            else:
                res.status, res.note = "failed", first_error_line(text)
        except Exception as exc:  # noqa: BLE001
            res.status, res.note = "failed", clip(f"in gpu_acceptance.py: {type(exc).__name__}: {exc}")
            log.write(f"\n[gpu-acceptance] {res.note}\n")
    res.wall_s = round(time.monotonic() - t0, 1)
    print(f"[gpu-acceptance] {name}: {res.status} in {res.wall_s:.0f} s - {res.note}", flush=True)
    return res


# ---------------------------------------------------------------------------------------------------------
# the stages


def stage_setup(runner: Runner, log: TextIO, until: float) -> str:
    s, p = runner.s, runner.p
    probe = subprocess.run(runner.argv(["python", "bench/gpu_probe.py", "torch"]), cwd=REPO, env=runner.env,
                           capture_output=True, text=True, timeout=max(5.0, until - time.monotonic()))  # fmt: skip
    log.write(probe.stdout + probe.stderr)
    facts = json.loads((probe.stdout.strip().splitlines() or ["{}"])[-1])
    (p.work / "machine.json").write_text(json.dumps(facts, indent=1) + "\n")
    if not facts.get("torch"):
        raise StageFailed(False)
    notes = [f"python {facts['python']}, torch {facts['torch']}"]
    if facts.get("cuda"):
        notes.append(f"{facts['device_name']} (CUDA {facts['cuda_version']})")
    elif not s.dry_run:
        log.write("error: CUDA is not available to torch on this machine\n")
        raise StageFailed(False)
    wheels = sorted(WHEELS.glob("*.whl")) if WHEELS.is_dir() else []
    if wheels:
        runner.check(wheel_install_cmd(s.dry_run, wheels, p), log, until)
    notes.append(
        f"{len(wheels)} wheels {'checked for py3.12' if s.dry_run else 'installed'}" if wheels else "no wheels"
    )
    runner.check(["python", "bench/gpu_probe.py", "requirements", "pyproject.toml"], log, until)
    runner.run(["python", "-m", "pip", "check"], log, until)  # for the log: conflicts between image and wheels
    with (p.work / "env.json").open("w", encoding="utf-8") as out:
        env = subprocess.run(runner.argv(ib("env", "--json")), cwd=REPO, env=runner.env, stdout=out,
                             stderr=subprocess.PIPE, text=True, timeout=max(5.0, until - time.monotonic()))  # fmt: skip
    log.write(env.stderr)
    if env.returncode != 0:
        log.write(f"error: inferneo-bench env --json exited {env.returncode}\n")
        raise StageFailed(False)
    if shutil.which("nvidia-smi"):  # read-only queries: the card's settings are never changed
        fields = "name,driver_version,memory.total,clocks.sm,clocks.max.sm,clocks.mem,power.draw,power.limit"
        smi = subprocess.run(["nvidia-smi", f"--query-gpu={fields},temperature.gpu,pstate", "--format=csv"],
                             capture_output=True, text=True, timeout=30)  # fmt: skip
        (p.work / "nvidia-smi.csv").write_text(smi.stdout + smi.stderr)
        log.write(smi.stdout + smi.stderr)
    stamp = WHEELS / "SOURCE_COMMIT"
    if stamp.is_file():
        notes.append(f"wheels fetched at {stamp.read_text().strip()[:12]}")
    return "; ".join(notes)


def stage_cuda_tests(runner: Runner, log: TextIO, until: float) -> str:
    files = cuda_test_files()
    if not files:
        raise Skip("no test file is marked CUDA-only")
    rc, timed_out = runner.run(pytest_cmd(runner.s, runner.p), log, until)
    if timed_out or rc not in (0, 5):
        raise StageFailed(timed_out)
    counts = junit_counts(runner.p.work / "cuda-tests.xml")
    if counts["skipped"] and not runner.s.dry_run:
        log.write("error: CUDA tests were skipped on the GPU machine\n")
        raise StageFailed(False)
    return f"{counts['passed']} passed, {counts['skipped']} skipped, in {len(files)} files"


def junit_counts(path: Path) -> dict[str, int]:
    counts = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    if path.is_file():
        import xml.etree.ElementTree as ET

        for suite in ET.parse(path).getroot().iter("testsuite"):
            for key in counts:
                counts[key] += int(suite.get(key, 0))
    counts["passed"] = counts["tests"] - counts["failures"] - counts["errors"] - counts["skipped"]
    return counts


def stage_bench(runner: Runner, log: TextIO, until: float) -> str:
    runner.check(bench_cmd(runner.s, runner.p), log, until)
    return mbu_headline(read_json(runner.p.bench))


def stage_profile(runner: Runner, log: TextIO, until: float) -> str:
    runner.check(profile_cmd(runner.s, runner.p), log, until)
    prof = read_json(runner.p.profile) or {}
    return f"{prof.get('model')} on {prof.get('device_name')}: {prof.get('profile_seconds')} s of profiling"


def stage_validate(runner: Runner, log: TextIO, until: float) -> str:
    runner.check(validate_cmd(runner.s, runner.p), log, until)
    v = read_json(runner.p.validate) or {}
    return f"median error {pct(v.get('median_ape'))}, p90 {pct(v.get('p90_ape'))} over {v.get('steps')} steps"


# `run` exits 4 when it saved results that are INVALID (saturated, too short, too many rejected): those are
# measurements, with their reasons in the final table's validity column, not a failed stage.
MEASURED = (0, 4)


def _invalid(rc: int) -> str:
    return "; INVALID results (exit 4), reasons in the table" if rc == 4 else ""


def _saved(rc: int, count: int, what: str) -> str:
    return f"{count} strategies {what}{_invalid(rc)}"


def stage_run(runner: Runner, log: TextIO, until: float) -> str:
    rc = runner.check(run_cmd(runner.s, runner.p), log, until, ok=MEASURED)
    return _saved(rc, len(read_results(runner.p.runs / "inproc")), "saved")


def stage_sim_run(runner: Runner, log: TextIO, until: float) -> str:
    rc = runner.check(sim_run_cmd(runner.s, runner.p), log, until, ok=MEASURED)
    return _saved(rc, len(read_results(runner.p.runs / "sim")), "simulated")


def sweep_missing(runner: Runner) -> str | None:
    known, why = cli_options("sweep")
    if known is None:
        return why
    missing = [o for o in SWEEP_NEEDS if o not in known]
    return f"`inferneo-bench sweep` lacks {', '.join(missing)}: adapt bench/gpu_acceptance.py" if missing else None


def serve_missing(runner: Runner) -> str | None:
    serve_known, why = cli_options("serve")
    if serve_known is None:
        return why
    run_known, why = cli_options("run")
    if run_known is None or "--target" not in run_known:
        return why or "`inferneo-bench run` has no --target in this checkout"
    missing = [o for o in SERVE_NEEDS if o not in serve_known]
    return f"`inferneo-bench serve` lacks {', '.join(missing)}: adapt bench/gpu_acceptance.py" if missing else None


def profile_missing(runner: Runner) -> str | None:
    return None if runner.p.profile.is_file() else "no profile: the profile stage did not make one"


def stage_sweep(runner: Runner, log: TextIO, until: float) -> str:
    known, _ = cli_options("sweep")
    assert known is not None  # sweep_missing() ran first
    runner.check(sweep_cmd(runner.s, runner.p, known), log, until)
    found = sorted(runner.p.sweep.rglob("sweep.json"))
    return f"saved {found[0].relative_to(runner.p.work)}" if found else "done; no sweep.json found"


def stage_serve(runner: Runner, log: TextIO, until: float) -> str:
    (serve_known, _), (run_known, _) = cli_options("serve"), cli_options("run")
    assert serve_known is not None and run_known is not None  # serve_missing() ran first
    port = free_port()
    server_cmd, client_cmd = serve_cmds(runner.s, runner.p, port, serve_known, run_known)
    until -= runner.grace_s + 10.0  # the server's drain after the client must fit the stage's time too
    with (runner.p.logs / "09-serve-server.log").open("w", encoding="utf-8") as server_log:
        server = runner.start(server_cmd, server_log)
        try:
            if not wait_healthy(f"http://127.0.0.1:{port}/health", server, until):
                log.write(f"error: the server did not answer /health in time (exit code {server.poll()}); "
                          "see logs/09-serve-server.log\n")  # fmt: skip
                raise StageFailed(server.poll() is None)
            log.write(f"server healthy on 127.0.0.1:{port}\n")
            rc = runner.check(client_cmd, log, until, ok=MEASURED)
        finally:
            runner.stop(server)  # SIGINT: the server drains
    found = len(read_results(runner.p.runs / "serve"))
    return f"{found} result file(s) from run --target{_invalid(rc)}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_healthy(url: str, server: subprocess.Popen, until: float) -> bool:
    while time.monotonic() < until and server.poll() is None:
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:  # loopback only
                if resp.status == 200:
                    return True
        except OSError:
            pass
        time.sleep(0.5)
    return False


PRECHECKS: dict[str, Callable[[Runner], str | None]] = {
    "validate": profile_missing,
    "sim-run": profile_missing,
    "sweep": sweep_missing,
    "serve": serve_missing,
}
STAGE_BODIES: dict[str, Body] = {
    "setup": stage_setup,
    "cuda-tests": stage_cuda_tests,
    "bench": stage_bench,
    "profile": stage_profile,
    "validate": stage_validate,
    "run": stage_run,
    "sim-run": stage_sim_run,
    "sweep": stage_sweep,
    "serve": stage_serve,
}


# ---------------------------------------------------------------------------------------------------------
# main


def stage_env(python: str, paths: Paths) -> dict[str, str]:
    """The stages' environment: the carried wheels and the checkout first on PYTHONPATH (nothing is installed
    into the image), unbuffered output, a wide console for the logs, `inferneo-bench` on PATH."""
    for entry in (str(REPO), str(paths.site)):  # cli_options() imports the CLI in this process too
        if entry not in sys.path:
            sys.path.insert(0, entry)
    env = dict(os.environ)
    pythonpath = [str(paths.site), str(REPO)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])
    env.update(PYTHONPATH=os.pathsep.join(pythonpath), PYTHONUNBUFFERED="1", MPLBACKEND="Agg", COLUMNS="160",
               PATH=os.pathsep.join([str(paths.bin), env.get("PATH", "")]))  # fmt: skip
    paths.bin.mkdir(parents=True, exist_ok=True)
    wrapper = paths.bin / "inferneo-bench"
    wrapper.write_text(f'#!/bin/sh\nexec "{python}" -m inferneo_bench "$@"\n')
    wrapper.chmod(0o755)
    return env


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="bench/gpu-acceptance.sh", description=__doc__.splitlines()[0])
    ap.add_argument("--dry-run", action="store_true", help="the tiny model on the CPU, small sizes")
    ap.add_argument(
        "--budget", type=float, help=f"seconds for the whole call (GPU {GPU_BUDGET_S:g}, dry {DRY_BUDGET_S:g})"
    )
    ap.add_argument("--only", help=f"comma-separated stages to run, of: {','.join(STAGES)}")
    ap.add_argument("--skip", help="comma-separated stages to leave out")
    ap.add_argument("--work", type=Path, help="work folder (default: results/acceptance/<gpu|dry>-<time>)")
    ap.add_argument("--out", type=Path, help="copy the report and tarballs here (default: $OUT when set)")
    ap.add_argument("--run-trace-s", type=float, help="seconds of the trace the run stages replay (GPU 180)")
    ap.add_argument("--run-time-scale", type=float, help="speed-up of that slice (GPU 6)")
    ap.add_argument("--list", action="store_true", help="print every stage's commands and exit")
    ap.add_argument("--collect", type=Path, metavar="FILES_AT", help="here, after a GPU call: unpack what came back "
                    "into results/gpu/<card>/ (small files to commit) and exit")  # fmt: skip
    return ap.parse_args(argv)


def selected(only: str | None, skip: str | None) -> list[str]:
    def names(text: str | None) -> list[str]:
        items = [x.strip() for x in (text or "").split(",") if x.strip()]
        unknown = [x for x in items if x not in STAGES]
        if unknown:
            raise SystemExit(f"error: unknown stage {', '.join(unknown)}; the stages: {', '.join(STAGES)}")
        return items

    keep, drop = names(only), names(skip)
    return [st for st in STAGES if (not keep or st in keep) and st not in drop]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.collect:
        dest = collect(args.collect, REPO / "results")
        print(f"wrote {dest.relative_to(REPO)}: {', '.join(sorted(p.name for p in dest.iterdir()))}")
        return 0
    stages = selected(args.only, args.skip)
    settings = Settings.for_mode(args.dry_run)
    for name in ("budget", "run_trace_s", "run_time_scale"):
        if getattr(args, name) is not None:
            setattr(settings, "budget_s" if name == "budget" else name, getattr(args, name))
    mode = "dry" if args.dry_run else "gpu"
    work = args.work or REPO / "results" / "acceptance" / f"{mode}-{time.strftime('%Y%m%d-%H%M%S')}"
    paths = Paths(work.resolve())
    if args.list:
        for name, cmds in plan(settings, paths).items():
            for cmd in cmds:
                print(f"{name:>10}: {' '.join(cmd)}")
        return 0
    out = args.out or (Path(os.environ["OUT"]) if os.environ.get("OUT") else None)
    paths.logs.mkdir(parents=True, exist_ok=True)
    runner = Runner(settings, paths, sys.executable, stage_env(sys.executable, paths))
    print(f"[gpu-acceptance] {'DRY RUN: CPU, tiny model' if args.dry_run else 'GPU'}; budget {settings.budget_s:.0f} s;"
          f" python {sys.executable}; work folder {paths.work}", flush=True)  # fmt: skip

    def on_signal(signum: int, _frame: Any) -> None:
        runner.stopping = True
        print(f"[gpu-acceptance] signal {signum}: stopping the stage in flight, then the report", flush=True)
        if runner.current is not None:
            runner.stop(runner.current)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    t0 = time.monotonic()
    results = [run_stage(runner, name, STAGE_BODIES[name]) for name in stages]
    summary = build_summary(asdict(settings), paths.work, [asdict(r) for r in results], time.monotonic() - t0)
    text = render(summary)
    (paths.work / "summary.json").write_text(json.dumps(summary, indent=1, default=str) + "\n")
    (paths.work / "summary.md").write_text("```\n" + text + "\n```\n")
    copied = package(paths.work, out)
    if copied:
        print(f"[gpu-acceptance] copied to {out}: {', '.join(copied)}", flush=True)
    print("\n" + text, flush=True)
    return 1 if any(r.status in ("failed", "timeout") for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
