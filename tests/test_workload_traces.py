"""Trace readers: the real shipped files parse to known values; hand-made rows cover every format/variant."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import numpy as np
import pytest

from inferneo_bench.errors import UserError
from inferneo_bench.workload import load_workload
from inferneo_bench.workload.traces import FORMATS, parse_datetime_ns, read_trace

TRACES = Path(__file__).resolve().parents[1] / "workloads" / "traces"
AZURE_CONV = TRACES / "AzureLLMInferenceTrace_conv.csv"


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode())
    return path


# ---- the real files ------------------------------------------------------------------------------------


@pytest.mark.parametrize("source", sorted(TRACES.glob("*.source.txt")), ids=lambda p: p.name)
def test_shipped_traces_are_byte_identical_to_their_source(source: Path) -> None:
    data_file = source.with_name(source.name.removesuffix(".source.txt"))
    expected = re.search(r"SHA-256 of this copy: ([0-9a-f]{64})", source.read_text()).group(1)
    assert hashlib.sha256(data_file.read_bytes()).hexdigest() == expected
    assert data_file.stat().st_size < 1_000_000


def test_azure_conv_known_values() -> None:
    data = read_trace(AZURE_CONV)
    assert data.format == "azure"
    assert len(data.prompt_tokens) == 19_366
    assert data.arrival_s[0] == 0.0
    assert data.arrival_s[1] == 4.314579
    assert (data.prompt_tokens[1], data.output_tokens[1]) == (396, 109)
    assert (data.prompt_tokens[0], data.output_tokens[0]) == (374, 44)
    # last row 2023-11-16 19:14:08.4025270 minus first 18:15:46.6805900
    assert data.arrival_s[-1] == pytest.approx(3501.721937, abs=1e-9)
    assert data.stats == {"rows_read": 19_366, "skipped_bad_rows": 0, "reordered": 0}


def test_azure_code_known_values() -> None:
    data = read_trace(TRACES / "AzureLLMInferenceTrace_code.csv")
    assert len(data.prompt_tokens) == 8_819
    assert data.arrival_s[1] == pytest.approx(0.052, abs=1e-12)  # 18:17:04.0319600 - 18:17:03.9799600
    assert (int(data.prompt_tokens[0]), int(data.output_tokens[-1])) == (4808, 173)


def test_mooncake_timestamps_are_milliseconds() -> None:
    path = TRACES / "mooncake_conversation_trace_first3500.jsonl"
    raw = [json.loads(line) for line in path.read_text().splitlines()]
    data = read_trace(path)
    assert data.format == "mooncake" and data.prefix_block_size == 512
    np.testing.assert_array_equal(data.arrival_s, np.array([r["timestamp"] for r in raw]) / 1000.0)
    assert data.arrival_s[-1] == 1155.0
    assert data.prefix_block_ids[1] == tuple(raw[1]["hash_ids"])
    assert all(len(ids) == -(-p // 512) for ids, p in zip(data.prefix_block_ids, data.prompt_tokens, strict=True))


def test_sharegpt_lengths_give_30731_requests() -> None:
    data = read_trace(TRACES / "sharegpt_8k_filtered_stats_llama2_tokenizer.csv")
    assert data.format == "lengths" and data.arrival_s is None
    assert len(data.prompt_tokens) == 30_731
    assert (int(data.prompt_tokens[0]), int(data.output_tokens[0])) == (74, 918)
    w = load_workload("sharegpt-lengths")
    assert w.num_requests == 30_731 and w.requests[0].arrival_s == 0.0


# ---- Azure variants ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rows", "expected"),
    [
        (["2023-11-16 18:15:46.6805900", "2023-11-16 18:15:50.9951690"], 4.314579),  # 2023: 7 digits
        (["2024-05-10 00:00:00.000000+00:00", "2024-05-10 00:00:01.250000+00:00"], 1.25),  # 2024: 6 + offset
        (["2024-05-10 23:59:59", "2024-05-11 00:00:02"], 3.0),  # no fraction, across midnight
        (["2024-05-10 12:00:00+02:00", "2024-05-10 10:00:05Z"], 5.0),  # offsets normalised to UTC
        (["2024-05-10T00:00:00.5", "2024-05-10T00:00:00.75"], 0.25),  # T separator, short fraction
    ],
)
@pytest.mark.parametrize("newline", ["\n", "\r\n"])
@pytest.mark.parametrize("final_newline", [True, False])
def test_azure_timestamp_variants(tmp_path, rows, expected, newline, final_newline) -> None:
    lines = ["TIMESTAMP,ContextTokens,GeneratedTokens"] + [f"{ts},{10 + i},{5 + i}" for i, ts in enumerate(rows)]
    text = newline.join(lines) + (newline if final_newline else "")
    data = read_trace(write(tmp_path, "t.csv", text))
    assert data.format == "azure"
    assert data.arrival_s.tolist() == [0.0, expected]
    assert data.prompt_tokens.tolist() == [10, 11] and data.output_tokens.tolist() == [5, 6]


def test_parse_datetime_rejects_garbage() -> None:
    for bad in ("2023-11-16", "2023-11-16 25:00:00", "2023-11-16 18:15:46.x", "2023-13-01 00:00:00", "yesterday"):
        with pytest.raises(ValueError):
            parse_datetime_ns(bad)
    assert parse_datetime_ns("1970-01-01 00:00:01.000000001") == 1_000_000_001


def test_azure_bad_timestamp_names_file_line_column_value(tmp_path) -> None:
    path = write(
        tmp_path, "a.csv", "TIMESTAMP,ContextTokens,GeneratedTokens\r\n2023-11-16 18:15:46,1,2\r\nnot-a-time,3,4\r\n"
    )
    with pytest.raises(UserError, match=r"a\.csv:3: column 'TIMESTAMP': not a datetime .*'not-a-time'"):
        read_trace(path)


@pytest.mark.parametrize(
    ("row", "column", "reason"),
    [
        ("2023-11-16 18:15:47,abc,2", "ContextTokens", "not a number"),
        ("2023-11-16 18:15:47,-5,2", "ContextTokens", "negative token count"),
        ("2023-11-16 18:15:47,5,0", "GeneratedTokens", "zero tokens"),
        ("2023-11-16 18:15:47,5,2.5", "GeneratedTokens", "not a whole number"),
        ("2023-11-16 18:15:47,5", "GeneratedTokens", "missing"),
    ],
)
def test_malformed_rows_fail_or_are_skipped_and_counted(tmp_path, row, column, reason) -> None:
    text = f"TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:15:46,1,2\n{row}\n2023-11-16 18:15:48,3,4\n"
    path = write(tmp_path, "m.csv", text)
    with pytest.raises(UserError, match=rf"m\.csv:3: column '{column}': {reason}.*--skip-bad-rows"):
        read_trace(path)
    data = read_trace(path, skip_bad_rows=True)
    assert data.stats["skipped_bad_rows"] == 1 and data.stats["rows_read"] == 3
    assert data.arrival_s.tolist() == [0.0, 2.0]


def test_integral_float_lengths_are_accepted(tmp_path) -> None:
    path = write(tmp_path, "f.csv", "arrived_at,num_prefill_tokens,num_decode_tokens\n0.0,12.0,3\n")
    assert read_trace(path).prompt_tokens.tolist() == [12]


# ---- BurstGPT ------------------------------------------------------------------------------------------

BURST_V1 = (
    "Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type\n"
    "5,ChatGPT,472,18,490,Conversation log\n"
    "45,ChatGPT,1087,0,1087,Conversation log\n"  # failed request: 0 response tokens
    "118,GPT-4,417,276,693,API log\n"
    "118,ChatGPT,100,20,120,Conversation log\n"
)
BURST_V2 = (  # later release: extra columns, different order; read by name
    "Session ID,Timestamp,Elapsed time,Model,Request tokens,Response tokens,Total tokens,Log Type\n"
    '"s1",10.5,1.2,ChatGPT,50,"7",57,Conversation log\n'
    "s2,12.5,0.8,GPT-4,60,8,68,API log\n"
)


def test_burstgpt_drops_failed_requests_and_counts_them(tmp_path) -> None:
    data = read_trace(write(tmp_path, "BurstGPT_1.csv", BURST_V1))
    assert data.format == "burstgpt"
    assert data.arrival_s.tolist() == [0.0, 113.0, 113.0]  # seconds, rebased to the first row
    assert data.prompt_tokens.tolist() == [472, 417, 100]  # tie at 118 s kept in file order
    assert data.stats["dropped_failed"] == 1


def test_burstgpt_model_filter(tmp_path) -> None:
    data = read_trace(write(tmp_path, "b.csv", BURST_V1), model_filter="gpt-4")
    assert data.prompt_tokens.tolist() == [417] and data.stats["filtered_model"] == 3  # filter first
    w = load_workload(tmp_path / "b.csv", model_filter="ChatGPT")
    assert [r.prompt_tokens for r in w.requests] == [472, 100]
    assert w.stats["dropped_failed"] == 1 and w.stats["filtered_model"] == 1


def test_burstgpt_later_release_columns_by_name(tmp_path) -> None:
    data = read_trace(write(tmp_path, "b2.csv", BURST_V2))
    assert data.format == "burstgpt"
    assert data.arrival_s.tolist() == [0.0, 2.0]
    assert data.prompt_tokens.tolist() == [50, 60] and data.output_tokens.tolist() == [7, 8]


def test_model_filter_only_for_burstgpt() -> None:
    with pytest.raises(UserError, match="BurstGPT traces only"):
        read_trace(AZURE_CONV, model_filter="ChatGPT")


# ---- Mooncake, length-only, Splitwise, JSONL -----------------------------------------------------------


def test_mooncake_hand_made(tmp_path) -> None:
    text = (
        '{"timestamp": 1000, "input_length": 600, "output_length": 5, "hash_ids": [0, 1]}\n'
        '{"timestamp": 2500, "input_length": 10, "output_length": 2, "hash_ids": [0]}\n'
    )
    data = read_trace(write(tmp_path, "mc.jsonl", text))
    assert data.format == "mooncake"
    assert data.arrival_s.tolist() == [0.0, 1.5]  # (ms - first) / 1000
    assert data.prefix_block_ids == [(0, 1), (0,)]


@pytest.mark.parametrize(
    ("line", "match"),
    [
        ("{not json", r"mc\.jsonl:2: column '<line>': not valid JSON"),
        ('{"timestamp": 1, "output_length": 3}', r"mc\.jsonl:2: column 'input_length': required field missing"),
        ('{"timestamp": 1, "input_length": 3, "output_length": 2, "hash_ids": "x"}', r"column 'hash_ids'"),
        ('{"timestamp": "soon", "input_length": 3, "output_length": 2}', r"column 'timestamp': not a number"),
    ],
)
def test_mooncake_malformed(tmp_path, line, match) -> None:
    good = '{"timestamp": 0, "input_length": 5, "output_length": 2}'
    path = write(tmp_path, "mc.jsonl", f"{good}\n{line}\n")
    with pytest.raises(UserError, match=match):
        read_trace(path)
    assert read_trace(path, skip_bad_rows=True).stats["skipped_bad_rows"] == 1


def test_length_only_csv_gets_synthetic_arrivals(tmp_path) -> None:
    path = write(
        tmp_path, "lens.csv", "num_prefill_tokens,num_decode_tokens,num_total_tokens,pd_ratio\n5,7,12,0.7\n9,3,12,3\n"
    )
    w = load_workload(path, rate=2.0, seed=3)
    assert w.format == "lengths"
    assert [(r.prompt_tokens, r.output_tokens) for r in w.requests] == [(5, 7), (9, 3)]  # file order
    assert w.requests[0].arrival_s == 0.0 and w.requests[1].arrival_s > 0
    assert w.replay["arrival"] == {"process": "poisson", "rate": 2.0}
    assert load_workload(path, rate=2.0, seed=3).content_hash == w.content_hash


def test_splitwise_processed_csv(tmp_path) -> None:
    text = "arrived_at,num_prefill_tokens,num_decode_tokens\n0.0,374,44\n4.314579,396,109\n"
    data = read_trace(write(tmp_path, "splitwise_conv.csv", text))
    assert data.format == "splitwise"
    assert data.arrival_s.tolist() == [0.0, 4.314579]


def test_project_jsonl_with_header_and_defaults(tmp_path) -> None:
    text = (
        '{"format": "inferneo-jsonl", "version": 1, "name": "mine", "description": "d", "source": "s"}\n'
        '{"request_id": "a", "arrival_s": 0.5, "prompt_tokens": 10, "output_tokens": 4}\n'
        '{"request_id": "b", "arrival_s": 1.0, "prompt_tokens": 12, "output_tokens": 4, "max_tokens": 64, '
        '"priority": 9, "prefix_block_ids": [3, 4]}\n'
    )
    w = load_workload(write(tmp_path, "w.jsonl", text))
    assert (w.name, w.description, w.source, w.format) == ("mine", "d", "s", "jsonl")
    a, b = w.requests
    assert (a.arrival_s, a.max_tokens, a.priority, a.prefix_block_ids) == (0.5, 4, 5, None)  # times kept as given
    assert (b.max_tokens, b.priority, b.prefix_block_ids) == (64, 9, (3, 4))


@pytest.mark.parametrize(
    ("record", "match"),
    [
        ('{"arrival_s": 1, "prompt_tokens": 3, "output_tokens": 2, "prio": 1}', "column 'prio': unknown field"),
        ('{"arrival_s": -1, "prompt_tokens": 3, "output_tokens": 2}', "negative arrival"),
        ('{"arrival_s": 1, "prompt_tokens": 3, "output_tokens": 2, "priority": 11}', "column 'priority'"),
        ('{"arrival_s": 1, "prompt_tokens": 3, "output_tokens": 8, "max_tokens": 4}', "smaller than output_tokens"),
        ('{"request_id": "x", "arrival_s": 1, "prompt_tokens": 3, "output_tokens": 2}', "duplicate request_id"),
        ('{"arrival_s": 1, "prompt_tokens": true, "output_tokens": 2}', "column 'prompt_tokens'"),
    ],
)
def test_project_jsonl_malformed(tmp_path, record, match) -> None:
    first = '{"request_id": "x", "arrival_s": 0, "prompt_tokens": 3, "output_tokens": 2}'
    path = write(tmp_path, "w.jsonl", f"{first}\n{record}\n")
    with pytest.raises(UserError, match=rf"w\.jsonl:2: .*{match}"):
        read_trace(path)


# ---- detection, ordering, empty ------------------------------------------------------------------------


def test_unknown_format_lists_supported(tmp_path) -> None:
    with pytest.raises(UserError) as exc:
        read_trace(write(tmp_path, "x.csv", "foo,bar\n1,2\n"))
    assert "cannot detect" in str(exc.value) and all(f in str(exc.value) for f in FORMATS)
    with pytest.raises(UserError, match="unknown trace format 'parquet'; supported: azure, burstgpt"):
        read_trace(AZURE_CONV, format="parquet")


def test_format_override_with_wrong_header(tmp_path) -> None:
    with pytest.raises(UserError, match=r":1: splitwise format needs column\(s\) arrived_at"):
        read_trace(AZURE_CONV, format="splitwise")
    path = write(tmp_path, "s.csv", "arrived_at,num_prefill_tokens,num_decode_tokens\n0,1,2\n")
    assert read_trace(path, format="lengths").arrival_s is None  # override: ignore the times
    assert read_trace(path, format="vidur").format == "splitwise"  # alias


@pytest.mark.parametrize("text", ["", "\n\n", "TIMESTAMP,ContextTokens,GeneratedTokens\r\n"])
def test_empty_trace_is_a_clear_error(tmp_path, text) -> None:
    with pytest.raises(UserError, match="empty file|no requests"):
        read_trace(write(tmp_path, "e.csv", text))


def test_all_rows_bad_and_skipped_is_empty(tmp_path) -> None:
    path = write(tmp_path, "e.csv", "arrived_at,num_prefill_tokens,num_decode_tokens\nx,1,1\n")
    with pytest.raises(UserError, match=r"no requests left to replay \(rows_read 1, skipped_bad_rows 1\)"):
        read_trace(path, skip_bad_rows=True)


def test_backwards_timestamps_sorted_stably_and_counted(tmp_path) -> None:
    text = "arrived_at,num_prefill_tokens,num_decode_tokens\n0,1,1\n5,2,1\n3,3,1\n5,4,1\n1,5,1\n"
    path = write(tmp_path, "u.csv", text)
    data = read_trace(path)
    assert data.arrival_s.tolist() == [0, 1, 3, 5, 5]
    assert data.prompt_tokens.tolist() == [1, 5, 3, 2, 4]  # ties (5 s) in file order
    assert data.stats["reordered"] == 2
    with pytest.raises(UserError, match=r"u\.csv:4: timestamp goes backwards"):
        read_trace(path, on_unsorted="error")


def test_missing_file_and_directory(tmp_path) -> None:
    with pytest.raises(UserError, match="no such file"):
        read_trace(tmp_path / "nope.csv")
    binary = tmp_path / "bin.csv"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(UserError, match="not UTF-8"):
        read_trace(binary)
    with pytest.raises(UserError, match="is a directory"):
        read_trace(tmp_path)
