"""Before the run: find the served model and what the server accepts, with a few tiny requests.

1. GET /v1/models: the model to address (`--served-model`, else the first listed) and its card (vLLM puts
   `max_model_len` there; `inferneo-bench serve` adds its model, strategy, scheduler config and environment).
2. Up to four streamed requests of 2 output tokens, from the richest form to the plainest, keeping the first
   the server completes: token-id prompt (completions only) with vLLM's extensions (ignore_eos, min_tokens,
   continuous_usage_stats), token ids without them, text with them, text without them.
3. POST /tokenize (vLLM's) of a sample text, when the server has it: tokens per word, to size text prompts.
Unreachable server, refused credentials or an unknown model stop here with one line (exit 2), before the run.
"""

from __future__ import annotations

from typing import Any

import httpx

from inferneo_bench.client import prompts
from inferneo_bench.client.stream import stream_request
from inferneo_bench.client.target import ServerInfo, Target, redact_url
from inferneo_bench.errors import UserError

PROBE_TIMEOUT_S = 60.0


async def probe(target: Target, clock: Any = None) -> ServerInfo:
    import time

    clock = clock or time.perf_counter
    where = redact_url(target.base_url)
    timeout = httpx.Timeout(PROBE_TIMEOUT_S, connect=10.0)
    async with httpx.AsyncClient(timeout=timeout) as client:
        try:
            response = await client.get(target.url("/models"), headers=target.headers)
        except httpx.TransportError as exc:
            raise UserError(
                f"--target {where}: cannot reach the server ({type(exc).__name__}: {exc}); is it running?"
            ) from None
        if response.status_code in (401, 403):
            raise UserError(
                f"--target {where}: the server refused the credentials (HTTP {response.status_code}); pass them with "
                "--api-key-env VAR or --header Authorization:..."
            )
        if response.status_code != 200:
            raise UserError(f"--target {where}: GET /v1/models answered HTTP {response.status_code}; is this an "
                            "OpenAI-compatible server (base URL ending in /v1)?")  # fmt: skip
        try:
            cards = [c for c in response.json().get("data", []) if isinstance(c, dict) and isinstance(c.get("id"), str)]
        except (ValueError, AttributeError):
            cards = []
        if not cards:
            raise UserError(f"--target {where}: GET /v1/models lists no model")
        ids = [c["id"] for c in cards]
        if target.served_model is not None and target.served_model not in ids:
            raise UserError(f"--served-model {target.served_model!r}: the server serves {', '.join(ids)}")
        card = next(c for c in cards if c["id"] == (target.served_model or ids[0]))
        model_id = card["id"]
        notes = (
            [] if len(ids) == 1 or target.served_model else [f"the server lists {len(ids)} models; using {model_id}"]
        )

        forms = [(True, True), (True, False), (False, True), (False, False)]
        if target.api == "chat":
            forms = [(False, True), (False, False)]
        last = "no probe request sent"
        for token_ids, extensions in forms:
            info = ServerInfo(model_id, card, token_ids, extensions, False, None, notes)
            payload = _probe_payload(target, info)
            res = await stream_request(client, target.endpoint, payload, target.headers, target.api == "chat", clock)
            if res.status == "completed":
                info.continuous_usage = res.per_chunk_usage
                break
            last = res.reason or res.status
            if res.http_status is None or res.http_status >= 500:
                raise UserError(f"--target {where}: a probe request failed ({last})")
            notes.append(f"refused {'token ids' if token_ids else 'text'}"
                         f"{' with vLLM extensions' if extensions else ''}: {last}")  # fmt: skip
        else:
            raise UserError(f"--target {where}: the server completed none of the probe requests (last: {last})")
        info.tokens_per_word = await _tokens_per_word(client, target, model_id)
        return info


def _probe_payload(target: Target, info: ServerInfo) -> dict[str, Any]:
    from inferneo_bench.client.remote import build_payload
    from inferneo_bench.workload.spec import RequestSpec

    spec = RequestSpec(request_id="inferneo-probe", arrival_s=0.0, prompt_tokens=4, output_tokens=2)
    return build_payload(spec, target, info, seed=0)


async def _tokens_per_word(client: httpx.AsyncClient, target: Target, model_id: str) -> float | None:
    try:
        response = await client.post(
            target.url("/tokenize", root=True),
            json={"model": model_id, "prompt": prompts.SAMPLE_TEXT},
            headers=target.headers,
        )
        count = response.json().get("count") if response.status_code == 200 else None
    except (httpx.TransportError, ValueError, AttributeError):
        return None
    if not isinstance(count, int) or count <= 0:
        return None
    return count / len(prompts.WORDS)
