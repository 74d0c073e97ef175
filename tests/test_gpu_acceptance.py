"""bench/gpu-acceptance.sh, checked on the CPU so that a typo cannot waste the GPU call (issue 16).

Every command of both plans (the GPU call's and the dry run's) is parsed by the real parsers; the stage runner
keeps going past a failed, crashed or timed-out stage; the report reads the stages' files and checks the
targets; the output respects the device tool's limits. The full dry run (about 2-3 minutes) is run by hand:
`bash bench/gpu-acceptance.sh --dry-run` (docs/engine.md).
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "bench"


def _load(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


ga = _load("gpu_acceptance", BENCH / "gpu_acceptance.py")
report = sys.modules["gpu_acceptance_report"]
probe = _load("gpu_probe", BENCH / "gpu_probe.py")
wheels = _load("gpu_wheels", BENCH / "gpu_wheels.py")


def test_shell_entry_points_are_valid_bash():
    for script in ("gpu-acceptance.sh", "fetch-gpu-wheels.sh"):
        subprocess.run(["bash", "-n", str(BENCH / script)], check=True)


def _click_command(name: str):
    import typer.main

    from inferneo_bench.cli import app

    return typer.main.get_command(app).commands.get(name)


def _parse_cli(cmd: list[str]) -> None:
    """Parse an `inferneo-bench SUBCOMMAND ...` line with the real CLI (options, types, callbacks), run nothing."""
    command = _click_command(cmd[1])
    assert command is not None, cmd
    command.make_context(cmd[1], list(cmd[2:]))


@pytest.mark.parametrize("dry_run", [False, True], ids=["gpu", "dry"])
def test_every_planned_command_parses(dry_run, tmp_path):
    settings = ga.Settings.for_mode(dry_run)
    paths = ga.Paths(tmp_path)
    bench_parser = _load("bench_engine", REPO / "tests" / "benchmarks" / "bench_engine.py").build_parser()
    stages = ga.plan(settings, paths)
    assert set(stages) == set(ga.STAGES)
    for stage, cmds in stages.items():
        if stage in ("sweep", "serve"):  # other branches' commands: built from the options they really have
            why = ga.sweep_missing(None) if stage == "sweep" else ga.serve_missing(None)
            if why:
                assert "does not exist" in why or "no --target" in why
                continue
            known = {n: ga.cli_options(n)[0] for n in ("sweep", "serve", "run")}
            cmds = (
                [ga.sweep_cmd(settings, paths, known["sweep"])]
                if stage == "sweep"
                else ga.serve_cmds(settings, paths, 8000, known["serve"], known["run"])
            )
        for cmd in cmds:
            if cmd[0] == "inferneo-bench":
                _parse_cli(cmd)
            elif cmd[1].endswith("bench_engine.py"):
                args = bench_parser.parse_args(cmd[2:])
                assert args.json and args.device == settings.device
            elif cmd[1:3] == ["-m", "pytest"]:
                files = [a for a in cmd if a.startswith("tests/")]
                assert {"tests/test_engine_cuda.py", "tests/test_telemetry_cuda.py"} <= set(files)
                assert all((REPO / f).is_file() for f in files)
            elif cmd[1].startswith("bench/"):
                assert (REPO / cmd[1]).is_file()
    assert (REPO / "workloads" / f"{settings.workload}.yaml").is_file()
    assert settings.model in __import__("inferneo_bench.engine.model", fromlist=["PRESETS"]).PRESETS


def test_list_prints_every_stage_and_runs_nothing(tmp_path):
    out = subprocess.run(
        ["bash", str(BENCH / "gpu-acceptance.sh"), "--list", "--work", str(tmp_path / "w")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "run --strategy all --workload azure-conv --duration 180 --time-scale 6" in out
    assert "--model llama-1b --device cuda" in out and not (tmp_path / "w").exists()


def test_first_error_line_finds_what_went_wrong():
    pytest_log = "....F\nFAILED tests/test_engine_cuda.py::test_x - AssertionError: ('s0', 0.4)\n1 failed in 3s\n"
    assert ga.first_error_line(pytest_log) == "FAILED tests/test_engine_cuda.py::test_x - AssertionError: ('s0', 0.4)"
    traceback = 'Traceback (most recent call last):\n  File "x.py", line 1\nValueError: inner\n\nThe above...\n'
    traceback += "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB\n"
    assert ga.first_error_line(traceback) == "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB"
    cli = "profiling...\nerror: --device cuda: CUDA is not available on this machine; use --device cpu or auto\n"
    assert ga.first_error_line(cli).startswith("error: --device cuda: CUDA is not available")
    assert ga.first_error_line("Usage: inferneo-bench run [OPTIONS]\nTry --help\n").startswith("Usage:")
    assert ga.first_error_line("one\nlast words\n[gpu-acceptance] time budget reached\n") == "last words"
    assert len(ga.first_error_line("error: " + "x" * 500)) == 150


def _settings(tmp_path, **budgets):
    s = ga.Settings.for_mode(True)
    s.budgets.update(budgets)
    paths = ga.Paths(tmp_path)
    paths.logs.mkdir(parents=True)
    return ga.Runner(s, paths, sys.executable, ga.stage_env(sys.executable, paths))


def test_an_invalid_run_is_a_measurement_not_a_failed_stage(tmp_path, monkeypatch):
    """`run` exits 4 when it saved INVALID results (saturated, too short): the stage is ok and says so; any
    other non-zero exit still fails it."""
    runner = _settings(tmp_path)
    monkeypatch.setattr(ga, "run_cmd", lambda s, p: ["python", "-c", "import sys; sys.exit(4)"])
    run = ga.run_stage(runner, "run", ga.STAGE_BODIES["run"])
    assert (run.status, run.note) == ("ok", "0 strategies saved; INVALID results (exit 4), reasons in the table")
    monkeypatch.setattr(ga, "run_cmd", lambda s, p: ["python", "-c", "import sys; sys.exit(1)"])
    assert ga.run_stage(runner, "run", ga.STAGE_BODIES["run"]).status == "failed"


def test_a_failed_crashed_or_timed_out_stage_does_not_stop_the_next(tmp_path):
    runner = _settings(tmp_path, setup=1.5)

    def sleeps(r, log, until):
        r.check(["python", "-c", "import time; print('started', flush=True); time.sleep(60)"], log, until)
        return "never"

    def fails(r, log, until):
        r.check(["python", "-c", "import sys; print('step 1'); print('error: bad --set x=1'); sys.exit(2)"], log, until)
        return "never"

    def crashes(r, log, until):
        raise KeyError("bench")

    results = [
        ga.run_stage(runner, "setup", sleeps),
        ga.run_stage(runner, "bench", fails),
        ga.run_stage(runner, "profile", crashes),
        ga.run_stage(runner, "run", lambda r, log, until: "6 strategies saved"),
    ]
    assert [r.status for r in results] == ["timeout", "failed", "failed", "ok"]
    assert results[0].note.startswith("stopped after") and results[0].note.endswith("last line: started")
    assert results[0].wall_s < 10  # SIGINT ended it: no waiting for the 60 s sleep
    assert results[1].note == "error: bad --set x=1"
    assert results[2].note == "in gpu_acceptance.py: KeyError: 'bench'"
    assert results[3].note == "6 strategies saved" and (tmp_path / "logs" / "06-run.log").is_file()


def test_a_stage_that_cannot_apply_or_has_no_time_left_is_skipped_with_the_reason(tmp_path):
    runner = _settings(tmp_path)
    assert ga.run_stage(runner, "validate", lambda *a: "x").note == "no profile: the profile stage did not make one"
    runner.deadline = 0.0
    res = ga.run_stage(runner, "bench", lambda *a: "x")
    assert res.status == "skipped" and res.note.startswith("not started:")
    runner.stopping = True
    assert ga.run_stage(runner, "run", lambda *a: "x").note == "not started: the call was stopped by a signal"


def _result(strategy: str, telemetry: dict, **summary) -> dict:
    base = {"completed": 90, "total_requests": 100, "cancelled": 8, "rejected": 2, "failed": 0}
    return {
        "run": {"status": "completed", "validity": {"valid": True}},
        "strategy": {"name": strategy},
        "summary": {**base, **summary},
        "telemetry": telemetry,
        "requests": [{"itl_s": [0.01] * 50}],
        "steps": {"fields": ["a"], "rows": [[1]] * 50},
    }


def _work(tmp_path: Path) -> Path:
    work = tmp_path / "work"
    (work / "profile").mkdir(parents=True)
    rows = [
        {"batch": 1, "step_ms": 2.1, "tok_s": 476.0, "gb_s": 1290.0, "mbu_datasheet": 0.27, "mbu_measured": 0.30},
        {"batch": 64, "step_ms": 1.05, "tok_s": 60952.0, "gb_s": 3168.0, "mbu_datasheet": 0.66, "mbu_measured": 0.74},
    ]
    bench = {"device_name": "NVIDIA H200", "datasheet_bw_gbs": 4800.0, "measured_copy_bw_gbs": 4300.0}
    (work / "bench.json").write_text(json.dumps({**bench, "models": [{"model": {}, "rows": rows}]}))
    per_kind = {"decode": 0.04, "mixed": 0.11}
    validate = {"median_ape": 0.072, "p90_ape": 0.2, "steps": 40, "per_kind": per_kind, "rows": []}
    (work / "profile" / "validate.json").write_text(json.dumps(validate))
    sample = {"gpu_util_pct": 93, "mem_used_mb": 9000.0, "power_w": 410.0, "energy_j": 5.0, "sm_clock_mhz": 1980,
              "temp_c": None, "throttle_reasons": None}  # fmt: skip
    full = {"available": True, "samples": [sample], "counter_errors": {"throttle_reasons": "Not Supported"}}
    figures = {"gpu_util_mean": 93.0, "gpu_power_mean_w": 410.0, "energy_per_output_token_j": 0.0123}
    inproc, sim = work / "runs" / "inproc", work / "runs" / "sim"
    inproc.mkdir(parents=True)
    sim.mkdir(parents=True)
    for name, tput in (("continuous", 5000.0), ("fixed_size", 1200.0)):
        result = _result(name, full, output_throughput=tput, p50_ttft_ms=40.0, p50_tpot_ms=6.0, **figures)
        (inproc / f"{name}.json").write_text(json.dumps(result))
        off = {"available": False, "reason": "simulated engine"}
        (sim / f"{name}.json").write_text(json.dumps(_result(name, off, output_throughput=tput * 1.1)))
    return work


def test_report_checks_the_targets_from_the_stage_files(tmp_path):
    work = _work(tmp_path)
    settings = ga.asdict(ga.Settings.for_mode(False))
    stages = [ga.asdict(ga.StageResult("run", "failed", 12.0, "error: CUDA out of memory"))]
    summary = report.build_summary(settings, work, stages, 300.0)
    assert summary["mbu_target"]["verdict"] == "PASS" and summary["profile_target"]["verdict"] == "MISS"
    # temp_c is null in every sample and NVML gave no reason for it: that is a defect, and says so
    assert summary["telemetry_verdict"] == "MISS"
    text = report.render(summary)
    assert "target: MBU >= 60% of datasheet at batch 64: PASS" in text
    assert "64     1.05     60,952    3168  66.0%          74.0%" in text
    assert "median 7.2%, p90 20.0% over 40 steps (decode 4.0%, mixed 11.0%)" in text
    assert "target: median <= 5%: MISS" in text
    assert [ln.split()[0] for ln in text.splitlines() if ln.endswith("VALID")] == ["fixed_size", "continuous"]
    assert "continuous  90/100  8c 2r 0f  5,000      40        6.0       93      410  0.012  VALID" in text
    assert "NULL WITHOUT A REASON: temp_c" in text and "throttle_reasons: Not Supported" in text
    assert "continuous  5,000       5,500      +10%  40             n/a" in text
    assert text.splitlines()[-1].startswith("stages failed: run;")
    assert "run    FAILED  12  error: CUDA out of memory" in text


def test_telemetry_off_is_honest_on_the_cpu_and_a_failure_on_the_gpu():
    off = {"telemetry": {"available": False, "reason": "not running on a CUDA device"}}
    assert report.telemetry_check(off, need_nvml=False) == (True, "NVML off: not running on a CUDA device")
    assert report.telemetry_check(off, need_nvml=True)[0] is False
    assert report.telemetry_check({"telemetry": {"available": False}}, need_nvml=False) == (
        False,
        "NVML off WITHOUT a reason",
    )


def test_package_fits_the_device_tools_limits(tmp_path, monkeypatch):
    work = _work(tmp_path)
    (work / "summary.md").write_text("table")
    (work / "_site").mkdir()
    (work / "_site" / "big.whl").write_bytes(b"x" * 1000)
    monkeypatch.setattr(report, "TAR_LIMIT_BYTES", 200)  # every run tarball is "too big": slimmed
    out = tmp_path / "out"
    copied = report.package(work, out)
    assert copied == ["summary.md", "acceptance.tar.gz", "runs-inproc.tar.gz", "runs-sim.tar.gz"]
    assert sorted(p.name for p in out.iterdir()) == sorted(copied) and len(copied) <= report.OUT_FILES_MAX
    with tarfile.open(out / "acceptance.tar.gz") as tar:
        names = tar.getnames()
    assert "work/bench.json" in names and not any("_site" in n or "/runs" in n for n in names)
    with tarfile.open(out / "runs-inproc.tar.gz") as tar:
        assert "work/runs/inproc/SLIM.txt" in tar.getnames()
        doc = json.load(tar.extractfile("work/runs/inproc/continuous.json"))
    assert doc["summary"]["output_throughput"] == 5000.0 and "itl_s" not in doc["requests"][0]
    assert doc["steps"]["rows"] == []


def test_the_probes_run_here():
    facts = probe.torch_facts()
    assert facts["torch"] and facts["python"]
    reqs = probe.requirements(REPO / "pyproject.toml")
    assert any(r.startswith("torch") for r in reqs) and not any(r.startswith("ruff") for r in reqs)
    assert probe.check(reqs) == 0
    assert probe.check(["surely-not-installed-pkg>=1"]) == 1


def test_the_gpu_form_of_the_wheel_install_installs_beside_the_image(tmp_path):
    whl = tmp_path / "ibdummy-0.1-py3-none-any.whl"
    with zipfile.ZipFile(whl, "w") as z:
        z.writestr("ibdummy/__init__.py", "VALUE = 7\n")
        z.writestr("ibdummy-0.1.dist-info/METADATA", "Metadata-Version: 2.1\nName: ibdummy\nVersion: 0.1\n")
        z.writestr("ibdummy-0.1.dist-info/WHEEL", "Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        z.writestr("ibdummy-0.1.dist-info/RECORD", "")
    paths = ga.Paths(tmp_path / "work")
    cmd = ga.wheel_install_cmd(False, [whl], paths)
    subprocess.run([sys.executable, *cmd[1:]], check=True, capture_output=True)
    assert (paths.site / "ibdummy" / "__init__.py").read_text() == "VALUE = 7\n"


def test_the_wheel_list_is_what_the_image_lacks():
    image = wheels.image_packages()
    assert {"torch", "numpy", "pyyaml", "nvidia-ml-py", "typer", "aiohttp"} <= image
    assert wheels.requirement_name("PyYAML>=6") == "pyyaml"
    assert wheels.requirement_name("uvicorn[standard]>=0.29") == "uvicorn"
    assert wheels.requirement_name("typing_extensions ; python_version<'3.11'") == "typing-extensions"
    assert wheels.missing(["fastapi>=0.110", "torch>=2.5", "nvidia_ml_py>=12"], image) == ["fastapi>=0.110"]
    for req in wheels.missing(wheels.project_requirements(), image):
        assert wheels.requirement_name(req) not in image


def test_dry_run_entry_point_writes_the_report_and_the_out_folder(tmp_path):
    """The cheapest form of the dry run: the shell entry point, the Python it picks, the report and the copy to
    --out, with two stages that have nothing to do here (no profile has been made)."""
    proc = subprocess.run(
        ["bash", str(BENCH / "gpu-acceptance.sh"), "--dry-run", "--only", "validate,sim-run",
         "--work", str(tmp_path / "w"), "--out", str(tmp_path / "out")],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    last = proc.stdout.strip().splitlines()
    assert last[-1].startswith("stages failed: none;")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["acceptance.tar.gz", "summary.json", "summary.md"]
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["mode"] == "dry-run (CPU, tiny model)" and summary["settings"]["device"] == "cpu"
    assert [(st["name"], st["status"], st["note"]) for st in summary["stages"]] == [
        ("validate", "skipped", "no profile: the profile stage did not make one"),
        ("sim-run", "skipped", "no profile: the profile stage did not make one"),
    ]


def test_collect_turns_what_came_back_into_small_files_to_commit(tmp_path):
    work = _work(tmp_path)
    (work / "machine.json").write_text(json.dumps({"device_name": "NVIDIA H200", "torch": "2.11.0+cu130"}))
    settings = ga.asdict(ga.Settings.for_mode(False))
    summary = report.build_summary(settings, work, [], 500.0)
    (work / "summary.json").write_text(json.dumps(summary))
    (work / "summary.md").write_text(report.render(summary))
    report.package(work, tmp_path / "files_at")
    dest = report.collect(tmp_path / "files_at", tmp_path / "results")
    assert dest == tmp_path / "results" / "gpu" / "nvidia-h200"
    assert {"summary.md", "summary.json", "bench.json", "validate.json", "machine.json", "runs"} <= {
        p.name for p in dest.iterdir()
    }
    slim = json.loads((dest / "runs" / "inproc" / "continuous.json").read_text())
    assert slim["summary"]["output_throughput"] == 5000.0 and "requests" not in slim and "steps" not in slim
    assert report.card_slug("NVIDIA H100 80GB HBM3") == "nvidia-h100-80gb-hbm3"
    summary["settings"]["dry_run"] = True
    (tmp_path / "files_at" / "summary.json").write_text(json.dumps(summary))
    with pytest.raises(SystemExit, match="a dry run's output"):
        report.collect(tmp_path / "files_at", tmp_path / "results")


def test_bench_names_the_cuda_device_with_its_index(monkeypatch):
    """torch.cuda.set_device(torch.device("cuda")) raises ValueError (no index): the benchmark's CUDA path
    resolves a bare "cuda" or "auto" to the current device first."""
    import torch

    bench = _load("bench_engine", REPO / "tests" / "benchmarks" / "bench_engine.py")
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 3)
    assert bench.cuda_device("cuda") == torch.device("cuda", 3) == bench.cuda_device("auto")
    assert bench.cuda_device("cuda:1") == torch.device("cuda", 1)
    from torch.cuda._utils import _get_device_index

    assert _get_device_index(bench.cuda_device("cuda")) == 3
    with pytest.raises(ValueError):
        _get_device_index(torch.device("cuda"))


HEALTH_SERVER = """
import http.server, signal, sys
# A script's background job starts with SIGINT ignored, and Python then keeps it ignored: restore Ctrl-C, as
# inferneo-bench run and serve do by installing their own handlers.
signal.signal(signal.SIGINT, signal.default_int_handler)
class Health(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200 if self.path == "/health" else 404)
        self.end_headers()
    def log_message(self, *args):
        pass
