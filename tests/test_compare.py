"""`inferneo-bench compare`: goldens for every format, exact aggregation/delta/best decisions, comparability,
error handling and the seed-claims table. Result files: tests/data/results/ (made by tests/data/make_results.py).

Regenerate the goldens after an intended output change with `UPDATE_GOLDEN=1 pytest tests/test_compare.py`
and review the diff.
"""

from __future__ import annotations

import copy
import json
import os
import sys
from pathlib import Path

import pytest

from inferneo_bench import results
from inferneo_bench.errors import UserError
from inferneo_bench.report import compat, seed, tables

REPO = Path(__file__).resolve().parents[1]
DATA = Path("tests/data")
CPU = DATA / "results" / "chat-cpu"
GPU = DATA / "results" / "chat-gpu"
GOLDEN = REPO / "tests" / "data" / "golden"
WIDTH = 150


@pytest.fixture(autouse=True)
def _at_repo_root(monkeypatch):
    monkeypatch.chdir(REPO)  # goldens hold relative paths


def golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("UPDATE_GOLDEN"):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    assert text == path.read_text(encoding="utf-8"), f"output differs from {path}; UPDATE_GOLDEN=1 to accept"


def load_dir(folder: Path):
    files = results.find_result_files([folder])
    return [results.load(f) for f in files], files


def build(folder: Path, **kw) -> tables.Comparison:
    res, files = load_dir(folder)
    return tables.compare(res, files, **kw)


# ------------------------------------------------------------------------------------------------------ goldens


@pytest.mark.parametrize("folder", [CPU, GPU], ids=["cpu", "gpu-trials"])
def test_golden_table_plain(folder):
    comp = build(folder)
    golden(f"{folder.name}.table.txt", tables.render_text(tables.to_rich(comp), width=WIDTH))


@pytest.mark.parametrize("folder", [CPU, GPU], ids=["cpu", "gpu-trials"])
@pytest.mark.parametrize("fmt", ["markdown", "csv", "json"])
def test_golden_exports_through_cli(cli, folder, fmt):
    code, out, err = cli("compare", str(folder), "--format", fmt)
    assert (code, err) == (0, "")
    golden(f"{folder.name}.{ {'markdown': 'md'}.get(fmt, fmt) }", out)


def test_cli_table_is_the_rich_rendering_plus_notes(cli):
    code, out, err = cli("compare", str(CPU), "--width", str(WIDTH))
    assert (code, err) == (0, "")
    expected = (GOLDEN / "chat-cpu.table.txt").read_text(encoding="utf-8")
    assert out.startswith(expected)
    notes = out[len(expected) :].splitlines()
    assert notes == [
        "note: Goodput: n/a in every result (no SLO was set; run with --slo ttft_ms=..,tpot_ms=..)",
        "note: GPU kernel-busy: n/a in every result (GPU telemetry unavailable: NVML Shared Library Not Found)",
        "note: Energy per output token: n/a in every result (GPU telemetry unavailable: NVML Shared Library Not Found)",
        "note: throughput_optimized: INVALID run (throughput_optimized.json): arrival_lag_p99_ms 14.2 > 10.0 "
        "(harness fell behind)",
    ]


@pytest.mark.parametrize("folder", [CPU, GPU], ids=["cpu", "gpu-trials"])
def test_golden_seed_table(cli, folder):
    comp_text = tables.render_text(seed.to_rich(seed.check_claims(load_dir(folder)[0])), width=WIDTH)
    golden(f"{folder.name}.seed.txt", comp_text)
    code, out, _ = cli("compare", str(folder), "--claims", "--format", "markdown")
    assert code == 0
    golden(f"{folder.name}.seed.md", out)


def test_markdown_fits_a_job_summary():
    md = tables.to_markdown(build(GPU))
    table_lines = [line for line in md.splitlines() if line.startswith("|")]
    assert len({line.count("|") for line in table_lines}) == 1  # every row has the same number of cells
    assert "| fixed_size (3 trials) (baseline) |" in table_lines[0]
    assert all("\n" not in line for line in table_lines)


