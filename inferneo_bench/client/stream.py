"""One streaming request to an OpenAI-compatible server, timed chunk by chunk.

What counts (vLLM's `vllm bench serve` rules, with one stated difference):
- A *token chunk* is an SSE event with a choice that carries output: a non-empty `text` (completions) or
  `delta.content` (chat), or, when the server reports cumulative usage in every chunk (vLLM's
  `stream_options.continuous_usage_stats`), a rise in `completion_tokens`. Its token count is that rise, else
  1. vLLM's client also times choices with empty text (a chat role-only chunk, a finish-only chunk); we do not,
  as they carry no token.
- First token = the first token chunk's arrival; finish = the last token chunk's arrival (not [DONE]).
- ITL = the gap between consecutive token chunks, one gap per chunk however many tokens it carries (vLLM's
  rule: a chunk of several tokens is one gap, not split); the tokens per chunk are recorded beside it.
- Output tokens = the server's usage (`completion_tokens` of the final usage chunk); without usage, the sum of
  the chunks' token counts.
- Completed = HTTP 200, at least one token chunk, and the stream ended properly ([DONE] or a finish_reason).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

MAX_ERROR_BODY = 4096


@dataclass
class StreamResult:
    status: str = "failed"  # completed | failed | rejected (cancellation is decided by the caller)
    reason: str | None = None
    http_status: int | None = None
    chunk_times: list[float] = field(default_factory=list)  # clock() at each token chunk
    chunk_tokens: list[int] = field(default_factory=list)
    usage_prompt: int | None = None
    usage_completion: int | None = None
    engine_timing: dict[str, Any] | None = None
    finish_reason: str | None = None
    saw_done: bool = False
    per_chunk_usage: bool = False  # the server reported cumulative usage in the token chunks
    connection_error: bool = False  # could not connect, or the connection broke (is the server still up?)


class _Parser:
    def __init__(self, chat: bool, clock: Callable[[], float], out: StreamResult) -> None:
        self.chat, self.clock, self.out = chat, clock, out
        self.cumulative = 0

    def event(self, data: str) -> bool:
        """Handle one SSE data payload; True when the stream is over ([DONE] or an error event)."""
        now = self.clock()
        out = self.out
        if data == "[DONE]":
            out.saw_done = True
            return True
        try:
            obj = json.loads(data)
        except json.JSONDecodeError:
            out.reason = f"malformed SSE data (not JSON): {data[:200]!r}"
            return True
        if not isinstance(obj, dict):
            return False
        if "error" in obj:
            err = obj["error"]
            message = err.get("message") if isinstance(err, dict) else err
            out.reason = f"server error in stream: {message}"
            return True
        if isinstance(obj.get("engine_timing"), dict):
            out.engine_timing = obj["engine_timing"]
        use = obj.get("usage")
        choices = obj.get("choices") or []
        if choices and isinstance(choices[0], dict):
            choice = choices[0]
            if self.chat:
                text = (choice.get("delta") or {}).get("content")
            else:
                text = choice.get("text")
            if isinstance(use, dict) and isinstance(use.get("completion_tokens"), int):
                out.per_chunk_usage = True
                tokens = use["completion_tokens"] - self.cumulative
                self.cumulative = use["completion_tokens"]
            else:
                tokens = 1 if text else 0
            if tokens > 0:
                out.chunk_times.append(now)
                out.chunk_tokens.append(tokens)
            if choice.get("finish_reason"):
                out.finish_reason = choice["finish_reason"]
        elif isinstance(use, dict):
            if isinstance(use.get("completion_tokens"), int):
                out.usage_completion = use["completion_tokens"]
            if isinstance(use.get("prompt_tokens"), int):
                out.usage_prompt = use["prompt_tokens"]
        if choices and isinstance(use, dict) and isinstance(use.get("prompt_tokens"), int):
            out.usage_prompt = use["prompt_tokens"]
        return False


def _error_text(status: int, body: bytes) -> str:
    text = body[:MAX_ERROR_BODY].decode("utf-8", errors="replace")
    try:
        obj = json.loads(text)
        err = obj.get("error", obj) if isinstance(obj, dict) else obj
        message = err.get("message") or err.get("detail") if isinstance(err, dict) else err
        if message:
            text = str(message)
    except (json.JSONDecodeError, AttributeError):
        pass
    return f"HTTP {status}: {' '.join(text.split())[:500]}"


def http_status_outcome(status: int) -> str:
    """A refused request (the server would not take it: invalid, too long, overloaded) is `rejected`; any
    other HTTP error is `failed`."""
    return "rejected" if status in (400, 404, 413, 422, 429, 503) else "failed"


async def stream_request(
    client: httpx.AsyncClient,
    url: str,
    payload: dict[str, Any],
    headers: dict[str, str],
    chat: bool,
    clock: Callable[[], float],
    on_sent: Callable[[], None] | None = None,
    out: StreamResult | None = None,
) -> StreamResult:
    """POST `payload` (stream: true) and time its chunks into `out` (a new StreamResult by default). Transport
    errors become a failed result with the reason; cancellation (a client time-out, Ctrl-C) propagates to the
    caller, which records it and still finds the chunks received so far in `out`."""
    out = out if out is not None else StreamResult()
    parser = _Parser(chat, clock, out)
    try:
        request = client.build_request("POST", url, json=payload, headers=headers)
        if on_sent is not None:
            on_sent()
        response = await client.send(request, stream=True)
        try:
            out.http_status = response.status_code
            if response.status_code != 200:
                body = await response.aread()
                out.status = http_status_outcome(response.status_code)
                out.reason = _error_text(response.status_code, body)
                return out
            async for line in response.aiter_lines():
                if not line.startswith("data:"):
                    continue  # blank separators, ":" comments, event:/id: fields
                if parser.event(line[5:].strip()):
                    break
        finally:
            await response.aclose()
    except httpx.TimeoutException as exc:
        out.reason = f"HTTP time-out ({type(exc).__name__}) after {len(out.chunk_times)} chunks"
        return out
    except httpx.ConnectError as exc:
        out.reason = f"cannot connect: {exc or type(exc).__name__}"
        out.connection_error = True
        return out
    except httpx.TransportError as exc:
        out.reason = f"connection lost after {len(out.chunk_times)} chunks: {type(exc).__name__}: {exc}"
        out.connection_error = True
        return out
    if out.reason is not None:
        return out
    if not out.chunk_times:
        out.reason = "the stream carried no token"
        return out
    if not (out.saw_done or out.finish_reason):
        out.reason = f"the stream ended after {len(out.chunk_times)} chunks without [DONE] or a finish_reason"
        return out
    if out.usage_completion is None and out.per_chunk_usage:
        out.usage_completion = parser.cumulative
    out.status = "completed"
    return out
