"""The `run --target` client on canned server answers (httpx.MockTransport, a scripted clock): what is a token
chunk, ITL per chunk (vLLM's rule), usage counting, error mapping, and that credentials are never stored."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest

from inferneo_bench.client.remote import fill_record
from inferneo_bench.client.session import redact_command
from inferneo_bench.client.stream import stream_request
from inferneo_bench.client.target import parse_target, redact_url
from inferneo_bench.errors import UserError
from inferneo_bench.metrics import summarize
from inferneo_bench.results import RequestRecord


def sse(*events: object) -> bytes:
    return "".join(f"data: {e if isinstance(e, str) else json.dumps(e)}\n\n" for e in events).encode()


def completion(text: str, completion_tokens: int | None = None, finish: str | None = None) -> dict:
    body: dict = {"object": "text_completion", "choices": [{"index": 0, "text": text, "finish_reason": finish}]}
    if completion_tokens is not None:
        body["usage"] = {"prompt_tokens": 7, "completion_tokens": completion_tokens}
    return body


def run_stream(handler, chat=False, times=None):
    clock = iter(times or [float(i) for i in range(100)]).__next__

    async def go():
        async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
            url = "http://server/v1/chat/completions" if chat else "http://server/v1/completions"
            return await stream_request(client, url, {"stream": True}, {}, chat, clock)

    return asyncio.run(go())


def record(target_output: int = 6, prompt: int = 7) -> RequestRecord:
    return RequestRecord("r", 0.0, prompt, 0, target_output, target_output, 5, "pending", sent_prompt_tokens=prompt)


def test_multi_token_chunks_are_one_itl_gap_each_and_usage_is_counted():
    body = sse(
        completion("ab", 2),
        completion("c", 3),
        completion("", 3),  # no new token: not a token chunk
        completion("def", 6, "length"),
        {"object": "text_completion", "choices": [], "usage": {"prompt_tokens": 7, "completion_tokens": 6}},
        "[DONE]",
    )
    res = run_stream(lambda req: httpx.Response(200, content=body), times=[0.10, 0.15, 0.16, 0.30, 0.31, 0.32])
    assert res.status == "completed" and res.per_chunk_usage
    assert res.chunk_times == [0.10, 0.15, 0.30] and res.chunk_tokens == [2, 1, 3]
    assert (res.usage_prompt, res.usage_completion, res.finish_reason, res.saw_done) == (7, 6, "length", True)
    r = record()
    fill_record(r, res, 0.0, token_ids=True)
    r.status = res.status
    assert (r.first_token_s, r.finish_s, r.output_tokens, r.usage_mismatch) == (0.10, 0.30, 6, None)
    assert r.itl_s == pytest.approx([0.05, 0.15])  # one gap per chunk, not split over its tokens
    s = summarize([r], [])
    assert s["mean_tpot_ms"] == pytest.approx((0.30 - 0.10) / 5 * 1000)  # TPOT uses the 6 counted tokens
    assert s["mean_itl_ms"] == pytest.approx(100.0) and s["mean_tokens_per_chunk"] == 2.0


def test_chat_role_only_chunk_is_not_a_token_and_missing_usage_is_flagged():
    def chunk(delta, finish=None):
        return {"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}

    body = sse(chunk({"role": "assistant", "content": ""}), chunk({"content": "x"}), chunk({"content": "y"}, "length"),
               "[DONE]")  # fmt: skip
    res = run_stream(lambda req: httpx.Response(200, content=body), chat=True, times=[1.0, 2.0, 3.5, 4.0])
    assert res.status == "completed" and res.chunk_times == [2.0, 3.5] and res.chunk_tokens == [1, 1]
    r = record(target_output=3)
    fill_record(r, res, 0.0, token_ids=False)
    assert r.output_tokens == 2 and r.prompt_tokens == 7  # no usage: the chunks are counted
    assert r.usage_mismatch == "2 output tokens for 3 requested; no usage reported; output counted from the chunks"


@pytest.mark.parametrize(
    ("response", "status", "reason"),
    [
        (httpx.Response(400, json={"error": {"message": "bad max_tokens"}}), "rejected", "HTTP 400: bad max_tokens"),
        (httpx.Response(503, text="overloaded"), "rejected", "HTTP 503: overloaded"),
        (httpx.Response(500, json={"detail": "boom"}), "failed", "HTTP 500: boom"),
        (httpx.Response(200, content=sse(completion("a"), completion("b"))), "failed", "without [DONE]"),
        (httpx.Response(200, content=sse({"error": {"message": "engine died"}})), "failed", "server error in stream"),
        (httpx.Response(200, content=sse(completion(""), "[DONE]")), "failed", "carried no token"),
        (httpx.Response(200, content=b"data: {oops\n\n"), "failed", "malformed SSE data"),
    ],
)
def test_http_and_stream_errors_end_the_request_with_the_reason(response, status, reason):
    res = run_stream(lambda req: response)
    assert res.status == status and reason in res.reason and not res.connection_error


def test_connection_errors_are_failed_requests_not_crashes():
    def refuse(request):
        raise httpx.ConnectError("connection refused", request=request)

    res = run_stream(refuse)
    assert res.status == "failed" and res.connection_error and "cannot connect" in res.reason


def test_credentials_never_reach_the_result(monkeypatch):
    monkeypatch.setenv("BENCH_KEY", "sk-secret")
    target = parse_target("https://user:pw@host:8443/v1/completions?token=abc", "completions", None,
                          ["X-Tenant: team-a", "Authorization: Bearer sk-other"], "BENCH_KEY")  # fmt: skip
    assert target.endpoint == "https://user:pw@host:8443/v1/completions?token=abc"  # sent as given
    assert target.headers["Authorization"] == "Bearer sk-secret" and target.headers["X-Tenant"] == "team-a"
    public = json.dumps(target.public())
    for secret in ("sk-secret", "sk-other", "team-a", "pw", "abc"):
        assert secret not in public
    assert target.public()["url"] == "https://host:8443/v1" and "$BENCH_KEY" in target.public()["authorization"]
    cmd = "inferneo-bench run --target 'http://u:p@h:1/v1?k=s' --header 'Authorization: Bearer x' --header=A:b"
    assert redact_command(cmd) == (
        "inferneo-bench run --target http://h:1/v1 --header Authorization:REDACTED --header=A:REDACTED"
    )
    assert redact_url("http://[::1]:8000/v1") == "http://[::1]:8000/v1"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("ftp://host",), "expected an http(s) URL"),
        (("http://host", "rest"), "--api 'rest': choose completions or chat"),
        (("http://host", "completions", None, ["no-colon"]), "expected NAME:VALUE"),
        (("http://host", "completions", None, [], "UNSET_VAR_FOR_TEST"), "UNSET_VAR_FOR_TEST: that environment"),
    ],
)
def test_bad_target_options_are_one_line_errors(args, message):
    with pytest.raises(UserError) as exc:
        parse_target(*args)
    assert message in str(exc.value)


def test_base_url_forms_are_normalised():
    for url in ("http://h:8000", "http://h:8000/", "http://h:8000/v1", "http://h:8000/v1/chat/completions"):
        assert parse_target(url).base_url == "http://h:8000/v1"
    assert parse_target("http://h/proxy/v1", "chat").endpoint == "http://h/proxy/v1/chat/completions"
    assert parse_target("http://h/proxy").root_url == "http://h/proxy"


def test_run_target_option_errors(cli):
    code, _, err = cli("run", "--api", "chat")
    assert code == 2 and "need --target URL" in err
    code, _, err = cli("run", "--target", "http://127.0.0.1:9", "--strategy", "fixed")
    assert code == 2 and "--strategy fixed: with --target the server decides" in err
    code, _, err = cli("run", "--target", "http://127.0.0.1:9", "--num-requests", "2")
    assert code == 2 and "cannot reach the server" in err


def test_remote_results_compare_with_torch_runs_not_with_simulated_ones():
    import copy
    from pathlib import Path

    from inferneo_bench import results
    from inferneo_bench.report import compat

    torch_run = results.load(Path(__file__).parent / "data" / "results" / "chat-cpu" / "continuous.json")
    remote = copy.deepcopy(torch_run)
    remote.run.engine, remote.model["device_type"] = "remote", None  # e.g. vLLM: it does not say
    assert compat.differences([torch_run, remote]) == []
    assert compat.check([torch_run, remote], ["local.json", "vllm.json"]) == [
        "warning: vllm.json: the server did not report its device type; check it matches the others"
    ]
    remote.model["device_type"] = "cuda"  # a server that says so is held to it
    assert compat.differences([torch_run, remote], ["local.json", "served.json"]) == [
        "device type differs: 'cpu' (local.json) vs 'cuda' (served.json)"
    ]
    sim = copy.deepcopy(torch_run)
    sim.run.engine = "sim"
    with pytest.raises(UserError, match="engine differs: 'torch'/'remote' .* vs 'sim'"):
        compat.check([torch_run, remote, sim], ["a.json", "b.json", "c.json"])