def test_test_data_is_reproducible(tmp_path, monkeypatch):
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_results", REPO / "tests" / "data" / "make_results.py")
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "make_results", module)  # dataclasses look their module up
    spec.loader.exec_module(module)
    for path in module.main(tmp_path):
        committed = REPO / "tests" / "data" / "results" / path.relative_to(tmp_path)
        assert path.read_bytes() == committed.read_bytes(), committed


# ------------------------------------------------------------------------------------------- exact decisions


def _row(comp: tables.Comparison, key: str) -> tables.Row:
    return next(r for r in comp.rows if r.metric.key == key)


def test_trials_aggregate_to_median_with_min_max():
    comp = build(GPU)
    assert [c.header for c in comp.columns] == ["fixed_size (3 trials)", "adaptive (3 trials)", "continuous"]
    res = [results.load(GPU / f"fixed_size-trial{i}.json").summary["p99_ttft_ms"] for i in (1, 2, 3)]
    cell = _row(comp, "p99_ttft_ms").cells[0]
    assert (cell.value, cell.lo, cell.hi, cell.count) == (sorted(res)[1], min(res), max(res), 3)
    single = _row(comp, "p99_ttft_ms").cells[2]
    assert (single.lo, single.hi) == (None, None)


def test_delta_direction_and_best_marking():
    comp = build(CPU)
    labels = [c.label for c in comp.columns]
    assert comp.baseline_label == "fixed_size" and labels[0] == "fixed_size"
    ttft = _row(comp, "p99_ttft_ms")
    base = results.load(CPU / "fixed_size.json").summary["p99_ttft_ms"]
    cont = results.load(CPU / "continuous.json").summary["p99_ttft_ms"]
    cell = ttft.cells[labels.index("continuous")]
    assert cell.delta_pct == pytest.approx((cont - base) / base * 100)
    assert cell.verdict == "better" and cell.best  # lower is better for latency
    tput = _row(comp, "output_throughput")
    lat_opt = tput.cells[labels.index("latency_optimized")]
    assert -1 < lat_opt.delta_pct < 0 and lat_opt.verdict == "same"  # -0.4%: inside the ±1% noise band
    thr_ttft = ttft.cells[labels.index("throughput_optimized")]
    assert thr_ttft.delta_pct > 1 and thr_ttft.verdict == "worse"  # lower is better for latency
    adaptive = tput.cells[labels.index("adaptive")]
    assert adaptive.delta_pct > 1 and adaptive.verdict == "better"  # +1.6%: outside the band
    assert [c.best for c in tput.cells].count(True) == 1
    assert ttft.cells[0].delta_pct == 0 and ttft.cells[0].verdict == "same"
    batch = _row(comp, "mean_batch_size")  # no direction: no verdict, no best
    assert all(c.verdict is None and not c.best for c in batch.cells)
    validity = _row(comp, "validity")
    assert [c.text for c in validity.cells] == ["valid"] * 4 + ["INVALID", "valid"]
    rejected = _row(comp, "rejected")  # every strategy rejected the one over-long prompt: a tie is no win
    assert [c.value for c in rejected.cells] == [1.0] * 6 and not any(c.best for c in rejected.cells)


@pytest.mark.parametrize(
    ("delta", "verdict"), [(0.0, "same"), (0.99, "same"), (-0.99, "same"), (1.0, "better"), (-1.0, "worse")]
)
def test_noise_band_is_not_coloured(delta, verdict):
    higher = tables.METRICS["output_throughput"]
    assert tables._verdict(higher, delta) == verdict
    assert tables._verdict(tables.METRICS["p99_ttft_ms"], delta) == {"better": "worse", "worse": "better"}.get(
        verdict, verdict
    )


def test_failed_and_cancelled_rows_appear_only_when_some_result_has_them():
    res, _ = load_dir(CPU)
    assert "failed" not in tables.parse_metrics(None, res) and "cancelled" not in tables.parse_metrics(None, res)
    changed = copy.deepcopy(res)
    changed[2].summary["cancelled"] = 3
    keys = tables.parse_metrics(None, changed)
    assert keys[keys.index("rejected") + 1 :] == ["cancelled", "validity"]