print("serving", flush=True)
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), Health).serve_forever()
"""


def test_sweep_and_serve_stages_run_when_the_commands_exist(tmp_path, monkeypatch):
    """The stages of other branches' commands, with stand-ins: the serve stage starts a server on a free
    loopback port, waits for /health, runs the client, and stops the server (SIGINT) afterwards."""
    options = {"sweep": set(ga.SWEEP_NEEDS), "serve": {"--port"}, "run": {"--target", "--quiet"}}
    monkeypatch.setattr(ga, "cli_options", lambda name: (options[name], None))
    client = ["python", "-c", "print('client done')"]
    monkeypatch.setattr(ga, "serve_cmds", lambda s, p, port, *_: [["python", "-c", HEALTH_SERVER, str(port)], client])
    monkeypatch.setattr(ga, "sweep_cmd", lambda s, p, known: ["python", "-c", "print('swept')"])
    runner = _settings(tmp_path)
    sweep = ga.run_stage(runner, "sweep", ga.STAGE_BODIES["sweep"])
    assert (sweep.status, sweep.note) == ("ok", "done; no sweep.json found")
    serve = ga.run_stage(runner, "serve", ga.STAGE_BODIES["serve"])
    assert (serve.status, serve.note) == ("ok", "0 result file(s) from run --target")
    assert "client done" in (tmp_path / "logs" / "09-serve.log").read_text()
    assert "KeyboardInterrupt" in (tmp_path / "logs" / "09-serve-server.log").read_text()  # stopped by SIGINT
    options["serve"] = {"--host"}
    assert ga.serve_missing(runner) == "`inferneo-bench serve` lacks --port: adapt bench/gpu_acceptance.py"
