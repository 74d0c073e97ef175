from __future__ import annotations

import pytest
from typer.testing import CliRunner


@pytest.fixture
def cli():
    """Run the CLI in-process through the same error policy as the console script; returns (code, out, err)."""
    from inferneo_bench.cli import main

    def invoke(*args: str) -> tuple[int, str, str]:
        import contextlib
        import io

        out, err = io.StringIO(), io.StringIO()
        code = 0
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                main(list(args))
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        return code, out.getvalue(), err.getvalue()

    return invoke


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture
def one_torch_thread():
    """Tiny shapes: one intra-op thread is fastest, and avoids OpenMP contention on a shared machine."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
