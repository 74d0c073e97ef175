"""Issue 15, kind 1: every value that enters is validated first, by one layer (inferneo_bench/validation.py):
options, spec fields, trace cells, SchedulerConfig fields, model configs, profiles and result files. Each
example of the issue ends in one line and exit 2, before any work (no run folder is left behind)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from inferneo_bench import validation
from inferneo_bench.errors import UserError

SIM = ["--engine", "sim", "--profile", "tiny-cpu", "--min-duration", "0", "--min-requests", "1", "-q"]


def run_sim(cli, tmp_path: Path, *args: str) -> tuple[int, str, str]:
    return cli("run", *SIM, "--num-requests", "6", "--out", str(tmp_path / "out"), *args)


def one_line_exit_2(code: int, out: str, err: str, *phrases: str) -> str:
    assert code == 2, (code, out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "internal error" not in lines[0], err
    for phrase in phrases:
        assert phrase in lines[0], (phrase, lines[0])
    return lines[0]


@pytest.mark.parametrize(
    ("args", "phrases"),
    [
        (["--slo", "ttft_ms=inf"], ["--slo ttft_ms must be a finite number, got inf"]),
        (["--slo", "ttft_ms=nan"], ["--slo ttft_ms must be a finite number, got nan"]),
        (["--slo", "ttft_ms=-5"], ["--slo ttft_ms must be > 0, got -5.0"]),
        (["--min-duration", "nan"], ["--min-duration must be a finite number"]),
        (["--max-arrival-lag-ms", "inf"], ["--max-arrival-lag-ms must be a finite number"]),
        (["--telemetry-interval", "inf"], ["--telemetry-interval must be a finite number"]),
        (["--set", "max_queue_delay_ms=inf"], ["--set max_queue_delay_ms must be a finite number"]),
        (["--set", "max_num_seqs=99999999999999999999999"], ["--set max_num_seqs must fit a 64-bit integer"]),
        (["--warmup", "-3"], ["--warmup must be >= 0, got -3"]),
        (["--request-timeout", "nan"], ["--request-timeout must be a finite number"]),
        (["--max-model-len", "0"], ["--max-model-len must be >= 1, got 0"]),
        (["--seed", "-1"], ["--seed must be >= 0, got -1"]),
        (["--max-failed-pct", "200"], ["--max-failed-pct must be <= 100"]),
        (["--run-id", "../x"], ["--run-id '../x': a run id names one folder under --out"]),
        (["--run-id", "/tmp/abs"], ["no path separators"]),
        (["--warmup", "6"], ["--warmup 6: the workload has 6 requests, so none would be measured"]),
    ],
)
def test_bad_options_fail_first_with_one_line(cli, tmp_path, args, phrases):
    one_line_exit_2(*run_sim(cli, tmp_path, *args), *phrases)
    assert not any((tmp_path / "out").rglob("*")), "nothing may be written for a refused run"


def test_out_must_be_a_writable_folder(cli, tmp_path, monkeypatch):
    (tmp_path / "file").write_text("x")
    code, out, err = cli("run", *SIM, "-n", "4", "--out", str(tmp_path / "file"))
    one_line_exit_2(code, out, err, "is a file, not a folder")
    code, out, err = cli("run", *SIM, "-n", "4", "--out", str(tmp_path / "file" / "below"))
    one_line_exit_2(code, out, err, "cannot create")

    import errno
    import os

    def full(fd: int) -> None:  # a full disk: the probe's fsync fails with ENOSPC
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", full)
    code, out, err = cli("run", *SIM, "-n", "4", "--out", str(tmp_path / "full"))
    one_line_exit_2(code, out, err, "cannot write results", "No space left on device")


def test_free_space_is_checked_before_the_first_request(cli, tmp_path, monkeypatch):
    import shutil
    from collections import namedtuple

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage(10**6, 10**6 - 1000, 1000))
    code, out, err = cli("run", *SIM, "-n", "4", "--out", str(tmp_path / "o"))
    one_line_exit_2(code, out, err, "the results need about", "free some space or choose another --out")


@pytest.mark.parametrize(
    ("name", "text", "phrases"),
    [
        (
            "huge.csv",
            "TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:15:46.6805900,1e300,44\n",
            ["huge.csv:2: column 'ContextTokens'", "more than 1,000,000,000 tokens"],
        ),
        (
            "int64.jsonl",
            '{"arrival_s": 0, "prompt_tokens": 99999999999999999999999, "output_tokens": 4}\n',
            ["int64.jsonl:1: column 'prompt_tokens'", "more than 1,000,000,000 tokens"],
        ),
        (
            "wide.csv",
            'TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:15:46.68,"' + "9" * 140_000 + '",4\n',
            ["wide.csv:2: not a CSV row (field larger than field limit"],
        ),
        (
            "deep.jsonl",
            '{"arrival_s": 0, "prompt_tokens": 4, "output_tokens": 4}\n' + "[" * 100_000 + "]" * 100_000 + "\n",
            ["deep.jsonl:2: column '<line>': JSON nested too deeply"],
        ),
    ],
)
def test_bad_trace_cells_name_the_line(cli, tmp_path, name, text, phrases):
    path = tmp_path / name
    path.write_text(text)
    line = one_line_exit_2(*run_sim(cli, tmp_path, "--workload", str(path)), *phrases)
    assert len(line) < 400  # a short excerpt, never the 140,000-character cell


@pytest.mark.parametrize(
    ("spec", "phrases"),
    [
        ({"seed": -1}, ["seed must be >= 0, got -1"]),
        ({"synthetic": {"prompt_tokens": {"dist": "uniform", "min": "a", "max": 5}}}, ["'min' must be an integer"]),
        ({"synthetic": {"prompt_tokens": {"dist": "fixed", "value": 10**12}}}, ["'value' must be <= 1,000,000,000"]),
        ({"synthetic": {"prompt_tokens": {"dist": "lognormal", "mu": "x", "sigma": 1}}}, ["'mu' must be a number"]),
        ({"synthetic": {"output_tokens": {"dist": "empirical", "values": [4, "x"]}}}, ["'values' must be an integer"]),
    ],
)
def test_bad_spec_fields(cli, tmp_path, spec, phrases):
    base = {"name": "w", "seed": 0, "synthetic": {"num_requests": 4, "prompt_tokens": 8, "output_tokens": 4}}
    for key, value in spec.items():
        if isinstance(value, dict):
            base[key] = {**base[key], **value}
        else:
            base[key] = value
    path = tmp_path / "w.yaml"
    path.write_text(json.dumps(base))  # JSON is YAML
    one_line_exit_2(*run_sim(cli, tmp_path, "--workload", str(path)), *phrases)


def test_errors_quote_only_a_short_sanitised_excerpt_of_a_file(cli, tmp_path):
    secret = tmp_path / "shadow"
    secret.write_text("root:$6$SECRETSALT$verylonghashthatmustnotbeprinted\x1b[31m:19000:0:99999:7:::\n")
    spec = tmp_path / "w.yaml"
    spec.write_text(f"name: w\ntrace:\n  path: {secret}\n")
    line = one_line_exit_2(*run_sim(cli, tmp_path, "--workload", str(spec)), "cannot detect the trace format")
    assert "verylonghash" not in line and "\x1b" not in line
    assert validation.excerpt("a" * 100) == repr("a" * 24) + " (+76 characters)"
    assert validation.excerpt("bell\x07") == "'bell?'"


def _checkpoint(tmp_path: Path, **config: object) -> Path:
    folder = tmp_path / "ckpt"
    folder.mkdir(exist_ok=True)
    base = {"model_type": "gpt2", "n_embd": 8, "n_layer": 1, "n_head": 2, "vocab_size": 10, "n_positions": 8}
    (folder / "config.json").write_text(json.dumps({**base, **config}))
    return folder


@pytest.mark.parametrize(
    ("config", "phrase"),
    [
        ({"n_layer": "12"}, "n_layer must be an integer, got '12'"),
        ({"n_embd": -8}, "n_embd must be >= 1, got -8"),
        ({"layer_norm_epsilon": float("nan")}, "invalid config JSON"),
        ({"vocab_size": 10**30}, "vocab_size must fit a 64-bit integer"),
    ],
)
def test_bad_model_config_fields(tmp_path, config, phrase):
    from inferneo_bench.engine import load_engine

    folder = _checkpoint(tmp_path, **config)
    with pytest.raises(UserError) as info:
        load_engine(str(folder), device="cpu")
    assert phrase in str(info.value) and "\n" not in str(info.value)


def test_corrupt_safetensors_is_one_line(tmp_path):
    from inferneo_bench.engine import load_engine

    folder = _checkpoint(tmp_path)
    (folder / "model.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not a header}")
    with pytest.raises(UserError, match="model.safetensors: not a readable safetensors file"):
        load_engine(str(folder), device="cpu")


V1_RESULT = Path(__file__).parent / "data" / "results" / "chat-cpu" / "fixed_size.json"  # schema 1: records inline


@pytest.mark.parametrize(
    ("edit", "phrase"),
    [
        (lambda d: d["summary"].__setitem__("p99_ttft_ms", "fast"), "summary.p99_ttft_ms: 'fast' is not a finite"),
        (lambda d: d["requests"][0].__setitem__("arrival_s", "x"), "requests[0].arrival_s: 'x' is not a finite"),
        (lambda d: d["requests"][0].__setitem__("status", "done"), "requests[0].status: 'done' is not one of"),
        (lambda d: d["run"].__setitem__("seed", "0"), "run.seed: '0' is not an integer"),
    ],
)
def test_result_files_of_the_wrong_types_are_refused(cli, tmp_path, edit, phrase):
    data = json.loads(V1_RESULT.read_text())
    edit(data)
    path = tmp_path / "fixed_size.json"
    path.write_text(json.dumps(data))
    one_line_exit_2(*cli("compare", str(path)), phrase)


def test_result_entries_of_the_wrong_types_or_nan_are_refused(cli, tmp_path):
    code, out, err = run_sim(cli, tmp_path, "--run-id", "r")
    meta = tmp_path / "out" / "r" / "adaptive" / "result.json"
    text = meta.read_text()
    meta.write_text(text.replace('"p99_ttft_ms":', '"p99_ttft_ms":NaN,"x":', 1))
    one_line_exit_2(*cli("compare", str(meta.parent)), "invalid JSON (NaN is not valid JSON")
    meta.write_text(text.replace('"p99_ttft_ms":', '"p99_ttft_ms":"fast","x":', 1))
    one_line_exit_2(*cli("check", "-b", str(meta.parent), "-c", str(meta.parent)), "summary.p99_ttft_ms: 'fast'")


def test_validation_number_rules():
    assert validation.number(12.0, "x", integer=True) == 12
    for bad, phrase in ((True, "must be a number"), ("3", "must be a number"), (float("inf"), "finite")):
        with pytest.raises(UserError, match=phrase):
            validation.number(bad, "x")
    with pytest.raises(UserError, match="x must be > 0, got 0"):
        validation.positive(0, "x")