def test_baseline_option_and_labels(cli):
    comp = build(CPU, baseline="continuous")
    assert comp.baseline_label == "continuous"
    assert tables.resolve_baseline(comp.columns, "latency") == 3  # short names accepted
    res, files = load_dir(CPU)
    no_fixed = [i for i, f in enumerate(files) if f.name != "fixed_size.json"]
    first = tables.compare([res[i] for i in no_fixed], [files[i] for i in no_fixed])
    assert first.baseline_label == "adaptive"  # no fixed_size: the first column (strategies in canonical order)
    code, out, err = cli("compare", str(CPU), "--baseline", "nope")
    assert code == 2 and out == ""
    assert err.strip().splitlines() == [
        "error: --baseline nope: no column by that name; the columns are: fixed_size, adaptive, coalescing, "
        "latency_optimized, throughput_optimized, continuous"
    ]


def test_duplicate_strategies_are_disambiguated():
    res, files = load_dir(CPU)
    fixed = res[[f.name for f in files].index("fixed_size.json")]
    other = copy.deepcopy(fixed)
    other.run.id = "chat-cpu-2"
    labelled = copy.deepcopy(fixed)
    labelled.run.label = "delay=10ms"
    cols = tables.build_columns([fixed, other, labelled], [Path("a.json"), Path("b.json"), Path("c.json")])
    assert [c.label for c in cols] == ["fixed_size chat-cpu", "fixed_size chat-cpu-2", "fixed_size [delay=10ms]"]


def test_metrics_option(cli):
    code, out, _ = cli("compare", str(CPU), "--metrics", "mean_e2el_ms,completed,validity", "--format", "csv")
    assert code == 0
    assert sorted({line.split(",")[0] for line in out.splitlines()[1:]}) == ["completed", "mean_e2el_ms", "validity"]
    code, _, err = cli("compare", str(CPU), "--metrics", "p99_ttft,mean_e2el_ms")
    assert code == 2 and "unknown metric p99_ttft" in err and len(err.strip().splitlines()) == 1


# ----------------------------------------------------------------------------------------------- comparability


def _copy_with(tmp_path: Path, name: str, section: str, key: str, value) -> Path:
    data = json.loads((CPU / "adaptive.json").read_text())
    data[section][key] = value
    path = tmp_path / name
    path.write_text(json.dumps(data))
    return path


@pytest.mark.parametrize(
    "section,key,value,phrase",
    [
        ("workload", "content_hash", "sha256:other", "workload content hash differs"),
        ("model", "name", "llama-1b", "model differs"),
        ("model", "device_type", "cuda", "device type differs"),
        ("run", "engine", "sim", "engine differs"),
    ],
)
def test_incompatible_results_refused_and_forced(cli, tmp_path, section, key, value, phrase):
    odd = _copy_with(tmp_path, "odd.json", section, key, value)
    code, out, err = cli("compare", str(CPU / "fixed_size.json"), str(odd))
    assert code == 2 and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and phrase in lines[0] and "--force" in lines[0]
    assert repr(value) in lines[0] and str(odd) in lines[0]
    code, out, err = cli("compare", str(CPU / "fixed_size.json"), str(odd), "--force", "--format", "json")
    assert code == 0
    assert err.startswith(f"warning: comparing anyway (--force): {phrase}")
    assert json.loads(out)["warnings"] == [err.strip()]


def test_compat_lists_every_difference():
    a = results.load(CPU / "fixed_size.json")
    b = copy.deepcopy(a)
    b.model["name"], b.run.engine = "other", "sim"
    diffs = compat.differences([a, b], ["a.json", "b.json"])
    assert diffs == [
        "model differs: 'tiny' (a.json) vs 'other' (b.json)",
        "engine differs: 'torch' (a.json) vs 'sim' (b.json)",
    ]
    with pytest.raises(UserError):
        compat.check([a, b])


def test_corrupt_result_file_is_one_line_exit_2(cli, tmp_path):
    bad = tmp_path / "adaptive.json"
    bad.write_text('{"schema_version": 1, "run": ')
    code, out, err = cli("compare", str(CPU / "fixed_size.json"), str(bad))
    assert code == 2 and out == ""
    assert err.strip().splitlines() == [
        f"error: {bad}: corrupt JSON at line 1 column 30 (Expecting value); re-run to regenerate it"
    ]
    code, _, err = cli("compare", str(tmp_path / "missing"))
    assert code == 2 and len(err.strip().splitlines()) == 1


