from __future__ import annotations

import json
import subprocess
import sys

import pytest

from inferneo_bench import results
from inferneo_bench.results import RequestRecord, RunInfo, RunResult, StepRecord


def make_result() -> RunResult:
    return RunResult(
        run=RunInfo(
            id="r1",
            started_at="2026-11-27T00:00:00+00:00",
            finished_at="2026-11-27T00:01:00+00:00",
            command="inferneo-bench run",
            seed=0,
            engine="sim",
            status="completed",
            validity={"valid": True, "failed": []},
        ),
        environment={"python": "3.11"},
        model={"name": "tiny"},
        workload={"name": "default", "content_hash": "abc"},
        strategy={"name": "fixed_size", "config": {"max_num_seqs": 8}},
        summary={"completed": 1, "mean_ttft_ms": 12.5, "p99_ttft_ms": None},
        requests=[
            RequestRecord(
                request_id="0",
                arrival_s=0.0,
                prompt_tokens=10,
                output_tokens=3,
                target_output_tokens=3,
                max_tokens=3,
                priority=5,
                status="completed",
                enqueued_s=0.0,
                scheduled_s=0.001,
                first_token_s=0.01,
                finish_s=0.03,
                itl_s=[0.01, 0.01],
            )
        ],
        steps=[
            StepRecord(
                index=0,
                start_s=0.001,
                batch_id=0,
                batch_size=1,
                new_tokens=10,
                padded_tokens=0,
                step_ms=9.0,
                scheduler_us=3.5,
                queue_depth=0,
                events=["cap 4->5: met target"],
            )
        ],
        telemetry={"available": False, "reason": "NVML Shared Library Not Found", "samples": []},
    )


def test_result_round_trip(tmp_path):
    original = make_result()
    path = results.save(original, tmp_path / "run" / "fixed_size")
    assert path == tmp_path / "run" / "fixed_size" and path.is_dir()
    assert sorted(p.name for p in path.iterdir()) == ["requests.parquet", "result.json", "steps.parquet"]
    loaded = results.load(path)
    assert loaded == original
    assert results.load(path / "result.json") == original
    assert list(json.loads((path / "result.json").read_text())) == list(results.TOP_LEVEL_KEYS)
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".")]  # no temp folder left
    assert results.save(original, tmp_path / "run" / "again.json") == tmp_path / "run" / "again"  # old call form


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda text: text[: len(text) // 2], "corrupt JSON"),
        (lambda text: json.dumps({**json.loads(text), "schema_version": 99}), "schema_version 99"),
        (
            lambda text: json.dumps({k: v for k, v in json.loads(text).items() if k != "summary"}),
            "missing key 'summary'",
        ),
        (lambda text: json.dumps({**json.loads(text), "run": {"id": "x"}}), "missing key 'run.started_at'"),
    ],
    ids=["corrupt", "wrong-version", "missing-key", "missing-run-key"],
)
def test_bad_result_files_fail_with_one_line(tmp_path, mutate, expected):
    path = results.save(make_result(), tmp_path / "r") / "result.json"
    path.write_text(mutate(path.read_text()))
    with pytest.raises(results.ResultFileError) as info:
        results.load(path)
    message = str(info.value)
    assert str(path) in message and expected in message and "\n" not in message


def test_missing_result_file(tmp_path):
    with pytest.raises(results.ResultFileError, match="no such result file"):
        results.load(tmp_path / "nope.json")


def test_env_json_without_gpu_reports_nvml_reason(cli):
    code, out, _ = cli("env", "--json")
    assert code == 0
    info = json.loads(out)
    assert info["torch"]["version"]
    assert info["cpu"]["cores"] >= 1
    if not info["nvml"]["available"]:
        assert info["nvml"]["reason"]  # the exact reason, never an empty "unavailable"
        assert info["nvml"]["gpus"] == []


def test_env_table(cli):
    code, out, _ = cli("env")
    assert code == 0 and "nvml" in out and "torch" in out


def test_help_does_not_import_torch():
    code = (
        "import sys; from inferneo_bench.cli import app; from typer.testing import CliRunner; "
        "r = CliRunner().invoke(app, ['--help']); assert r.exit_code == 0, r.output; "
        "print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_user_error_is_one_line_exit_2(cli, tmp_path, monkeypatch):
    from inferneo_bench import cli as cli_module
    from inferneo_bench.errors import UserError

    @cli_module.app.command("boom-test", hidden=True)
    def boom() -> None:
        raise UserError(f"{tmp_path}/x.csv:3: bad value 'abc' in column prompt_tokens; fix the row")

    code, out, err = cli("boom-test")
    assert code == 2
    assert err.strip().count("\n") == 0 and "x.csv:3" in err and "Traceback" not in err
