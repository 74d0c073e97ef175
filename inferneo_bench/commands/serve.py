"""`inferneo-bench serve`: an OpenAI-compatible server on the scheduler core and engine (docs/serving.md)."""

from __future__ import annotations

import typer

from inferneo_bench.errors import UserError


def serve(
    model: str | None = typer.Option(
        None, "--model", "-m", help="Preset (tiny, gpt2, llama-1b, ...) or a local HF folder (default: tiny)."
    ),
    strategy: str = typer.Option("continuous", "--strategy", "-s", help="The one batching strategy to serve with."),
    sets: list[str] = typer.Option([], "--set", help="SchedulerConfig FIELD=VALUE (repeatable)."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on (0.0.0.0: every interface)."),
    port: int = typer.Option(8000, "--port", help="TCP port."),
    device: str = typer.Option("auto", "--device", "-d", metavar="DEVICE", help="auto, cpu, cuda or cuda:N."),
    dtype: str | None = typer.Option(None, "--dtype", help="float32, bfloat16 or float16 (default: bf16 on CUDA)."),
    engine: str = typer.Option(
        "torch", "--engine", help="torch (real model) or sim (steps paced by a profile's predicted times)."
    ),
    profile: str | None = typer.Option(None, "--profile", help="Engine profile for --engine sim (name or file)."),
    max_model_len: int | None = typer.Option(None, "--max-model-len", help="Model context length override."),
    tokenizer: str | None = typer.Option(
        None, "--tokenizer", help="Local Hugging Face tokenizer folder (default: byte-level, one token per byte)."
    ),
    served_model_name: str | None = typer.Option(
        None, "--served-model-name", help="Model name clients use (default: the model's name)."
    ),
    seed: int = typer.Option(0, "--seed", help="Seed of the random weights."),
    threads: int = typer.Option(1, "--threads", min=1, help="torch CPU threads (1: fastest for small steps)."),
    max_pending: int | None = typer.Option(
        None, "--max-pending", min=1, help="Requests held at once (queued + running); more get HTTP 503."
    ),
    drain: float = typer.Option(30.0, "--drain", help="On Ctrl-C/SIGTERM: seconds to let running requests finish."),
    log_level: str = typer.Option("warning", "--log-level", help="uvicorn log level (info shows each request)."),
) -> None:
    """Serve the model over an OpenAI-compatible HTTP API with one batching strategy (Ctrl-C drains and stops)."""
    from inferneo_bench.commands.run import _parse_sets
    from inferneo_bench.serve.server import ServeOptions, build_server

    if not 0 < port < 65536:
        raise UserError(f"--port {port}: must be between 1 and 65535")
    _check_bind(host, port)  # before loading the model
    options = ServeOptions(
        model=model,
        strategy=strategy,
        config=_parse_sets(sets),
        host=host,
        port=port,
        device=device,
        dtype=dtype,
        engine=engine,
        profile=profile,
        max_model_len=max_model_len,
        tokenizer=tokenizer,
        served_model_name=served_model_name,
        seed=seed,
        threads=threads,
        max_pending=max_pending,
        drain_s=drain,
        log_level=log_level,
    )
    server = build_server(options)
    card = server.state.model_card
    meta = card["metadata"]
    typer.echo(
        f"serving {card['id']} ({meta['model'].get('device_type') or options.engine}, {meta['engine']} engine) with "
        f"strategy {meta['strategy']}, tokenizer {meta['tokenizer']}, context {card['max_model_len']} tokens"
    )
    typer.echo(f"OpenAI API at http://{host}:{port}/v1 (completions, chat/completions, models); /metrics, /health")
    typer.echo("Ctrl-C or SIGTERM: stop accepting, let running requests finish, exit")
    import signal

    # uvicorn drains on SIGINT/SIGTERM, then re-raises the signal with the handler it found: make both end here
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        server.run()
    except KeyboardInterrupt:
        pass
    typer.echo("stopped")


def _check_bind(host: str, port: int) -> None:
    import socket

    try:
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((host, port))
    except OSError as exc:
        raise UserError(
            f"--host {host} --port {port}: cannot listen there ({exc.strerror}); choose another --port"
        ) from None


EPILOG = """\
[bold]Example[/]: serve the tiny model, then benchmark it from a second terminal:

  inferneo-bench serve --strategy continuous --port 8000
  inferneo-bench run --target http://127.0.0.1:8000 --workload chat -n 50
"""


def register(app: typer.Typer) -> None:
    app.command(epilog=EPILOG)(serve)
