"""Issue 15, kind 4: inputs that would exhaust the machine are bounded before anything is allocated: YAML
aliases refused, memory estimated before generating or building, traces streamed and read only as far as the
limits need, model shapes checked against the memory available, result files checked against it too. (Peak
memory of each case is measured by tests/benchmarks/hostile_inputs.py with /usr/bin/time -v.)"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from inferneo_bench import validation
from inferneo_bench.errors import UserError

SIM = ["--engine", "sim", "--profile", "tiny-cpu", "--min-duration", "0", "--min-requests", "1", "-q"]

BOMB = """name: bomb
seed: 0
description: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
synthetic: {num_requests: 4, prompt_tokens: 8, output_tokens: 4}
"""


def test_yaml_alias_bomb_is_refused_before_it_expands(cli, tmp_path):
    path = tmp_path / "bomb.yaml"
    path.write_text(BOMB)
    code, _, err = cli("run", *SIM, "--workload", str(path), "--out", str(tmp_path / "o"))
    assert code == 2 and f"{path}:4: YAML aliases (*name) are not allowed in a workload spec" in err


def test_a_billion_requests_are_refused_with_the_figure(cli, tmp_path):
    path = tmp_path / "huge.yaml"
    path.write_text("name: huge\nseed: 0\nsynthetic: {num_requests: 1000000000, prompt_tokens: 8, output_tokens: 4}\n")
    code, _, err = cli("run", *SIM, "--workload", str(path), "--out", str(tmp_path / "o"))
    assert code == 2
    assert "synthetic: generating num_requests 1,000,000,000 needs about 279.4 GB of memory, but" in err
    assert "use fewer requests (--num-requests)" in err


def test_replaying_is_estimated_before_it_starts(cli, tmp_path, monkeypatch):
    monkeypatch.setattr(validation, "available_memory", lambda: 100_000)
    code, _, err = cli("run", *SIM, "-n", "200", "--out", str(tmp_path / "o"))
    assert code == 2 and "replaying 200 requests" in err and "needs about" in err


def test_a_big_trace_is_read_only_as_far_as_the_limit(tmp_path):
    from inferneo_bench.workload import load_workload

    path = tmp_path / "big.csv"
    row = "2023-11-16 18:15:{:02d}.{:07d},374,44\n"
    with path.open("w") as fh:
        fh.write("TIMESTAMP,ContextTokens,GeneratedTokens\n")
        for i in range(60_000):
            fh.write(row.format(i // 1000 % 60, i % 1000 * 10000))  # one row per millisecond
    workload = load_workload(path, num_requests=20)
    assert workload.num_requests == 20
    assert workload.stats["rows_read"] == 21 and workload.stats["stopped_at_line"] == 22
    window = load_workload(path, duration_s=0.05)  # 50 rows per 50 ms: the window, then one row past it
    assert window.num_requests == 50 and window.stats["rows_read"] == 51


def test_hostile_model_config_is_refused_before_allocating(tmp_path):
    from inferneo_bench.engine import load_engine

    folder = tmp_path / "hostile"
    folder.mkdir()
    config = {"model_type": "llama", "hidden_size": 65536, "num_hidden_layers": 1000, "num_attention_heads": 64,
              "intermediate_size": 262144, "vocab_size": 1000000, "max_position_embeddings": 4096}  # fmt: skip
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(UserError) as info:
        load_engine(str(folder), device="cpu")
    text = str(info.value)
    assert "model 'hostile' (" in text and "B parameters, float32) needs about" in text and "TB of memory" in text


def test_presets_are_checked_against_memory_too(monkeypatch):
    from inferneo_bench.engine import load_engine

    monkeypatch.setattr(validation, "available_memory", lambda: 1 << 30)
    with pytest.raises(UserError, match=r"model 'llama-8b' \(8.03 B parameters, float32\) needs about 29.9 GB"):
        load_engine("llama-8b", device="cpu")


def test_a_result_file_too_big_for_memory_is_refused(cli, tmp_path, monkeypatch):
    code, out, err = cli("run", *SIM, "-n", "8", "--out", str(tmp_path), "--run-id", "r")
    assert code == 0, err
    monkeypatch.setattr(validation, "available_memory", lambda: 1000)
    code, _, err = cli("compare", str(tmp_path / "r"))
    assert code == 2 and "reading this" in err and "result file needs about" in err


def test_check_reads_summaries_only(cli, tmp_path, monkeypatch):
    """A result entry's tables are never opened by check (results.load_summary reads result.json only)."""
    from inferneo_bench import results

    code, out, err = cli("run", *SIM, "-n", "8", "--out", str(tmp_path), "--run-id", "r")
    entry = Path(out.split()[0])
    (entry / "requests.parquet").write_bytes(b"not parquet: check must not read it")
    code, out, err = cli("check", "-b", str(entry), "-c", str(entry))
    assert code == 0, out + err
    with pytest.raises(UserError, match="unreadable table"):
        results.load(entry)


def test_a_schema_1_file_is_summarised_from_its_head_and_tail(monkeypatch):
    """A legacy (schema-1) result holds every record inline: check and compare read only its head (up to the
    records) and its tail (telemetry), so a gigabyte-sized file costs a few megabytes of reading."""
    from inferneo_bench import results

    path = Path(__file__).parent / "data" / "results" / "chat-cpu" / "fixed_size.json"
    full = results.load(path)
    monkeypatch.setattr(results, "V1_HEAD_CHUNK", 512)  # head and tail spread over many small reads
    head = results.load_summary(path)
    assert head.summary == full.summary and head.telemetry == full.telemetry and head.requests == []
    monkeypatch.setattr(results, "_read_json", lambda p: pytest.fail("parsed the whole file"))
    assert results.load_summary(path).summary == full.summary
