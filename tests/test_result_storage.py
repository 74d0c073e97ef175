"""Result entries (schema 2): folder layout, Parquet tables that pandas and DuckDB read with the very values the
summary was computed from, the keep-steps rule, atomic writes, discovery by marker, schema-1 files."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from inferneo_bench import result_tables, results
from inferneo_bench.metrics import summarize
from inferneo_bench.steplog import StepLog, StepStats

REPO = Path(__file__).resolve().parents[1]
V1 = REPO / "tests" / "data" / "v1" / "adaptive-v1.json"
WORKLOAD = str(REPO / "results" / "baseline" / "bursty-150.jsonl")
SIM = [
    "--engine",
    "sim",
    "--profile",
    "tiny-cpu",
    "--workload",
    WORKLOAD,
    "--min-requests",
    "1",
    "--min-duration",
    "0",
    "--quiet",
]


def run(cli, out: Path, *args: str) -> list[Path]:
    code, stdout, err = cli("run", *SIM, "--out", str(out), "--run-id", "r", *args)
    assert code == 0, err
    return [Path(line) for line in stdout.split()]


@pytest.fixture(scope="module")
def adaptive(tmp_path_factory) -> Path:
    """60 requests through adaptive (it makes cap-change events), every step kept."""
    from inferneo_bench.cli import main

    out = tmp_path_factory.mktemp("adaptive")
    with pytest.raises(SystemExit) as done:
        main(["run", *SIM, "-n", "60", "--strategy", "adaptive", "--out", str(out), "--run-id", "r"])
    assert not done.value.code
    return out / "r" / "adaptive"


def test_entry_folder_holds_json_and_parquet(adaptive):
    assert sorted(p.name for p in adaptive.iterdir()) == ["requests.parquet", "result.json", "steps.parquet"]
    meta = json.loads((adaptive / "result.json").read_text())
    assert meta["schema_version"] == 2 and meta["tool"]["name"] == "inferneo-bench"
    assert list(meta) == list(results.TOP_LEVEL_KEYS)
    assert meta["requests"]["file"] == "requests.parquet" and meta["requests"]["count"] == 60
    assert meta["steps"]["rows"] == "steps.parquet" and meta["steps"]["num_steps"] == meta["summary"]["num_steps"]
    assert meta["steps"]["events"] and all(text.startswith("cap ") for _, _, text in meta["steps"]["events"])
    assert not [p for p in adaptive.parent.iterdir() if p.name.startswith(".")]  # no temporary folder left


def test_pandas_reads_the_ttft_the_summary_was_computed_from(adaptive):
    pd = pytest.importorskip("pandas")
    summary = results.load_summary(adaptive).summary
    df = pd.read_parquet(adaptive / "requests.parquet")
    done = df[(df.status == "completed") & ~df.warmup]
    ttft_ms = (done.first_token_s - done.arrival_s).to_numpy() * 1000.0
    assert len(ttft_ms) == summary["completed"]
    assert float(np.percentile(ttft_ms, 99)) == summary["p99_ttft_ms"]  # exactly: the same doubles
    assert float(ttft_ms.mean()) == summary["mean_ttft_ms"] and float(np.median(ttft_ms)) == summary["median_ttft_ms"]
    itl_ms = np.concatenate(done.itl_ns.to_numpy()) / 1e9 * 1000.0
    assert float(np.percentile(itl_ms, 99)) == summary["p99_itl_ms"]


def test_duckdb_reads_both_tables(adaptive):
    duckdb = pytest.importorskip("duckdb")
    summary = results.load_summary(adaptive).summary
    con = duckdb.connect()
    completed, max_ttft = con.execute(
        f"select count(*), max(first_token_s - arrival_s) * 1000 from '{adaptive / 'requests.parquet'}' "
        "where status = 'completed'"
    ).fetchone()
    assert completed == summary["completed"] and max_ttft == pytest.approx(summary["max_ttft_ms"], rel=1e-12)
    steps, mean_batch = con.execute(f"select count(*), avg(batch_size) from '{adaptive / 'steps.parquet'}'").fetchone()
    assert steps == summary["num_steps"] and mean_batch == pytest.approx(summary["mean_batch_size"])
    events = con.execute(f"select sum(len(events)) from '{adaptive / 'steps.parquet'}'").fetchone()[0]
    assert events == len(json.loads((adaptive / "result.json").read_text())["steps"]["events"])


def test_round_trip_recomputes_the_summary_exactly(adaptive):
    r = results.load(adaptive)
    assert r.records_loaded and r.source == adaptive
    assert summarize(r.requests, r.steps, r.telemetry, r.summary["slo"]) == r.summary
    assert all(len(x.itl_s) == max(0, x.output_tokens - 1) for x in r.requests if x.status == "completed")
    again = results.save(r, adaptive.parent / "copy")
    assert results.load(again) == r


def test_load_summary_reads_no_table(adaptive, tmp_path):
    entry = shutil.copytree(adaptive, tmp_path / "adaptive")
    (entry / "requests.parquet").unlink()
    (entry / "steps.parquet").unlink()
    r = results.load_summary(entry)
    assert not r.records_loaded and r.requests == [] and r.summary["completed"] == 60
    assert r.steps.num_steps == r.summary["num_steps"] and not r.steps.rows_kept  # aggregates only
    with pytest.raises(results.ResultFileError, match="unreadable table") as info:
        results.load(entry)
    assert "\n" not in str(info.value) and str(entry) in str(info.value)


def test_long_runs_keep_step_aggregates_with_the_same_summary(cli, tmp_path):
    """The keep-steps rule: past the limit no per-step rows are stored, the summary is the same to the last
    digit (its step figures come from exact aggregates), events are kept, and it recomputes."""
    (full,) = run(cli, tmp_path / "full", "-n", "40", "--strategy", "adaptive", "--keep-steps", "all")
    (agg,) = run(cli, tmp_path / "agg", "-n", "40", "--strategy", "adaptive", "--keep-steps", "100")
    a, b = results.load(full), results.load(agg)
    assert b.steps.num_steps > 100 and not b.steps.rows_kept and len(b.steps) == 0
    assert (
        not (agg / "steps.parquet").exists() and json.loads((agg / "result.json").read_text())["steps"]["rows"] is None
    )
    assert a.summary == b.summary
    assert summarize(b.requests, b.steps, b.telemetry, b.summary["slo"]) == b.summary
    assert b.steps.events == a.steps.events  # (step index, time, text) of every cap change
    sa, sb = a.steps.stats(), b.steps.stats()
    assert (sa.num_steps, sa.batch_size_counts, sa.new_tokens, sa.padded_tokens, sa.idle_slots) == (
        sb.num_steps,
        sb.batch_size_counts,
        sb.new_tokens,
        sb.padded_tokens,
        sb.idle_slots,
    )
    assert {s: row[:8] for s, row in sa.per_second.items()} == {s: row[:8] for s, row in sb.per_second.items()}
    assert sa.step_ms.bins == sb.step_ms.bins and sa.step_ms.count == sb.step_ms.count


def test_steplog_folds_in_chunks_to_the_same_aggregates():
    rng = np.random.default_rng(1)
    rows = [
        (i * 0.013, i // 7, int(rng.integers(1, 9)), int(rng.integers(1, 50)), int(rng.integers(0, 9)),
         float(rng.uniform(1, 30)), float(rng.uniform(1, 90)), int(rng.integers(0, 400)), int(rng.integers(0, 3)))
        for i in range(5000)
    ]  # fmt: skip
    kept, folded = StepLog(None), StepLog(10)
    for log in (kept, folded):
        for row in rows:
            log.append(*row)
        log.finish()
    assert kept.rows_kept and not folded.rows_kept and folded.num_steps == kept.num_steps == 5000
    a, b = kept.stats(), folded.stats()
    assert (a.num_steps, a.slot_steps, a.batch_size_counts, a.new_tokens, a.padded_tokens) == (
        b.num_steps,
        b.slot_steps,
        b.batch_size_counts,
        b.new_tokens,
        b.padded_tokens,
    )
    assert a.median_batch_size() == float(np.median([r[2] for r in rows]))
    assert a.mean_batch_size() == float(np.mean([r[2] for r in rows]))
    assert StepStats.from_dict(json.loads(json.dumps(b.to_dict()))) == b  # stored form round-trips


def test_schema_1_file_still_loads_and_compares(cli):
    r = results.load(V1)
    assert r.schema_version == 1 and r.records_loaded and len(r.requests) == 12
    again = summarize(r.requests, r.steps, r.telemetry, r.summary["slo"])
    assert {k: again[k] for k in r.summary} == r.summary  # (keys added since the file was written: not in it)
    assert any(s.events for s in r.steps)
    summary_only = results.load_summary(V1)
    assert summary_only.summary == r.summary and summary_only.requests == []
    assert results.find_result_files([V1.parent]) == [V1]
    code, out, err = cli("compare", str(V1), "--format", "csv")
    assert code == 0, err
    assert "adaptive" in out


def test_discovery_takes_results_by_marker_not_every_json(adaptive, tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(adaptive, run_dir / "adaptive")
    shutil.copy(V1, run_dir / "old.json")
    (run_dir / "sweep.json").write_text(json.dumps({"schema_version": 2, "tool": {"name": "inferneo-bench"}}))
    (run_dir / "notes.json").write_text("{}")
    (run_dir / "adaptive" / "extra.json").write_text("{}")  # inside an entry: never a result itself
    (run_dir / ".adaptive.x.tmp").mkdir()  # a crashed save's temporary folder
    assert results.find_result_files([run_dir]) == [run_dir / "adaptive", run_dir / "old.json"]
    assert results.find_result_files([tmp_path]) == [run_dir / "adaptive", run_dir / "old.json"]
    assert results.find_result_files([run_dir / "adaptive" / "result.json"]) == [run_dir / "adaptive"]
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.json").write_text("{}")
    with pytest.raises(results.ResultFileError, match="holds no inferneo-bench results"):
        results.find_result_files([tmp_path / "empty"])


def test_a_failed_save_leaves_the_old_entry_and_no_temporary_folder(adaptive, tmp_path, monkeypatch):
    r = results.load(adaptive)
    entry = results.save(r, tmp_path / "adaptive")
    before = (entry / "result.json").read_bytes()

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(result_tables, "write_steps", crash)
    with pytest.raises(OSError, match="disk full"):
        results.save(r, entry)
    assert (entry / "result.json").read_bytes() == before  # the old result, whole
    assert sorted(p.name for p in tmp_path.iterdir()) == ["adaptive"]
    with pytest.raises(OSError):
        results.save(r, tmp_path / "new")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["adaptive"]  # nothing half-written


def test_session_keeps_no_records_after_saving(tmp_path):
    from inferneo_bench.runner.session import RunOptions, run_session

    options = RunOptions(
        strategies=["fixed_size", "continuous"],
        workload=WORKLOAD,
        engine="sim",
        profile="tiny-cpu",
        num_requests=20,
        out=tmp_path,
        run_id="s",
        command="test",
    )
    outcomes, interrupted = run_session(options)
    assert not interrupted
    for o in outcomes:
        assert not o.result.records_loaded and o.result.requests == [] and len(o.result.steps) == 0
        assert o.result.steps.num_steps == o.result.summary["num_steps"]
        full = results.records_of(o.result)
        assert len(full.requests) == 20 and summarize(full.requests, full.steps, full.telemetry) == full.summary


def test_sim_run_does_not_import_torch(tmp_path):
    import subprocess
    import sys

    code = (
        "import sys\nfrom inferneo_bench.cli import main\ntry:\n"
        f"    main(['run', *{SIM!r}, '-n', '5', '--out', {str(tmp_path)!r}, '--run-id', 'r'])\n"
        "except SystemExit as exc:\n    assert not exc.code, exc.code\n"
        "print('torch' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.stdout.strip().splitlines()[-1] == "False", out.stderr
    env = results.load_summary(tmp_path / "r" / "adaptive").environment["torch"]
    assert env["version"] and env["build"] is None and "not imported" in env["reason"]


@pytest.mark.parametrize("value", ["-1", "many", "1.5"])
def test_keep_steps_bad_value_is_one_line(cli, tmp_path, value):
    code, _, err = cli("run", *SIM, "-n", "5", "--out", str(tmp_path), "--keep-steps", value)
    assert code == 2 and "--keep-steps" in err and "'all'" in err and err.strip().count("\n") == 0
    assert not any(tmp_path.iterdir())  # refused before any work
