"""Named workloads, YAML specs, overrides, replay controls, the context policy, JSONL round-trip, the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from inferneo_bench.errors import UserError
from inferneo_bench.workload import RequestSpec, Workload, apply_context_policy, available, load_workload
from inferneo_bench.workload.jsonl import write_jsonl

SHIPPED = {
    "default",
    "chat",
    "bursty",
    "offline",
    "priority-mix",
    "azure-conv",
    "azure-code",
    "mooncake",
    "sharegpt-lengths",
}
ROOT = Path(__file__).resolve().parents[1]


def test_every_shipped_workload_loads_with_a_description() -> None:
    assert SHIPPED <= set(available())
    for name in SHIPPED:
        w = load_workload(name)
        assert w.name == name and len(w.description) > 40 and w.source
        assert w.num_requests > 0 and w.requests[0].arrival_s == 0.0
        arrivals = [r.arrival_s for r in w.requests]
        assert arrivals == sorted(arrivals)


def test_default_fits_a_quick_valid_cpu_run() -> None:
    w = load_workload("default")
    assert 50 <= w.num_requests <= 100 and 10.0 <= w.duration_s <= 30.0
    assert all(32 <= r.prompt_tokens <= 256 and 16 <= r.output_tokens <= 64 for r in w.requests)
    assert load_workload("default").content_hash == w.content_hash  # seeded: identical every time


def test_info_has_the_result_file_keys() -> None:
    info = load_workload("azure-conv", duration_s=60.0).info()
    for key in ("name", "source", "format", "num_requests", "duration_s", "mean_rate", "content_hash", "replay"):
        assert key in info
    assert info["replay"]["duration_s"] == 60.0 and info["content_hash"].startswith("sha256:")
    assert info["duration_s"] < 60.0 and info["context_policy"] == "reject"
    assert info["path"] == "workloads/azure-conv.yaml"  # machine-independent for shipped specs
    json.dumps(info)  # serialisable as is


def test_overrides_for_synthetic_workloads() -> None:
    w = load_workload("default", num_requests=20, rate=100.0, seed=3)
    assert w.num_requests == 20 and w.duration_s < 1.0
    assert w.replay["arrival"] == {"process": "poisson", "rate": 100.0} and w.replay["seed"] == 3
    assert load_workload("default", seed=3).content_hash != load_workload("default").content_hash
    with pytest.raises(UserError, match="offline workload has no arrival rate"):
        load_workload("offline", rate=2.0)
    with pytest.raises(UserError, match="unknown workload option"):
        load_workload("default", speed=2)


def test_window_max_requests_and_time_scale_on_a_trace() -> None:
    full = load_workload("azure-conv")
    w = load_workload("azure-conv", start_s=4.0, duration_s=10.0, max_requests=5, time_scale=2.0)
    expected = [r for r in full.requests if 4.0 <= r.arrival_s < 14.0][:5]
    assert [r.request_id for r in w.requests] == [r.request_id for r in expected]
    assert [r.arrival_s for r in w.requests] == pytest.approx([(r.arrival_s - 4.0) / 2.0 for r in expected])
    assert w.replay == {"seed": 0, "start_s": 4.0, "duration_s": 10.0, "max_requests": 5, "time_scale": 2.0}
    assert load_workload("azure-conv", num_requests=3).num_requests == 3


def test_target_rate_and_length_scale() -> None:
    w = load_workload("azure-code", num_requests=500, rate=10.0, length_scale=0.5)
    assert w.mean_rate == pytest.approx(10.0, rel=1e-9)
    base = load_workload("azure-code", num_requests=500)
    assert [r.prompt_tokens for r in w.requests[:3]] == [
        max(1, round(r.prompt_tokens * 0.5)) for r in base.requests[:3]
    ]
    assert w.replay["target_rate"] == 10.0 and w.replay["length_scale"] == 0.5


def test_empty_window_is_a_clear_error() -> None:
    with pytest.raises(UserError, match="holds no requests"):
        load_workload("default", start_s=10_000.0)


def test_content_hash_ignores_name_and_survives_jsonl_round_trip(tmp_path) -> None:
    w = load_workload("mooncake", num_requests=50)
    out = tmp_path / "m.jsonl"
    write_jsonl(w, out)
    back = load_workload(out)
    assert back.content_hash == w.content_hash and back.requests == w.requests
    assert (back.name, back.source, back.format, back.prefix_block_size) == ("mooncake", w.source, "jsonl", 512)


def test_spec_yaml_from_a_path_with_empirical_lengths(tmp_path) -> None:
    (tmp_path / "lens.csv").write_text("num_prefill_tokens,num_decode_tokens\n100,10\n200,20\n")
    spec = tmp_path / "mine.yaml"
    spec.write_text(
        "name: mine\ndescription: test\nseed: 4\nsynthetic:\n  num_requests: 50\n"
        "  arrival: {process: constant, rate: 2}\n"
        "  prompt_tokens: {dist: empirical, path: lens.csv, column: prompt}\n"
        "  output_tokens: {dist: empirical, path: lens.csv, column: output}\n"
        "  priority: {1: 1, 10: 1}\n"
    )
    w = load_workload(spec)
    assert {(r.prompt_tokens, r.output_tokens) for r in w.requests} == {(100, 10), (200, 20)}
    assert w.duration_s == pytest.approx(24.5) and {r.priority for r in w.requests} == {1, 10}
    assert w.replay["empirical_lengths"] == "lens.csv"


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("name: x\n", "exactly one of 'synthetic' or 'trace'"),
        ("name: x\nsynthetics: {}\n", "unknown key"),
        ("- a\n", "must be a YAML mapping"),
        ("name: [unclosed\n", r"bad\.yaml:\d+: not valid YAML"),
        ("trace: {path: t.csv, fmt: azure}\n", "unknown key.*'trace': fmt"),
        ("trace: {path: nope.csv}\n", "no such file"),
        ("trace: {path: t.csv}\nreplay: {context_policy: drop}\n", "unknown context_policy 'drop'"),
        ("synthetic: {num_requests: 3, prompt_tokens: 5}\n", "needs 'prompt_tokens' and 'output_tokens'"),
    ],
)
def test_bad_specs(tmp_path, text, match) -> None:
    (tmp_path / "t.csv").write_text("arrived_at,num_prefill_tokens,num_decode_tokens\n0,1,1\n")
    spec = tmp_path / "bad.yaml"
    spec.write_text(text)
    with pytest.raises(UserError, match=match):
        load_workload(spec)


def test_unknown_name_lists_shipped() -> None:
    with pytest.raises(UserError, match=r"unknown workload 'nope'.*default"):
        load_workload("nope")


def test_workloads_dir_env_override(tmp_path, monkeypatch) -> None:
    (tmp_path / "solo.yaml").write_text(
        "description: d\nsynthetic: {num_requests: 2, prompt_tokens: 3, output_tokens: 4,"
        " arrival: {process: offline}}\n"
    )
    monkeypatch.setenv("INFERNEO_BENCH_WORKLOADS", str(tmp_path))
    assert available() == ["solo"] and load_workload("solo").num_requests == 2


# ---- context policy -------------------------------------------------------------------------------------


def _req(prompt: int, output: int, max_tokens: int | None = None, prefix=None) -> RequestSpec:
    return RequestSpec("r", 0.0, prompt, output, max_tokens, prefix_block_ids=prefix)


def test_context_policy_reject_is_the_default() -> None:
    fits, long = _req(90, 10), _req(95, 10)
    res = apply_context_policy([fits, long], 100)
    assert res.kept == [fits] and res.rejected == [
        (long, "prompt_tokens 95 + max_tokens 10 = 105 exceeds max_model_len 100")
    ]
    assert res.info() == {"policy": "reject", "max_model_len": 100, "rejected": 1, "truncated": 0, "scaled": 0}
    assert load_workload("default").info(context=res)["context"] == res.info()


def test_context_policy_truncate_keeps_the_prompt_start() -> None:
    res = apply_context_policy([_req(1500, 100, 200, prefix=(0, 1, 2)), _req(10, 300)], 256, "truncate", 512)
    a, b = res.kept
    assert (a.prompt_tokens, a.max_tokens, a.output_tokens, a.prefix_block_ids) == (56, 200, 100, (0,))
    assert (b.prompt_tokens, b.max_tokens, b.output_tokens) == (1, 255, 255)  # output alone too long
    assert res.modified == 2 and res.info()["truncated"] == 2 and not res.rejected


def test_context_policy_scale_keeps_the_ratio() -> None:
    (r,) = apply_context_policy([_req(300, 100)], 200, "scale").kept
    assert (r.prompt_tokens, r.output_tokens, r.max_tokens) == (150, 50, 50)
    assert all(
        x.prompt_tokens + x.max_tokens <= 64
        for x in apply_context_policy([_req(p, o) for p in (1, 63, 500) for o in (1, 70)], 64, "scale").kept
    )


def test_context_policy_errors() -> None:
    with pytest.raises(UserError, match="unknown context policy"):
        apply_context_policy([], 10, "drop")
    assert len(apply_context_policy([_req(1, 1)], 1, "truncate").rejected) == 1  # cannot hold prompt + 1 token


# ---- CLI ------------------------------------------------------------------------------------------------


def test_cli_list(cli) -> None:
    code, out, err = cli("workloads", "list", "--json")
    assert code == 0, err
    rows = {r["name"]: r for r in json.loads(out)}
    assert SHIPPED <= set(rows) and rows["azure-conv"]["num_requests"] == 19_366
    code, out, _ = cli("workloads", "list")
    assert code == 0 and "sharegpt-lengths" in out and "19,366" in out


def test_cli_show(cli) -> None:
    code, out, err = cli("workloads", "show", "azure-conv", "--json", "--num-requests", "100")
    assert code == 0, err
    d = json.loads(out)
    assert d["num_requests"] == 100 and d["interarrival_cv"] > 0 and d["prompt_tokens"]["p50"] > 0
    assert sum(d["histograms"]["prompt_tokens"]["counts"]) == 100
    code, out, _ = cli("workloads", "show", "default")
    assert code == 0 and "inter-arrival CV" in out and "prompt_tokens histogram" in out and "#" in out


def test_cli_convert_round_trip(cli, tmp_path) -> None:
    out_file = tmp_path / "conv.jsonl"
    code, out, err = cli("workloads", "convert", str(ROOT / "workloads/traces/AzureLLMInferenceTrace_conv.csv"),
                         "--out", str(out_file), "-n", "10")  # fmt: skip
    assert code == 0, err
    assert "wrote 10 requests" in out
    lines = out_file.read_text().splitlines()
    assert json.loads(lines[0])["format"] == "inferneo-jsonl"
    assert json.loads(lines[2]) == {
        "request_id": "r1",
        "arrival_s": 4.314579,
        "prompt_tokens": 396,
        "output_tokens": 109,
        "max_tokens": 109,
        "priority": 5,
    }
    assert load_workload(out_file).content_hash == load_workload("azure-conv", num_requests=10).content_hash


def test_cli_bad_input_is_one_line_exit_2(cli, tmp_path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("arrived_at,num_prefill_tokens,num_decode_tokens\n0,5,1\n1,-3,1\n")
    code, _, err = cli("workloads", "show", str(bad))
    assert code == 2 and err.count("\n") == 1
    assert f"{bad}:3: column 'num_prefill_tokens': negative token count" in err
    code, out, _ = cli("workloads", "show", str(bad), "--skip-bad-rows", "--json")
    assert code == 0 and json.loads(out)["stats"]["skipped_bad_rows"] == 1
    code, _, err = cli("workloads", "show", str(bad), "--format", "csv")
    assert code == 2 and "unknown trace format 'csv'; supported: azure" in err
    code, _, err = cli("workloads", "show", "no-such-workload")
    assert code == 2 and "unknown workload" in err


# ---- property: any workload survives the JSONL round trip ----------------------------------------------

_request = st.builds(
    lambda arrival, prompt, output, extra, priority, prefix: (
        arrival,
        prompt,
        output,
        output + extra,
        priority,
        prefix,
    ),
    st.floats(0, 1e6, allow_nan=False),
    st.integers(1, 10**6),
    st.integers(1, 10**5),
    st.integers(0, 1000),
    st.integers(1, 10),
    st.none() | st.lists(st.integers(0, 2**40), max_size=5).map(tuple),
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(_request, min_size=1, max_size=20))
def test_jsonl_round_trip_property(tmp_path, rows) -> None:
    rows = sorted(rows, key=lambda r: r[0])
    reqs = [RequestSpec(f"q{i}", *row) for i, row in enumerate(rows)]
    w = Workload(name="p", requests=reqs, format="jsonl")
    path = tmp_path / "p.jsonl"
    write_jsonl(w, path)
    back = load_workload(path)
    assert back.requests == reqs and back.content_hash == w.content_hash
