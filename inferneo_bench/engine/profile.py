"""Profile an engine once (Vidur style): measure step times over a grid of step shapes, save them as JSON,
so that the simulator can predict any step on a machine without the model or the GPU.

The grid (see `GridSpec`): prefill steps (batch size x prompt tokens, padded and unpadded), decode steps
(batch size x context length) and mixed continuous steps (decodes plus one prompt chunk). Every point is run
`warmup` times unrecorded, then `repeats` times; the profile keeps the median and the min/max spread of the
engine's own measured `step_s` (CUDA events or synchronize + perf_counter). Points the engine cannot hold
(batch over its slots, context over its length) or over the per-step token budget are stored as null.

Also measured: peak copy bandwidth (device memory, read + write bytes per second, best of several copies;
the denominator of MBU) and swap bandwidth (host <-> device, used to cost swaps).
"""

from __future__ import annotations

import json
import os
import random
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, fields
from importlib import resources
from pathlib import Path
from typing import Any

from inferneo_bench.errors import UserError
from inferneo_bench.steps import SeqStep, StepPlan

PROFILE_SCHEMA = "inferneo-bench-profile"
PROFILE_VERSION = 1
SHIPPED_DIR = "data/profiles"


@dataclass(frozen=True)
class GridSpec:
    """The step shapes a profile measures."""

    decode_batch: tuple[int, ...] = (1, 2, 4, 8, 16, 32, 64)
    decode_context: tuple[int, ...] = (16, 128, 512, 1024, 2048)
    prefill_batch: tuple[int, ...] = (1, 2, 4, 8, 16)
    prefill_tokens: tuple[int, ...] = (8, 32, 128, 512, 1024, 2048)
    mixed_decodes: tuple[int, ...] = (1, 4, 16, 32)
    mixed_tokens: tuple[int, ...] = (16, 128, 512, 1024)
    mixed_context: int = 256
    max_step_tokens: int = 8192  # prefill/mixed points computing more tokens than this are skipped
    repeats: int = 5
    warmup: int = 2


FULL_GRID = GridSpec()
QUICK_GRID = GridSpec(
    decode_batch=(1, 4, 16),
    decode_context=(16, 256, 1024),
    prefill_batch=(1, 4),
    prefill_tokens=(16, 128, 512),
    mixed_decodes=(1, 8),
    mixed_tokens=(16, 256),
    mixed_context=128,
    max_step_tokens=2048,
    repeats=3,
    warmup=1,
)


@dataclass
class Profile:
    """Measured step times of one model on one device; see the module docstring."""

    model: str
    model_info: dict[str, Any]
    device_type: str  # "cpu" / "cuda"
    device_name: str
    dtype: str
    max_model_len: int
    num_slots: int
    kv_bytes_per_token: int
    weight_bytes: int
    copy_bandwidth_gbs: float | None
    swap_bandwidth_gbs: float | None
    mixed_context: int
    grid: dict[str, Any]
    surfaces: dict[str, dict[str, Any]]  # name -> {x, y, xs, ys, median_s, min_s, max_s}
    environment: dict[str, Any] = field(default_factory=dict)
    created_at: str = ""
    profile_seconds: float | None = None
    schema: str = PROFILE_SCHEMA
    version: int = PROFILE_VERSION

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Any, source: object = "<dict>") -> Profile:
        if not isinstance(data, dict) or data.get("schema") != PROFILE_SCHEMA:
            raise UserError(f"{source}: not an inferneo-bench profile (no schema '{PROFILE_SCHEMA}')")
        if data.get("version") != PROFILE_VERSION:
            raise UserError(
                f"{source}: profile version {data.get('version')!r}, this tool reads {PROFILE_VERSION}; "
                "re-make it with `inferneo-bench profile`"
            )
        names = {f.name for f in fields(cls)}
        missing = sorted(n for n in names if n not in data and n not in _OPTIONAL)
        if missing:
            raise UserError(
                f"{source}: profile lacks {', '.join(missing)}; re-make it with `inferneo-bench profile`"
            ) from None
        profile = cls(**{k: v for k, v in data.items() if k in names})
        try:  # a profile is only useful if a cost model can be built from it
            from inferneo_bench.engine.cost_model import CostModel

            CostModel(profile)
        except (KeyError, TypeError, ValueError, IndexError, ZeroDivisionError) as exc:
            raise UserError(
                f"{source}: malformed profile surfaces ({exc}); re-make it with `inferneo-bench profile`"
            ) from None
        return profile


