"""The HTTP side of `serve`: a FastAPI app over an EngineLoop. See docs/serving.md for the protocol.

Endpoints: POST /v1/completions, POST /v1/chat/completions (streaming and not), GET /v1/models, GET /health,
GET /metrics (Prometheus text), POST /tokenize and /detokenize (vLLM's shapes).

Requests are validated and tokenised here, then handed to the engine thread; its events come back through an
asyncio queue per request (`call_soon_threadsafe`), so the engine never waits on a client. A client that
disconnects (seen by a watcher on the ASGI receive channel, or by a failed write) cancels its request in the
scheduler, which frees its KV cache slot.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse

from inferneo_bench.serve.engine_loop import Admitted, EngineLoop, Finished, Job, Token
from inferneo_bench.serve.protocol import (
    CHAT,
    COMPLETIONS,
    APIError,
    GenRequest,
    Limits,
    chunk,
    final_chunk,
    full_response,
    parse_request,
    usage,
)
from inferneo_bench.serve.tokenizer import Tokenizer

_DISCONNECTED = object()


@dataclass
class ServerState:
    loop: EngineLoop
    tokenizer: Tokenizer
    limits: Limits
    metrics: Any  # prom.ServerMetrics
    max_pending: int | None  # requests in the server at once (queued + running); more get 503
    model_card: dict[str, Any]  # GET /v1/models entry
    live: set[str] = field(default_factory=set)  # request ids handed over and not yet answered
    draining: bool = False
    ids: Any = field(default_factory=lambda: itertools.count(1))


def _dumps(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


def _sse(obj: Any) -> str:
    return f"data: {_dumps(obj)}\n\n"


def create_app(state: ServerState, drain_s: float = 30.0) -> Any:
    """The FastAPI app; its lifespan starts the engine loop and, at shutdown, lets it finish the live requests
    (up to drain_s seconds) before cancelling the rest."""
    from contextlib import asynccontextmanager

    @asynccontextmanager
    async def lifespan(_app: Any):
        if not state.loop.running:
            state.loop.start()
        try:
            yield
        finally:
            state.draining = True
            await asyncio.get_running_loop().run_in_executor(None, state.loop.stop, drain_s)

    app = FastAPI(title="inferneo-bench serve", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)

    @app.exception_handler(APIError)
    async def _api_error(_request: Request, exc: APIError) -> Any:
        return JSONResponse(exc.body(), status_code=exc.status)

    @app.exception_handler(Exception)
    async def _unexpected(_request: Request, exc: Exception) -> Any:
        err = APIError(500, f"internal server error: {type(exc).__name__}: {exc}", "internal_server_error")
        return JSONResponse(err.body(), status_code=500)

    @app.get("/health")
    async def health() -> Any:
        if state.draining or not state.loop.running:
            return PlainTextResponse("unavailable", status_code=503)
        return PlainTextResponse("ok")

    @app.get("/v1/models")
    async def models() -> Any:
        return {"object": "list", "data": [state.model_card]}

    @app.get("/metrics")
    async def metrics() -> Any:
        body, content_type = state.metrics.render()
        return Response(body, media_type=content_type)

    @app.post("/tokenize")
    async def tokenize(request: Request) -> Any:
        body = await _json(request)
        prompt = body.get("prompt") if isinstance(body, dict) else None
        if not isinstance(prompt, str):
            raise APIError(400, "'prompt' must be a string", param="prompt")
        ids = state.tokenizer.encode(prompt)
        return {"count": len(ids), "max_model_len": state.limits.max_model_len, "tokens": ids}

    @app.post("/detokenize")
    async def detokenize(request: Request) -> Any:
        body = await _json(request)
        tokens = body.get("tokens") if isinstance(body, dict) else None
        if not isinstance(tokens, list) or not all(isinstance(t, int) and not isinstance(t, bool) for t in tokens):
            raise APIError(400, "'tokens' must be a list of integers", param="tokens")
        try:
            return {"prompt": state.tokenizer.decode(tokens)}
        except ValueError as exc:
            raise APIError(400, str(exc), param="tokens") from None

    @app.post("/v1/completions")
    async def completions(request: Request) -> Any:
        return await _generate(request, COMPLETIONS)

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request) -> Any:
        return await _generate(request, CHAT)

    async def _json(request: Request) -> Any:
        raw = await request.body()
        try:
            return json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise APIError(400, f"the request body is not valid JSON ({exc})") from None

    async def _generate(request: Request, api: str) -> Any:
        if state.draining:
            raise APIError(503, "the server is shutting down", "service_unavailable")
        gen = parse_request(await _json(request), api, state.tokenizer, state.limits)
        if state.max_pending is not None and len(state.live) >= state.max_pending:
            raise APIError(
                503, f"the server holds {len(state.live)} requests, its limit (--max-pending); retry later",
                "service_unavailable",
            )  # fmt: skip
        prefix = "cmpl" if api == COMPLETIONS else "chatcmpl"
        rid = f"{prefix}-{next(state.ids)}"
        events: asyncio.Queue[Any] = asyncio.Queue()
        aio = asyncio.get_running_loop()

        def sink(event: Any) -> None:  # engine thread
            aio.call_soon_threadsafe(events.put_nowait, event)

        state.live.add(rid)
        watcher = asyncio.ensure_future(_watch_disconnect(request, events, lambda: _forget(state, rid)))
        try:
            state.loop.submit(Job(rid, gen.prompt_ids, gen.max_tokens, sink))
            first = await events.get()
        except BaseException:
            watcher.cancel()
            _forget(state, rid)
            raise
        if first is _DISCONNECTED:  # gone before admission; the watcher cancelled the request
            return Response(status_code=499)  # nobody reads it
        if not isinstance(first, Admitted):  # Finished: rejected by the scheduler, or the server is stopping
            watcher.cancel()
            state.live.discard(rid)
            status = 503 if "shutting down" in (first.reason or "") else 400
            raise APIError(status, f"request rejected: {first.reason}")
        stream = _Stream(state, gen, rid, events, watcher)
        if gen.stream:
            return StreamingResponse(stream.sse(), media_type="text/event-stream")
        return await stream.collect()

    return app


def _forget(state: ServerState, rid: str) -> None:
    """The client left: cancel the request (a no-op once it ended) and stop counting it."""
    if rid in state.live:
        state.live.discard(rid)
        state.loop.cancel(rid)


async def _watch_disconnect(request: Any, events: asyncio.Queue[Any], on_disconnect: Any) -> None:
    """When the client goes away: cancel its request at once (even if no one reads its events any more), and
    tell the reader."""
    while True:
        message = await request.receive()
        if message.get("type") == "http.disconnect":
            on_disconnect()
            events.put_nowait(_DISCONNECTED)
            return


class _Stream:
    """One admitted request: turns engine events into SSE chunks or one JSON body; cancels it if the client
    leaves first."""

    def __init__(self, state: ServerState, gen: GenRequest, rid: str, events: asyncio.Queue[Any], watcher: Any):
        self.state, self.gen, self.rid, self.events, self.watcher = state, gen, rid, events, watcher
        self.created = int(time.time())
        self.model = state.limits.model_name
        self.decode = state.tokenizer.stream_decoder()
        self.fold = state.tokenizer.fold
        self.done = False

    def _extra(self, finished: Finished, tokens: int) -> dict[str, Any]:
        return {"usage": usage(len(self.gen.prompt_ids), tokens), "engine_timing": finished.timing.to_dict()}

    async def sse(self):
        gen, api = self.gen, self.gen.api
        n = 0
        try:
            while True:
                event = await self.events.get()
                if event is _DISCONNECTED:
                    return
                if isinstance(event, Token):
                    n = event.index
                    text = self.decode(self.fold(event.model_id))
                    finish = "length" if n >= gen.max_tokens else None
                    body = chunk(api, self.rid, self.created, self.model, text, n == 1, finish)
                    if gen.continuous_usage:
                        body["usage"] = usage(len(gen.prompt_ids), n)
                    yield _sse(body)
                    continue
                assert isinstance(event, Finished)
                self.done = True
                if event.status != "completed":
                    err = APIError(500, f"request {event.status}: {event.reason}", "internal_server_error")
                    yield _sse(err.body())
                    yield "data: [DONE]\n\n"
                    return
                extra = self._extra(event, n)
                if not gen.include_usage:
                    extra.pop("usage")
                yield _sse(final_chunk(api, self.rid, self.created, self.model, extra))
                yield "data: [DONE]\n\n"
                return
        finally:
            self._close()

    async def collect(self) -> Any:
        parts: list[str] = []
        try:
            while True:
                event = await self.events.get()
                if event is _DISCONNECTED:
                    return JSONResponse({}, status_code=499)  # nobody reads it
                if isinstance(event, Token):
                    parts.append(self.decode(self.fold(event.model_id)))
                    continue
                assert isinstance(event, Finished)
                self.done = True
                if event.status != "completed":
                    err = APIError(500, f"request {event.status}: {event.reason}", "internal_server_error")
                    return JSONResponse(err.body(), status_code=500)
                extra = self._extra(event, len(parts))
                return full_response(self.gen.api, self.rid, self.created, self.model, "".join(parts), extra)
        finally:
            self._close()

    def _close(self) -> None:
        self.watcher.cancel()
        if self.done:
            self.state.live.discard(self.rid)
        else:
            _forget(self.state, self.rid)  # client gone (or the response was cancelled): free the request
