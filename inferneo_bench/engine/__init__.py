"""Model engines. `load_engine` builds the real PyTorch engine; torch is imported only when it is called,
so importing this package (e.g. for the simulated engine) stays cheap."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from inferneo_bench.engine.torch_engine import TorchEngine


def load_engine(*args, **kwargs) -> TorchEngine:
    """See torch_engine.load_engine."""
    from inferneo_bench.engine.torch_engine import load_engine as _load

    return _load(*args, **kwargs)


def preset_names() -> list[str]:
    from inferneo_bench.engine.model import PRESETS

    return list(PRESETS)