_OPTIONAL = {"environment", "created_at", "profile_seconds", "schema", "version"}


def save_profile(profile: Profile, path: str | os.PathLike[str]) -> Path:
    """Write atomically (a temp file renamed into place), compact JSON."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(profile.to_dict(), fh, separators=(",", ":"), sort_keys=True)
            fh.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def read_profile(path: str | os.PathLike[str], model: str | None = None) -> Profile:
    """Read a profile file; one-line `UserError` if it is missing, corrupt, or of another model than `model`."""
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise UserError(f"{path}: cannot read profile ({exc.strerror or exc})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UserError(
            f"{path}:{exc.lineno}: corrupt profile JSON ({exc.msg}); re-make it with `inferneo-bench profile`"
        ) from None
    profile = Profile.from_dict(data, path)
    if model is not None and profile.model != model:
        raise UserError(
            f"{path}: profile of model '{profile.model}', not '{model}'; "
            f"make one with `inferneo-bench profile --model {model}`"
        )
    return profile


def shipped_profiles() -> list[str]:
    """Names of the profiles shipped with the package (e.g. 'tiny-cpu')."""
    folder = resources.files("inferneo_bench").joinpath(SHIPPED_DIR)
    try:
        return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".json"))
    except (FileNotFoundError, NotADirectoryError):
        return []


def load_profile(name_or_path: str | os.PathLike[str], model: str | None = None) -> Profile:
    """A shipped profile by name ('tiny-cpu') or a profile file by path; checked against `model` if given."""
    text = str(name_or_path)
    if Path(text).exists() or os.sep in text or text.endswith(".json"):
        return read_profile(text, model)
    if text in shipped_profiles():
        ref = resources.files("inferneo_bench").joinpath(f"{SHIPPED_DIR}/{text}.json")
        with resources.as_file(ref) as real:
            return read_profile(real, model)
    raise UserError(
        f"{text}: no such profile file or shipped profile (shipped: {', '.join(shipped_profiles()) or 'none'}); "
        "make one with `inferneo-bench profile --model M --out FILE`"
    )


# ----------------------------------------------------------------------------------------------------------
# measuring


@dataclass(frozen=True)
class Point:
    surface: str
    x: int
    y: int

    def describe(self) -> str:
        what = {
            "decode": f"decode B={self.x} ctx={self.y}",
            "prefill_padded": f"prefill padded B={self.x} L={self.y}",
            "prefill_unpadded": f"prefill unpadded B={self.x} L={self.y}",
            "mixed": f"mixed decodes={self.x} prompt={self.y}",
        }
        return what[self.surface]


AXES = {
    "decode": ("batch", "context"),
    "prefill_padded": ("batch", "prompt_tokens"),
    "prefill_unpadded": ("batch", "prompt_tokens"),
    "mixed": ("decodes", "prompt_tokens"),
}


def grid_points(grid: GridSpec, num_slots: int, max_model_len: int) -> dict[str, list[Point | None]]:
    """Every point of the grid per surface, in table order; None where it cannot or should not run."""
    steps = grid.warmup + grid.repeats
    out: dict[str, list[Point | None]] = {}

    def pts(name: str, xs: tuple[int, ...], ys: tuple[int, ...], ok: Callable[[int, int], bool]) -> None:
        out[name] = [Point(name, x, y) if ok(x, y) else None for x in xs for y in ys]

    pts("decode", grid.decode_batch, grid.decode_context, lambda b, c: b <= num_slots and c + steps <= max_model_len)
    for name in ("prefill_padded", "prefill_unpadded"):
        pts(
            name,
            grid.prefill_batch,
            grid.prefill_tokens,
            lambda b, n: b <= num_slots and n <= max_model_len and b * n <= grid.max_step_tokens,
        )
    pts(
        "mixed",
        grid.mixed_decodes,
        grid.mixed_tokens,
        lambda d, n: (
            d + 1 <= num_slots
            and n <= max_model_len
            and grid.mixed_context + steps <= max_model_len
            and n + d <= grid.max_step_tokens
        ),
    )
    return out


class _Driver:
    """Registers sequences and runs plans on an engine, keeping the ids unique."""

    def __init__(self, engine: Any, max_step_tokens: int) -> None:
        self.engine = engine
        self.max_step_tokens = max_step_tokens
        self.counter = 0

    def new(self, prompt_len: int) -> str:
        self.counter += 1
        seq_id = f"prof-{self.counter}"
        self.engine.add_sequence(seq_id, prompt_len)
        return seq_id

    def free(self, ids: list[str]) -> None:
        if ids:
            self.engine.step(StepPlan(seqs=[], free=list(ids)))

    def prefill_to(self, lengths: dict[str, int]) -> None:
        """Prefill whole prompts (sampling at the end), chunked to stay within the step token budget."""
        pos = dict.fromkeys(lengths, 0)
        chunk = max(1, self.max_step_tokens // max(1, len(lengths)))
        while any(pos[s] < lengths[s] for s in pos):
            seqs = []
            for s, p in pos.items():
                if p < lengths[s]:
                    n = min(chunk, lengths[s] - p)
                    seqs.append(SeqStep(s, p, n, p + n == lengths[s]))
                    pos[s] = p + n
            self.engine.step(StepPlan(seqs=seqs))


def _measure(driver: _Driver, point: Point, grid: GridSpec, mixed_context: int) -> list[float]:
    """Run one grid point warmup + repeats times; return the recorded step times."""
    eng, steps = driver.engine, grid.warmup + grid.repeats
    times: list[float] = []
    b, n = point.x, point.y
    if point.surface == "decode":
        ids = [driver.new(n - 1) for _ in range(b)]
        driver.prefill_to(dict.fromkeys(ids, n - 1))
        for k in range(steps):
            res = eng.step(StepPlan(seqs=[SeqStep(s, n - 1 + k, 1, True) for s in ids]))
            times.append(res.step_s)
        driver.free(ids)
    elif point.surface in ("prefill_padded", "prefill_unpadded"):
        padded = point.surface == "prefill_padded"
        for _ in range(steps):
            # padded: the longest is n, the others spread over [n/2, n] (they are padded to n anyway)
            lengths = [n - (i * n) // (2 * b) if padded else n for i in range(b)]
            ids = [driver.new(length) for length in lengths]
            plan = StepPlan(
                seqs=[SeqStep(s, 0, length, True) for s, length in zip(ids, lengths, strict=False)], padded=padded
            )
            times.append(eng.step(plan).step_s)
            driver.free(ids)
    elif point.surface == "mixed":
        ids = [driver.new(mixed_context - 1) for _ in range(b)]
        driver.prefill_to(dict.fromkeys(ids, mixed_context - 1))
        for k in range(steps):
            prompt = driver.new(n)
            seqs = [SeqStep(s, mixed_context - 1 + k, 1, True) for s in ids] + [SeqStep(prompt, 0, n, True)]
            times.append(eng.step(StepPlan(seqs=seqs)).step_s)
            driver.free([prompt])
        driver.free(ids)
    else:  # pragma: no cover - grid_points only makes the four kinds
        raise ValueError(point.surface)
    return times[grid.warmup :]


def run_profile(
    engine: Any,
    *,
    model: str,
    device_type: str,
    device_name: str,
    dtype: str,
    grid: GridSpec = FULL_GRID,
    copy_bandwidth_gbs: float | None = None,
    swap_bandwidth_gbs: float | None = None,
    environment: dict[str, Any] | None = None,
    progress: Callable[[Point, int, int], None] | None = None,
) -> Profile:
    """Measure every grid point on `engine` (anything implementing the Engine protocol plus num_slots,
    kv_bytes_per_token, weight_bytes and model_info()) and return the profile."""
    started = time.perf_counter()
    points = grid_points(grid, engine.num_slots, engine.max_model_len)
    total = sum(p is not None for ps in points.values() for p in ps)
    driver = _Driver(engine, grid.max_step_tokens)
    done = 0
    surfaces: dict[str, dict[str, Any]] = {}
    axes_values = {
        "decode": (grid.decode_batch, grid.decode_context),
        "prefill_padded": (grid.prefill_batch, grid.prefill_tokens),
        "prefill_unpadded": (grid.prefill_batch, grid.prefill_tokens),
        "mixed": (grid.mixed_decodes, grid.mixed_tokens),
    }
    for name, pts in points.items():
        xs, ys = axes_values[name]
        med: list[list[float | None]] = [[None] * len(ys) for _ in xs]
        lo = [row[:] for row in med]
        hi = [row[:] for row in med]
        for k, point in enumerate(pts):
            if point is None:
                continue
            if progress is not None:
                progress(point, done, total)
            times = _measure(driver, point, grid, grid.mixed_context)
            i, j = divmod(k, len(ys))
            med[i][j], lo[i][j], hi[i][j] = statistics.median(times), min(times), max(times)
            done += 1
        surfaces[name] = {
            "x": AXES[name][0],
            "y": AXES[name][1],
            "xs": list(xs),
            "ys": list(ys),
            "median_s": med,
            "min_s": lo,
            "max_s": hi,
        }
    if progress is not None:
        progress(Point("decode", 0, 0), done, total)
    return Profile(
        model=model,
        model_info=dict(engine.model_info()),
        device_type=device_type,
        device_name=device_name,
        dtype=dtype,
        max_model_len=int(engine.max_model_len),
        num_slots=int(engine.num_slots),
        kv_bytes_per_token=int(engine.kv_bytes_per_token),
        weight_bytes=int(engine.weight_bytes),
        copy_bandwidth_gbs=copy_bandwidth_gbs,
        swap_bandwidth_gbs=swap_bandwidth_gbs,
        mixed_context=grid.mixed_context,
        grid={k: list(v) if isinstance(v, tuple) else v for k, v in asdict(grid).items()},
        surfaces=surfaces,
        environment=environment or {},
        created_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        profile_seconds=round(time.perf_counter() - started, 3),
    )


def measure_copy_bandwidth(device: str, nbytes: int = 256 * 2**20, iters: int = 10) -> float:
    """Peak device-memory copy bandwidth in GB/s (read + write bytes, best of `iters` copies)."""
    import torch

    src = torch.empty(nbytes, dtype=torch.uint8, device=device)
    src.fill_(1)
    dst = torch.empty_like(src)
    return _best_copy(lambda: dst.copy_(src), device, 2 * nbytes, iters)


def measure_swap_bandwidth(device: str, nbytes: int = 128 * 2**20, iters: int = 6) -> float:
    """Host <-> device copy bandwidth in GB/s (bytes moved one way per second; pinned host memory on CUDA).
    On the CPU a swap is a memory copy, so this is the copy bandwidth counted one way."""
    import torch

    if not device.startswith("cuda"):
        return measure_copy_bandwidth(device, nbytes, iters) / 2
    host = torch.empty(nbytes, dtype=torch.uint8, pin_memory=True)
    dev = torch.empty(nbytes, dtype=torch.uint8, device=device)
    down = _best_copy(lambda: host.copy_(dev, non_blocking=True), device, nbytes, iters)
    up = _best_copy(lambda: dev.copy_(host, non_blocking=True), device, nbytes, iters)
    return min(down, up)


def _best_copy(copy: Callable[[], Any], device: str, moved: int, iters: int) -> float:
    import torch

    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    copy()
    sync()
    best = float("inf")
    for _ in range(iters):
        t0 = time.perf_counter()
        copy()
        sync()
        best = min(best, time.perf_counter() - t0)
    return round(moved / best / 1e9, 3)


def decode_bandwidth(profile: Profile) -> Iterator[tuple[int, int, float, float, float | None]]:
    """Per measured decode point: (batch, context, step seconds, achieved GB/s, MBU or None).
    Bytes per step = weights + KV read (kv_bytes_per_token x batch x context); MBU = GB/s / copy bandwidth."""
    surf = profile.surfaces["decode"]
    for b, row in zip(surf["xs"], surf["median_s"], strict=False):
        for c, t in zip(surf["ys"], row, strict=False):
            if t is None or t <= 0:
                continue
            gbs = (profile.weight_bytes + profile.kv_bytes_per_token * b * c) / t / 1e9
            mbu = gbs / profile.copy_bandwidth_gbs if profile.copy_bandwidth_gbs else None
            yield b, c, t, gbs, mbu


# ----------------------------------------------------------------------------------------------------------
# validation: held-out random steps, measured on the real engine, against the prediction


@dataclass
class ValidationRow:
    kind: str
    shape: str
    measured_s: float
    predicted_s: float

    @property
    def ape(self) -> float:
        return abs(self.predicted_s - self.measured_s) / self.measured_s


def validate_profile(
    engine: Any,
    profile: Profile,
    n: int = 40,
    seed: int = 1234,
    repeats: int = 3,
    progress: Callable[[int, int], None] | None = None,
) -> list[ValidationRow]:
    """Measure `n` random steps (off the grid, inside its range) on `engine` (median of `repeats` runs after
    one warm-up) and compare each with the cost model's prediction."""
    from inferneo_bench.engine.cost_model import CostModel

    cost = CostModel(profile)
    rng = random.Random(seed)
    g = profile.grid
    budget = int(g["max_step_tokens"])
    driver = _Driver(engine, budget)
    slots, max_len = engine.num_slots, engine.max_model_len
    kinds = ("decode", "prefill_padded", "prefill_unpadded", "mixed")
    rows: list[ValidationRow] = []
    for i in range(n):
        if progress is not None:
            progress(i, n)
        kind = kinds[i % len(kinds)]
        if kind == "decode":
            b = rng.randint(1, min(slots, max(g["decode_batch"])))
            hi = min(max(g["decode_context"]), max_len - repeats - 2)
            ctx = [rng.randint(min(g["decode_context"]), hi) for _ in range(b)]
            ids = [driver.new(c - 1) for c in ctx]
            driver.prefill_to({s: c - 1 for s, c in zip(ids, ctx, strict=False)})
            plans = [
                StepPlan([SeqStep(s, c - 1 + k, 1, True) for s, c in zip(ids, ctx, strict=False)])
                for k in range(repeats + 1)
            ]
            times = [engine.step(p).step_s for p in plans][1:]
            predicted = statistics.median(cost.predict(p) for p in plans[1:])
            shape = f"B={b} mean ctx={sum(ctx) / b:.0f}"
            driver.free(ids)
        elif kind in ("prefill_padded", "prefill_unpadded"):
            padded = kind == "prefill_padded"
            b = rng.randint(1, min(slots, max(g["prefill_batch"])))
            top = min(max(g["prefill_tokens"]), max_len, budget // b)
            lengths = [rng.randint(min(g["prefill_tokens"]), top) for _ in range(b)]
            times, plan = [], None
            for _ in range(repeats + 1):
                ids = [driver.new(length) for length in lengths]
                plan = StepPlan(
                    [SeqStep(s, 0, length, True) for s, length in zip(ids, lengths, strict=False)], padded=padded
                )
                times.append(engine.step(plan).step_s)
                driver.free(ids)
            times = times[1:]
            predicted = cost.predict(plan)
            shape = f"B={b} tokens={sum(lengths)} longest={max(lengths)}"
        else:
            d = rng.randint(1, min(slots - 2, max(g["mixed_decodes"])))
            hi = min(max(g["decode_context"]), max_len - repeats - 2)
            ctx = [rng.randint(min(g["decode_context"]), hi) for _ in range(d)]
            n_prompts = rng.choice((1, 1, 2))
            top = min(max(g["mixed_tokens"]), max_len, (budget - d) // n_prompts)
            lengths = [rng.randint(min(g["mixed_tokens"]), top) for _ in range(n_prompts)]
            ids = [driver.new(c - 1) for c in ctx]
            driver.prefill_to({s: c - 1 for s, c in zip(ids, ctx, strict=False)})
            times, preds = [], []
            for k in range(repeats + 1):
                prompts = [driver.new(length) for length in lengths]
                seqs = [SeqStep(s, c - 1 + k, 1, True) for s, c in zip(ids, ctx, strict=False)]
                plan = StepPlan(
                    seqs + [SeqStep(p, 0, length, True) for p, length in zip(prompts, lengths, strict=False)]
                )
                times.append(engine.step(plan).step_s)
                preds.append(cost.predict(plan))
                driver.free(prompts)
            driver.free(ids)
            times, predicted = times[1:], statistics.median(preds[1:])
            shape = f"decodes={d} mean ctx={sum(ctx) / d:.0f} prompts={lengths}"
        rows.append(ValidationRow(kind, shape, statistics.median(times), predicted))
    if progress is not None:
        progress(n, n)
    return rows