def test_bad_options(cli):
    assert cli("compare", str(CPU), "--format", "xml")[0] == 2
    code, _, err = cli("compare", str(CPU), "--svg")
    assert code == 2 and "--svg needs --plots" in err


# ----------------------------------------------------------------------------------------------- seed claims


def _fake(strategy: str, tput: float, e2el: float, util: float | None) -> results.RunResult:
    r = results.load(CPU / "fixed_size.json")
    r.strategy = {"name": strategy, "config": {}}
    r.summary = {"output_throughput": tput, "mean_e2el_ms": e2el, "gpu_util_mean": util}
    return r


def test_seed_claims_verdicts_hand_computed():
    res = [
        _fake("fixed_size", 100.0, 1000.0, 50.0),
        _fake("adaptive", 150.0, 900.0, None),  # +50% within +40..60; -10% latency: worse than -20..-30
        _fake("coalescing", 190.0, 700.0, 80.0),  # +90%: better than claimed; -30%: better than -10..-20
        _fake("latency_optimized", 90.0, 500.0, 40.0),  # -10% throughput: better than -20..-30 (smaller cost)
        # throughput_optimized missing entirely
    ]
    got = {(c.strategy, c.dimension): (c.verdict, c.detail, c.measured_pct) for c in seed.check_claims(res)}
    assert got[("adaptive", "throughput")] == ("held", "within range", 50.0)
    assert got[("adaptive", "latency")] == ("not held", "worse than claimed", -10.0)
    assert got[("adaptive", "gpu_utilization")][:2] == ("not measurable", "no GPU telemetry (NVML)")
    assert got[("coalescing", "throughput")][:2] == ("held", "better than claimed")
    assert got[("coalescing", "latency")][:2] == ("held", "better than claimed")
    assert got[("coalescing", "gpu_utilization")] == ("held", "better than claimed", 60.0)
    assert got[("latency_optimized", "throughput")][:2] == ("held", "better than claimed")
    assert got[("latency_optimized", "latency")] == ("held", "within range", -50.0)
    assert got[("latency_optimized", "gpu_utilization")] == ("held", "within range", -20.0)
    assert got[("throughput_optimized", "throughput")][:2] == ("not measurable", "no throughput_optimized result")
    no_base = seed.check_claims(res[1:])
    assert {c.detail for c in no_base} == {"no fixed_size result to compare against"}


def test_seed_table_prints_its_definitions(cli):
    code, out, _ = cli("compare", str(CPU), "--seed-table", "--width", "200")  # the old name still works
    assert code == 0
    assert "throughput = output_throughput: output tokens/s over the run" in out
    assert "latency = mean_e2el_ms: mean end-to-end latency per request" in out
    data = json.loads(cli("compare", str(CPU), "--claims", "--format", "json")[1])
    assert data["definitions"]["latency"]["summary_key"] == "mean_e2el_ms"
    assert {c["verdict"] for c in data["claims"] if c["metric"] == "gpu_utilization"} == {"not measurable"}


def test_narrow_terminal_breaks_headers_instead_of_cutting_them(cli):
    code, out, _ = cli("compare", str(CPU), "--width", "100", "--metrics", "output_throughput,validity")
    assert code == 0
    assert "…" not in out
    assert "latency_" in out and "optimized" in out and "throughput_" in out
    assert max(len(line) for line in out.splitlines() if line.startswith(("┃", "│"))) <= 100


def test_seed_claims_from_invalid_runs_say_so():
    base, mine = _fake("fixed_size", 100.0, 1000.0, None), _fake("adaptive", 150.0, 750.0, None)
    mine.run.validity = {"valid": False, "failed": ["8 measured requests < minimum 50"]}
    got = {c.dimension: c for c in seed.check_claims([base, mine]) if c.strategy == "adaptive"}
    assert got["throughput"].verdict == "held"
    assert got["throughput"].detail == "within range (INVALID run)"
    assert got["gpu_utilization"].detail == "no GPU telemetry (NVML)"  # not measurable: nothing to qualify
