"""The OpenAI-compatible protocol of `serve`: request validation and the response / SSE chunk bodies.

Fields read (everything else is accepted and ignored, as sampling parameters are: the engine samples greedily
from a model whose weights are random unless loaded from a checkpoint):
- completions: `prompt` (text, or a list of token ids, or a one-element list of either), `max_tokens`
  (default 16, OpenAI's);
- chat completions: `messages` (their text contents joined by newlines: there is no chat template), and
  `max_completion_tokens` or `max_tokens` (default: the rest of the context);
- both: `model` (must be the served name when given), `n` (only 1), `stream`, `stream_options`
  (`include_usage`, and vLLM's `continuous_usage_stats`), and vLLM's `min_tokens` and `ignore_eos`.
The engine has no end-of-sequence: every request generates exactly `max_tokens` tokens (finish_reason
"length"), so `ignore_eos` changes nothing and `min_tokens` only has to be <= `max_tokens`.
Errors are OpenAI's body {"error": {"message", "type", "param", "code"}} with the HTTP status.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from inferneo_bench.serve.tokenizer import Tokenizer

COMPLETIONS, CHAT = "completions", "chat"


class APIError(Exception):
    """An OpenAI-style error response."""

    def __init__(
        self,
        status: int,
        message: str,
        type_: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.type, self.param, self.code = status, message, type_, param, code

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


def bad(message: str, param: str | None = None, code: str | None = None) -> APIError:
    return APIError(400, message, "invalid_request_error", param, code)


@dataclass
class GenRequest:
    api: str  # completions | chat
    prompt_ids: list[int]
    max_tokens: int
    min_tokens: int
    stream: bool
    include_usage: bool
    continuous_usage: bool


@dataclass(frozen=True)
class Limits:
    model_name: str
    max_model_len: int
    model_vocab: int


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _int_field(body: dict[str, Any], name: str, minimum: int) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if not _is_int(value) or value < minimum:
        raise bad(f"'{name}' must be an integer >= {minimum}, got {value!r}", name)
    return value


def _bool_field(body: dict[str, Any], name: str, default: bool = False) -> bool:
    value = body.get(name, default)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise bad(f"'{name}' must be true or false, got {value!r}", name)
    return value


def _token_ids(ids: list[Any], vocab: int) -> list[int]:
    for i in ids:
        if not _is_int(i):
            raise bad(f"'prompt' token ids must be integers, got {i!r}", "prompt")
        if not 0 <= i < vocab:
            raise bad(f"'prompt' token id {i} is outside the model's vocabulary [0, {vocab})", "prompt")
    return list(ids)


def _prompt_ids(body: dict[str, Any], tokenizer: Tokenizer, vocab: int) -> list[int]:
    if "prompt" not in body:
        raise bad("'prompt' is required", "prompt")
    prompt = body["prompt"]
    if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], (str, list)):
        prompt = prompt[0]  # a batch of one
    elif isinstance(prompt, list) and prompt and all(isinstance(p, (str, list)) for p in prompt):
        raise bad(f"batched prompts are not supported ({len(prompt)} given); send one prompt per request", "prompt")
    if isinstance(prompt, str):
        ids = tokenizer.encode(prompt)
        bad_ids = [i for i in ids if i >= vocab]
        if bad_ids:
            raise bad(f"the tokenizer's id {bad_ids[0]} is outside the model's vocabulary [0, {vocab})", "prompt")
    elif isinstance(prompt, list):
        ids = _token_ids(prompt, vocab)
    else:
        raise bad(f"'prompt' must be a string or a list of token ids, got {type(prompt).__name__}", "prompt")
    if not ids:
        raise bad("'prompt' is empty", "prompt")
    return ids


def _chat_text(body: dict[str, Any]) -> str:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise bad("'messages' must be a non-empty list of {role, content} objects", "messages")
    parts: list[str] = []
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            raise bad(f"'messages[{i}]' must be an object with a string 'role'", "messages")
        content = message.get("content")
        if isinstance(content, str):
            parts.append(content)
        elif isinstance(content, list):
            for j, part in enumerate(content):
                if not isinstance(part, dict) or part.get("type") != "text" or not isinstance(part.get("text"), str):
                    raise bad(f"'messages[{i}].content[{j}]': only text parts are supported", "messages")
                parts.append(part["text"])
        elif content is not None:
            raise bad(f"'messages[{i}].content' must be a string or a list of text parts", "messages")
    return "\n".join(parts)


def parse_request(body: Any, api: str, tokenizer: Tokenizer, limits: Limits) -> GenRequest:
    """Validate a request body; raises APIError (400, or 404 for an unknown model)."""
    if not isinstance(body, dict):
        raise bad("the request body must be a JSON object")
    model = body.get("model")
    if model is not None and model != limits.model_name:
        raise APIError(
            404, f"The model `{model}` does not exist; this server serves `{limits.model_name}`", param="model",
            code="model_not_found",
        )  # fmt: skip
    n = body.get("n", 1)
    if n is not None and n != 1:
        raise bad(f"'n' = {n!r}: only one choice per request is supported", "n")
    stream = _bool_field(body, "stream")
    options = body.get("stream_options")
    if options is not None:
        if not stream:
            raise bad("'stream_options' can only be given with 'stream': true", "stream_options")
        if not isinstance(options, dict):
            raise bad("'stream_options' must be an object", "stream_options")
    options = options or {}
    include_usage = _bool_field(options, "include_usage")
    continuous = _bool_field(options, "continuous_usage_stats")
    _bool_field(body, "ignore_eos")  # validated; the engine never stops early anyway

    if api == COMPLETIONS:
        ids = _prompt_ids(body, tokenizer, limits.model_vocab)
        max_tokens = _int_field(body, "max_tokens", 1)
        if max_tokens is None:
            max_tokens = 16
    else:
        ids = tokenizer.encode(_chat_text(body))
        if not ids:
            raise bad("the messages hold no text", "messages")
        if any(i >= limits.model_vocab for i in ids):
            raise bad(f"the tokenizer's ids fall outside the model's vocabulary [0, {limits.model_vocab})", "messages")
        max_tokens = _int_field(body, "max_completion_tokens", 1)
        if max_tokens is None:
            max_tokens = _int_field(body, "max_tokens", 1)
        if max_tokens is None:
            max_tokens = max(1, limits.max_model_len - len(ids))
    min_tokens = _int_field(body, "min_tokens", 0) or 0
    if min_tokens > max_tokens:
        raise bad(f"'min_tokens' ({min_tokens}) must be <= the maximum number of tokens ({max_tokens})", "min_tokens")
    if len(ids) + max_tokens > limits.max_model_len:
        raise bad(
            f"This model's maximum context length is {limits.max_model_len} tokens. However, you requested "
            f"{len(ids) + max_tokens} tokens ({len(ids)} in the prompt, {max_tokens} in the completion). "
            "Please reduce the length of the prompt or completion.",
            "max_tokens",
            "context_length_exceeded",
        )
    return GenRequest(api, ids, max_tokens, min_tokens, stream, include_usage, continuous)


def usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


def chunk(api: str, rid: str, created: int, model: str, text: str, first: bool, finish: str | None) -> dict[str, Any]:
    """One streamed token. Chat: the first chunk carries the role with the first token's text (no role-only
    chunk before any token exists, so a client timing its first chunk times the first token)."""
    if api == COMPLETIONS:
        choice: dict[str, Any] = {"index": 0, "text": text, "logprobs": None, "finish_reason": finish}
        return {"id": rid, "object": "text_completion", "created": created, "model": model, "choices": [choice]}
    delta: dict[str, Any] = {"role": "assistant", "content": text} if first else {"content": text}
    choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
    return {"id": rid, "object": "chat.completion.chunk", "created": created, "model": model, "choices": [choice]}


def final_chunk(api: str, rid: str, created: int, model: str, extra: dict[str, Any]) -> dict[str, Any]:
    """The chunk after the last token: no choices; usage (when asked for) and engine_timing."""
    obj = "text_completion" if api == COMPLETIONS else "chat.completion.chunk"
    return {"id": rid, "object": obj, "created": created, "model": model, "choices": [], **extra}


def full_response(api: str, rid: str, created: int, model: str, text: str, extra: dict[str, Any]) -> dict[str, Any]:
    if api == COMPLETIONS:
        choice: dict[str, Any] = {"index": 0, "text": text, "logprobs": None, "finish_reason": "length"}
        return {
            "id": rid,
            "object": "text_completion",
            "created": created,
            "model": model,
            "choices": [choice],
            **extra,
        }
    message = {"role": "assistant", "content": text}
    choice = {"index": 0, "message": message, "logprobs": None, "finish_reason": "length"}
    return {"id": rid, "object": "chat.completion", "created": created, "model": model, "choices": [choice], **extra}
