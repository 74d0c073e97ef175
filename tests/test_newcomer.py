"""A newcomer's first hour: help that teaches (no type tags, an example each, exit codes), names that forgive
typos, every outcome on screen (what did not complete and why, goodput, INVALID with its exit code), the way to
the next step (results/latest, the next command, a folder of runs listed), output that fits 80 columns."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import typer

from inferneo_bench import results, run_folders
from inferneo_bench.cli import app
from inferneo_bench.report import tables

REPO = Path(__file__).resolve().parents[1]
CPU = REPO / "tests" / "data" / "results" / "chat-cpu"
SIM = ["--engine", "sim", "--profile", "tiny-cpu"]


def _commands(group=None, prefix=()):
    """Every command of the CLI as (name path, click command)."""
    group = group or typer.main.get_command(app)
    for name, cmd in group.commands.items():
        if getattr(cmd, "commands", None):
            yield from _commands(cmd, (*prefix, name))
        else:
            yield (*prefix, name), cmd


COMMANDS = [path for path, _ in _commands()]


@pytest.mark.parametrize("path", COMMANDS, ids=[" ".join(p) for p in COMMANDS])
def test_help_has_no_type_tags_and_an_example(runner, path):
    result = runner.invoke(app, [*path, "--help"], env={"COLUMNS": "120"})
    assert result.exit_code == 0, result.output
    text = result.output
    assert not re.search(r"<(str|int|float|bool|path|list\[[^\]]*\]|int range|float range)>", text), text
    assert "[x>=" not in text and "<bool>" not in text
    assert "Example" in text, f"{' '.join(path)} --help has no example"


@pytest.mark.parametrize(("command", "codes"), [("run", ["0 ", "4 ", "2 ", "130 "]), ("check", ["0 ", "1 ", "3 "])])
def test_run_and_check_help_list_their_exit_codes(runner, command, codes):
    text = " ".join(runner.invoke(app, [command, "--help"], env={"COLUMNS": "200"}).output.split())
    assert "Exit codes:" in text
    for code in codes:
        assert f"; {code}" in text or f": {code}" in text, code


def test_short_flags_mean_the_same_thing_everywhere():
    meaning: dict[str, set[str]] = {}
    for _, cmd in _commands():
        for param in cmd.params:
            for opt in [*getattr(param, "opts", []), *getattr(param, "secondary_opts", [])]:
                if re.fullmatch(r"-[A-Za-z]", opt):
                    meaning.setdefault(opt, set()).add(param.name)
    assert meaning["-m"] == {"model"} and meaning["-d"] == {"device"} and meaning["-o"] == {"out"}
    assert all(len(names) == 1 for names in meaning.values()), meaning


def test_design_document_not_seed_in_user_text(runner):
    for path in COMMANDS:
        text = runner.invoke(app, [*path, "--help"], env={"COLUMNS": "200"}).output
        assert "seed's" not in text and "the seed " not in text


def test_repeated_strategy_options_accumulate(cli, tmp_path):
    code, out, err = cli(
        "run", *SIM, "-n", "12", "-s", "fixed", "-s", "continuous,latency", "-o", str(tmp_path), "--run-id", "t", "-q",
        "--min-requests", "1", "--min-duration", "0",
    )  # fmt: skip
    assert code == 0, err
    assert [results.load(p).strategy["name"] for p in out.split()] == [
        "fixed_size",
        "continuous",
        "latency_optimized",
    ]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["-s", "contiuous"], "unknown strategy 'contiuous'; did you mean 'continuous'?"),
        (["-s", "adaptiv"], "did you mean 'adaptive'?"),
        (["-s", "throughput_optimised"], "did you mean 'throughput_optimized'?"),
        (["-w", "defualt"], "unknown workload 'defualt'; did you mean 'default'?"),
        (["-w", "azure-cnv"], "did you mean 'azure-conv'?"),
    ],
)
def test_near_miss_names_get_a_suggestion(cli, tmp_path, args, expected):
    code, out, err = cli("run", *SIM, *args, "-o", str(tmp_path))
    assert code == 2 and expected in err and err.count("\n") == 1, err


def test_invalid_run_exits_4_and_says_so_even_when_quiet(cli, tmp_path):
    code, out, err = cli("run", *SIM, "-n", "10", "-s", "fixed", "-o", str(tmp_path), "--run-id", "t", "-q")
    assert code == 4
    (path,) = out.split()  # the result is saved all the same
    assert not results.load(path).run.validity["valid"]
    (line,) = err.splitlines()
    assert line.startswith("fixed: INVALID - ") and "10 measured requests < minimum 50" in line


def test_run_prints_outcomes_files_latest_and_the_next_command(cli, tmp_path, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    code, out, err = cli(
        "run", *SIM, "-n", "60", "-s", "fixed,continuous", "--max-model-len", "300", "--slo", "ttft_ms=200",
        "-o", str(tmp_path), "--run-id", "t", "--csv", "--min-requests", "1", "--min-duration", "0",
        "--max-failed-pct", "100", "--max-rejected-pct", "100",  # the rejections are the point here
    )  # fmt: skip
    assert code == 0, err
    assert max(len(line) for line in out.splitlines()) <= 80, out
    flat = " ".join(out.split())
    loaded = [results.load(tmp_path / "t" / s) for s in ("fixed_size", "continuous")]
    rejected = loaded[0].summary["rejected"]
    assert rejected > 0 and all(r.summary["rejected"] == rejected for r in loaded)
    assert f"rejected {rejected}/60 in every strategy, e.g. prompt " in flat and "exceeds the model context 300" in flat
    assert "will be rejected" in flat and "weights: none (simulated engine" in flat
    assert "goodput = completed requests meeting ttft_ms <= 200 per second" in flat  # the column, with --slo
    assert all(f"{r.summary['request_goodput']:.2f}" in flat for r in loaded)
    for name in ("fixed_size", "continuous"):  # result folders, the CSV inside each
        assert f"saved {tmp_path / 't' / name} (" in flat and (tmp_path / "t" / name / "requests.csv").is_file()
    assert flat.count("+ requests.csv") == 2
    assert f"next: inferneo-bench compare {tmp_path / 't'}" in flat
    latest = tmp_path / "latest"
    assert latest.is_symlink() and latest.resolve() == (tmp_path / "t").resolve()
    code, out, err = cli("compare", str(latest), "--format", "csv")  # compare and check follow it
    assert code == 0 and "continuous" in out
    code, _, err = cli("check", "-b", str(latest), "-c", str(latest))
    assert code == 0, err


def test_run_summary_counts_failed_and_cancelled_by_reason():
    from types import SimpleNamespace

    from inferneo_bench.runner.summary_table import outcome_lines

    def record(status, reason):
        return SimpleNamespace(status=status, reason=reason, warmup=False)

    def outcome(name, recs):
        summary = {"total_requests": len(recs), "warmup_requests": 0}
        run = SimpleNamespace(trial=None)
        return SimpleNamespace(result=SimpleNamespace(strategy={"name": name}, run=run, summary=summary, requests=recs))

    a = outcome("fixed_size", [record("completed", None)] * 5 + [record("cancelled", "client timeout after 2 s")] * 3)
    b = outcome("continuous", [record("completed", None)] * 7 + [record("failed", "CUDA out of memory")])
    lines = [line.plain for line in outcome_lines([a, b])]
    assert lines == ["failed continuous 1/8: CUDA out of memory", "cancelled fixed 3/8: client timeout after 2 s"]


def test_pointer_file_stands_in_for_a_symlink(tmp_path, monkeypatch):
    (tmp_path / "r1").mkdir()

    def no_links(*args, **kwargs):
        raise OSError("symlinks not supported here")

    monkeypatch.setattr(Path, "symlink_to", no_links)
    link = run_folders.mark_latest(tmp_path, "r1")
    assert link.is_file() and link.read_text().strip() == "r1"
    assert run_folders.resolve(link) == tmp_path / "r1"
    (tmp_path / "r2").mkdir()
    run_folders.mark_latest(tmp_path, "r2")  # replaced, not appended
    assert run_folders.resolve(tmp_path / "latest") == tmp_path / "r2"


def test_compare_on_a_folder_of_runs_lists_them_instead_of_loading(cli, tmp_path):
    import shutil

    for name in ("run-a", "run-b"):
        shutil.copytree(CPU, tmp_path / name)
    code, out, err = cli("compare", str(tmp_path))
    assert code == 2 and out == ""
    lines = err.splitlines()
    assert lines[0] == f"{tmp_path}/ holds 2 runs (newest first):"
    assert {line.split()[0] for line in lines[1:3]} == {str(tmp_path / "run-a"), str(tmp_path / "run-b")}
    assert lines[1].endswith(": all strategies") and "  6 results, " in lines[1]
    assert lines[-1].startswith(f"error: {tmp_path}/ holds 2 runs, not one; compare one run folder, e.g. ")
    assert cli("compare", str(tmp_path / "run-a"), "--format", "csv")[0] == 0  # one run: compared


def test_profile_default_name_never_shadows_or_overwrites(tmp_path):
    from inferneo_bench.commands.profile import default_profile_path

    first = default_profile_path("tiny", "cpu", tmp_path)
    assert first == tmp_path / "tiny-cpu-local.json"  # not tiny-cpu.json, the shipped profile's name
    first.write_text("{}")
    assert default_profile_path("tiny", "cpu", tmp_path) == tmp_path / "tiny-cpu-local-2.json"


def test_compare_table_fits_80_columns_with_every_figure(monkeypatch):
    res = [results.load(f) for f in results.find_result_files([CPU])]
    comp = tables.compare(res, results.find_result_files([CPU]))
    text = tables.render_text(tables.to_rich(comp, width=80), width=80)
    assert max(len(line) for line in text.splitlines()) <= 80
    assert "…" not in text
    for strategy in ("fixed_", "adaptive", "coalescing", "latency_", "throughput_", "continuous"):
        assert strategy in text
    assert text.count("+12.8%") == 2  # continuous's request and output throughput, in the second block
    assert "Goodput" not in text  # n/a in every column: left to the note


@pytest.mark.parametrize(("env", "width"), [({"COLUMNS": "91"}, 91), ({}, 120)])
def test_piped_output_honours_columns(monkeypatch, env, width):
    from inferneo_bench.console import output_width

    monkeypatch.delenv("COLUMNS", raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert output_width(120) == width  # pytest's stdout and stderr are not terminals


def test_demo_table_marks_the_winner_of_each_column(cli, tmp_path):
    code, out, err = cli("demo", *SIM, "-o", str(tmp_path))
    assert code == 0, err
    rows = [line for line in out.splitlines() if line.startswith(("fixed ", "continuous ")) and "━" not in line]
    assert len(rows) == 2 and rows[1].count("★") == 3 and "★" not in rows[0]  # tok/s, mean and p99 E2EL


def test_weights_are_named_in_the_model_block():
    from inferneo_bench.engine import load_engine
    from inferneo_bench.runner.summary_table import weights_text

    engine = load_engine("tiny", device="cpu", max_num_seqs=1, max_model_len=32, kv_cache_tokens=32, seed=3)
    info = engine.model_info()
    assert (info["weights"], info["weights_seed"]) == ("random (seeded)", 3)
    assert weights_text(info).startswith("weights: random (seeded, seed 3): ") and "no EOS" in weights_text(info)


def test_checkpoint_digest_covers_config_and_every_safetensors_file(tmp_path):
    from inferneo_bench.engine.hf_loader import checkpoint_digest

    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "model-1.safetensors").write_bytes(b"a" * 10)
    first = checkpoint_digest(tmp_path)
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", first)
    (tmp_path / "model-2.safetensors").write_bytes(b"b")
    assert checkpoint_digest(tmp_path) != first


def test_large_results_get_a_line_with_size_and_time(cli, monkeypatch):
    import inferneo_bench.console as console

    code, out, err = cli("compare", str(CPU), "--format", "csv")
    assert code == 0 and err == ""  # small files: nothing to say
    monkeypatch.setattr(console, "LARGE_BYTES", 0)
    code, out, err = cli("compare", str(CPU), "--format", "csv")
    assert code == 0 and re.fullmatch(r"loaded 6 result files \(\d+\.\d kB\) in \d+\.\d s\n", err), err
    code, out, err = cli("check", "-b", str(CPU), "-c", str(CPU))
    assert code == 0 and re.search(r"read the baseline and current results \(\d+\.\d kB\) in \d+\.\d s", err), err


def test_on_a_terminal_compare_asks_which_run(tmp_path, monkeypatch, capsys):
    import io
    import shutil
    import sys

    from inferneo_bench.commands import compare as compare_cmd

    for name in ("run-a", "run-b"):
        shutil.copytree(CPU, tmp_path / name)

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.setattr(sys, "stdin", Tty())
    monkeypatch.setattr(sys, "stdout", Tty())
    asked = []
    monkeypatch.setattr(typer, "prompt", lambda text, **kw: asked.append(text) or 2)
    (chosen,) = compare_cmd._pick_runs([str(tmp_path)])
    assert asked == ["Compare which run (number)"]
    listed = [line for line in sys.stdout.getvalue().splitlines() if line.strip()[:1].isdigit()]
    assert len(listed) == 2 and chosen == Path(listed[1].split()[1])  # the second run listed


def test_run_table_latency_columns_switch_to_seconds_past_10000_ms():
    from types import SimpleNamespace

    from inferneo_bench.runner.summary_table import _latency_column

    def outcome(ms):
        return SimpleNamespace(result=SimpleNamespace(summary={"p99_ttft_ms": ms}))

    assert _latency_column("p99_ttft_ms", "TTFT\np99", [outcome(60.0), outcome(9_999.0)]) == (
        "TTFT\np99\nms",
        ["60.0", "9,999"],
    )
    assert _latency_column("p99_ttft_ms", "TTFT\np99", [outcome(60.0), outcome(178_400.0), outcome(None)]) == (
        "TTFT\np99\ns",
        ["0.06", "178.4", "-"],
    )
