"""Build and run the server: engine + scheduler core + engine loop + FastAPI app on uvicorn.

`build_server(options)` returns a `Server` that runs in the foreground (the CLI: uvicorn handles Ctrl-C and
SIGTERM, stops accepting connections, lets in-flight requests finish for up to `drain_s` seconds, then
cancels the rest) or in a background thread on a given socket (tests, benchmarks).
"""

from __future__ import annotations

import dataclasses
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from inferneo_bench import __version__
from inferneo_bench.errors import UserError


@dataclass
class ServeOptions:
    model: str | None = None  # None: tiny (torch) or the profile's model (sim)
    strategy: str = "continuous"
    config: dict[str, str] = field(default_factory=dict)  # --set FIELD=VALUE
    host: str = "127.0.0.1"
    port: int = 8000
    device: str = "auto"
    dtype: str | None = None
    engine: str = "torch"  # or "sim": step times predicted from a profile, paced on the wall clock
    profile: str | None = None
    max_model_len: int | None = None
    tokenizer: str | None = None  # None: byte-level
    served_model_name: str | None = None  # default: the model's name
    seed: int = 0
    threads: int | None = 1
    max_pending: int | None = None  # requests in the server at once; more get 503
    drain_s: float = 30.0
    log_level: str = "warning"


def _resolve_strategy(name: str) -> str:
    from inferneo_bench.runner.session import resolve_strategies

    names = resolve_strategies(name)
    if len(names) != 1:
        raise UserError(f"--strategy {name!r}: a server runs one strategy; start one server per strategy")
    return names[0]


def model_vocab(engine: Any) -> int:
    """The model's vocabulary size: prompt token ids must be below it."""
    cfg = getattr(engine, "cfg", None)  # TorchEngine
    return int(cfg.vocab_size) if cfg is not None else int(engine._vocab)  # SimEngine: its profile's model


def build_engine(options: ServeOptions, max_num_seqs: int) -> Any:
    from inferneo_bench.runner.session import RunOptions
    from inferneo_bench.runner.session import build_engine as _build

    run_options = RunOptions(
        model=options.model,
        device=options.device,
        dtype=options.dtype,
        engine=options.engine,
        profile=options.profile,
        max_model_len=options.max_model_len,
        seed=options.seed,
        threads=options.threads,
        command="",
    )
    return _build(run_options, max_num_seqs)


def make_state(options: ServeOptions, engine: Any) -> Any:
    """The app's state over an existing engine (tests build the engine once and serve several strategies)."""
    from inferneo_bench.environment import capture
    from inferneo_bench.runner.session import fit_to_engine, scheduler_config
    from inferneo_bench.scheduler import SchedulerCore
    from inferneo_bench.serve.app import ServerState
    from inferneo_bench.serve.engine_loop import EngineLoop
    from inferneo_bench.serve.prom import ServerMetrics
    from inferneo_bench.serve.protocol import Limits
    from inferneo_bench.serve.tokenizer import load_tokenizer

    strategy = _resolve_strategy(options.strategy)
    config = fit_to_engine(scheduler_config(options.config, {}), engine)
    tokenizer = load_tokenizer(options.tokenizer)
    info = engine.model_info()
    name = options.served_model_name or str(info.get("name") or options.model or "model")
    if hasattr(engine, "reset"):
        engine.reset()
    metrics = ServerMetrics(name, int(getattr(engine, "num_slots", 1)))
    loop = EngineLoop(lambda: SchedulerCore(config, strategy), engine, pace=options.engine == "sim", metrics=metrics)
    vocab = model_vocab(engine)
    card = {
        "id": name,
        "object": "model",
        "created": int(time.time()),
        "owned_by": "inferneo-bench",
        "root": str(info.get("name") or name),
        "parent": None,
        "max_model_len": int(engine.max_model_len),
        "metadata": {
            "tool": {"name": "inferneo-bench", "version": __version__},
            "engine": options.engine,
            "strategy": strategy,
            "scheduler_config": dataclasses.asdict(config),
            "model": info,
            "vocab_size": vocab,
            "tokenizer": tokenizer.name,
            "environment": capture(),
        },
    }
    return ServerState(
        loop=loop,
        tokenizer=tokenizer,
        limits=Limits(name, int(engine.max_model_len), vocab),
        metrics=metrics,
        max_pending=options.max_pending,
        model_card=card,
    )


class Server:
    """uvicorn around the app. `start()` runs it in a thread on an already bound socket (port 0: a free one)
    and returns the base URL; `stop()` ends it. `run()` serves in the foreground until a signal."""

    def __init__(self, state: Any, options: ServeOptions) -> None:
        import uvicorn

        from inferneo_bench.serve.app import create_app

        self.state, self.options = state, options
        self.app = create_app(state, drain_s=options.drain_s)
        self.config = uvicorn.Config(
            self.app,
            host=options.host,
            port=options.port,
            log_level=options.log_level,
            access_log=False,
            lifespan="on",
            timeout_graceful_shutdown=max(1, int(options.drain_s)),
        )
        self.server = uvicorn.Server(self.config)
        self._thread: threading.Thread | None = None
        self.url: str | None = None

    def start(self, timeout_s: float = 30.0) -> str:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.options.host, self.options.port))
        host, port = sock.getsockname()[:2]
        self._thread = threading.Thread(target=self.server.run, kwargs={"sockets": [sock]}, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not self.server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the server did not start")
            time.sleep(0.01)
        self.url = f"http://{host}:{port}"
        return self.url

    def stop(self, timeout_s: float = 30.0) -> None:
        self.server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout_s)

    def run(self) -> None:
        self.url = f"http://{self.options.host}:{self.options.port}"
        self.server.run()


def build_server(options: ServeOptions) -> Server:
    from inferneo_bench.runner.session import scheduler_config, warm_up

    _resolve_strategy(options.strategy)  # fail on a bad name before loading the model
    engine = build_engine(options, scheduler_config(options.config, {}).max_num_seqs)
    warm_up(engine)
    return Server(make_state(options, engine), options)
