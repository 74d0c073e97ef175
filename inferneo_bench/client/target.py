"""The server under test: its URL, API flavour, headers, and what it accepts (found by a probe before the run).

Credentials never reach a result file: the stored URL drops user:password@ and the query string, headers are
stored by name only, and `--api-key-env VAR` is read from the environment at run time.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from inferneo_bench.errors import UserError

APIS = ("completions", "chat")
_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")


@dataclass
class Target:
    base_url: str  # ends with /v1 (OpenAI's base URL), credentials included if the user gave them
    api: str = "completions"
    served_model: str | None = None
    headers: dict[str, str] = field(default_factory=dict)  # sent, never stored
    api_key_env: str | None = None
    query: str = ""  # kept on every request (e.g. a gateway's ?api-version=), never stored

    @property
    def root_url(self) -> str:
        """The server root (vLLM serves /health, /metrics, /tokenize there)."""
        return self.base_url.removesuffix("/v1")

    def url(self, path: str, root: bool = False) -> str:
        """base (or root) + path, with the target's query string."""
        return f"{self.root_url if root else self.base_url}{path}" + (f"?{self.query}" if self.query else "")

    @property
    def endpoint(self) -> str:
        return self.url("/completions" if self.api == "completions" else "/chat/completions")

    def public(self) -> dict[str, Any]:
        """What the result file says about the target: no credentials, no header values."""
        return {
            "url": redact_url(self.base_url),
            "api": self.api,
            "served_model": self.served_model,
            "headers": sorted(k for k in self.headers if k.lower() != "authorization"),
            "authorization": (
                f"bearer token from ${self.api_key_env}"
                if self.api_key_env
                else ("from --header" if any(k.lower() == "authorization" for k in self.headers) else None)
            ),
        }


def redact_url(url: str) -> str:
    """scheme://host[:port]/path, without user:password@, query or fragment."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def parse_target(
    url: str,
    api: str = "completions",
    served_model: str | None = None,
    headers: list[str] | None = None,
    api_key_env: str | None = None,
) -> Target:
    """Validate the --target options (UserError naming the value and the fix)."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UserError(f"--target {redact_url(url)!r}: expected an http(s) URL, e.g. http://127.0.0.1:8000")
    if api not in APIS:
        raise UserError(f"--api {api!r}: choose completions or chat")
    path = parts.path.rstrip("/")
    for suffix in ("/chat/completions", "/completions"):
        path = path.removesuffix(suffix)
    if not path.endswith("/v1"):
        path = f"{path}/v1"
    base = urlunsplit((parts.scheme, parts.netloc, path, "", ""))
    sent: dict[str, str] = {}
    for item in headers or []:
        name, sep, value = item.partition(":")
        name = name.strip()
        if not sep or not _HEADER_NAME.match(name):
            raise UserError(f"--header {name or item!r}: expected NAME:VALUE, e.g. --header X-Tenant:bench")
        sent[name] = value.strip()
    if api_key_env:
        key = os.environ.get(api_key_env)
        if not key:
            raise UserError(f"--api-key-env {api_key_env}: that environment variable is not set (or is empty)")
        sent["Authorization"] = f"Bearer {key}"
    return Target(base, api, served_model, sent, api_key_env, parts.query)


@dataclass
class ServerInfo:
    """What the probe found. `card`: the /v1/models entry of the served model (inferneo-bench serve puts its
    model, strategy, scheduler config and environment under `metadata`)."""

    model_id: str
    card: dict[str, Any]
    token_ids: bool  # completions accepts a prompt as a list of token ids
    extensions: bool  # accepts vLLM's ignore_eos, min_tokens and stream_options.continuous_usage_stats
    continuous_usage: bool  # the stream carried cumulative usage in every chunk
    tokens_per_word: float | None  # from POST /tokenize of a sample text, when the server has it
    notes: list[str] = field(default_factory=list)

    @property
    def max_model_len(self) -> int | None:
        value = self.card.get("max_model_len")
        return int(value) if isinstance(value, int) and value > 0 else None

    @property
    def metadata(self) -> dict[str, Any]:
        meta = self.card.get("metadata")
        return meta if isinstance(meta, dict) else {}

    def features(self) -> dict[str, Any]:
        return {
            "token_id_prompts": self.token_ids,
            "vllm_extensions": self.extensions,
            "continuous_usage_stats": self.continuous_usage,
            "tokens_per_word": self.tokens_per_word,
            "notes": list(self.notes),
        }
