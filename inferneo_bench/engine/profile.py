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
import math
import os
import random
import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, fields
from importlib import resources
from pathlib import Path
from typing import Any

from inferneo_bench.errors import UserError
from inferneo_bench.fileio import atomic_writer
from inferneo_bench.steps import SeqStep, StepPlan

PROFILE_SCHEMA = "inferneo-bench-profile"

# Untimed decode steps of the same shape before each timed one. In a replay a decode step follows decode
# steps (caches warm with the model's weights and the batch's K/V); in the profiler's shuffled order it would
# follow any step, often a large prefill, and measure a cold decode: on the CPU `tiny` model 25-33% slower
# (issue 12: 2.94 vs 3.68 ms at batch 4), which made the simulator pessimistic for every decode-bound run.
DECODE_WARM_STEPS = 1
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
    max_step_tokens: int = 4096  # prefill/mixed points computing more tokens than this are skipped
    repeats: int = 7
    warmup: int = 1


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
    surfaces: dict[str, dict[str, Any]]  # name -> {x, y, xs, ys, mean_s, median_s, min_s, max_s}
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
        from inferneo_bench import validation

        for key in ("max_model_len", "num_slots", "mixed_context"):
            validation.count(data[key], f"{source}: {key}", 1, validation.MAX_TOKENS)
        for key in ("kv_bytes_per_token", "weight_bytes"):
            validation.count(data[key], f"{source}: {key}", 0)
        for key in ("copy_bandwidth_gbs", "swap_bandwidth_gbs"):
            if data[key] is not None:
                validation.positive(data[key], f"{source}: {key}")
        for key in ("model_info", "grid", "surfaces"):
            if not isinstance(data[key], dict):
                raise UserError(f"{source}: '{key}' must be an object; re-make it with `inferneo-bench profile`")
        profile = cls(**{k: v for k, v in data.items() if k in names})
        try:  # a profile is only useful if a cost model can be built from it
            from inferneo_bench.engine.cost_model import CostModel

            CostModel(profile)
            CostModel(profile, "median_s")  # every profile has medians (older ones have no means)
        except (KeyError, TypeError, ValueError, IndexError, ZeroDivisionError) as exc:
            raise UserError(
                f"{source}: malformed profile surfaces ({exc}); re-make it with `inferneo-bench profile`"
            ) from None
        return profile


_OPTIONAL = {"environment", "created_at", "profile_seconds", "schema", "version"}


def save_profile(profile: Profile, path: str | os.PathLike[str]) -> Path:
    """Write atomically (a temp file renamed into place), compact JSON."""
    with atomic_writer(path) as fh:
        json.dump(profile.to_dict(), fh, separators=(",", ":"), sort_keys=True)
        fh.write("\n")
    return Path(path)


def read_profile(path: str | os.PathLike[str], model: str | None = None) -> Profile:
    """Read a profile file; one-line `UserError` if it is missing, corrupt, or of another model than `model`."""
    try:
        text = Path(path).read_bytes()
    except OSError as exc:
        raise UserError(f"{path}: cannot read profile ({exc.strerror or exc})") from None
    from inferneo_bench import validation

    data = validation.load_json(text, str(path), what="profile JSON", fix="re-make it with `inferneo-bench profile`")
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


@dataclass
class Plan:
    """What a profile run measures on an engine of `num_slots` slots and `max_model_len` context: the
    effective axes per surface, the points (None where skipped), and the decode pools' waves."""

    axes: dict[str, tuple[list[int], list[int]]]
    points: dict[str, list[Point | None]]
    mixed_context: int
    pool_size: int  # decode sequences per context pool
    mixed_pool: int
    waves: list[list[int]]  # decode contexts whose pools are alive together


def _drift(passes: int, batches: list[int], pool: int) -> int:
    """Most tokens a pool sequence can advance over all passes (least-advanced-first selection)."""
    return passes * (-(-sum(batches) // max(pool, 1)) + 1) + 1


def plan_grid(grid: GridSpec, num_slots: int, max_model_len: int) -> Plan:
    passes = grid.warmup + grid.repeats
    prefill_b = [b for b in grid.prefill_batch if b <= num_slots]
    reserve = (max(prefill_b) if prefill_b else 1) + 1  # fresh prompts of a prefill / mixed point
    mixed_d = [d for d in grid.mixed_decodes if d + 1 <= num_slots]
    mixed_pool = max(mixed_d, default=0)
    mixed_cap = max_model_len - _drift(passes, mixed_d, mixed_pool)
    mixed_context = min(grid.mixed_context, mixed_cap)
    dec_b = [b for b in grid.decode_batch if b + reserve + mixed_pool <= num_slots]
    pool = max(dec_b, default=0)
    cap = max_model_len - _drift(passes * (1 + DECODE_WARM_STEPS), dec_b, pool)
    contexts = sorted({min(c, cap) for c in grid.decode_context if min(c, cap) >= 2})
    per_wave = max(1, (num_slots - reserve - mixed_pool) // max(pool, 1))
    waves = [contexts[i : i + per_wave] for i in range(0, len(contexts), per_wave)]
    axes = {
        "decode": (list(grid.decode_batch), contexts),
        "prefill_padded": (list(grid.prefill_batch), list(grid.prefill_tokens)),
        "prefill_unpadded": (list(grid.prefill_batch), list(grid.prefill_tokens)),
        "mixed": (list(grid.mixed_decodes), list(grid.mixed_tokens)),
    }
    ok = {
        "decode": lambda b, c: b in dec_b,
        "prefill_padded": lambda b, n: b in prefill_b and n <= max_model_len and b * n <= grid.max_step_tokens,
        "mixed": lambda d, n: d in mixed_d and mixed_context >= 2 and n <= max_model_len
        and n + d <= grid.max_step_tokens,
    }  # fmt: skip
    ok["prefill_unpadded"] = ok["prefill_padded"]
    points = {
        name: [Point(name, x, y) if ok[name](x, y) else None for x in xs for y in ys] for name, (xs, ys) in axes.items()
    }
    return Plan(axes, points, mixed_context, pool, mixed_pool, waves)


def slots_needed(grid: GridSpec) -> int:
    """KV slots for a profile run that keeps every decode pool alive at once (the most robust to noise)."""
    reserve = max(grid.prefill_batch) + 1 + max(grid.mixed_decodes)
    return max(grid.decode_batch) * len(grid.decode_context) + reserve


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

    def prefill_to(self, lengths: dict[str, int], start: int = 0) -> None:
        """Prefill whole prompts from `start` (sampling at the end), chunked to stay within the step budget."""
        pos = dict.fromkeys(lengths, start)
        chunk = max(1, self.max_step_tokens // max(1, len(lengths)))
        while any(pos[s] < lengths[s] for s in pos):
            seqs = []
            for s, p in pos.items():
                if p < lengths[s]:
                    n = min(chunk, lengths[s] - p)
                    seqs.append(SeqStep(s, p, n, p + n == lengths[s]))
                    pos[s] = p + n
            self.engine.step(StepPlan(seqs=seqs))


class _Pool:
    """Sequences prefilled once, then decoded in subsets: each step takes the least advanced ones, so that
    every grid batch size decodes at (nearly) the pool's context without a new prefill per measurement."""

    def __init__(self, ids: list[str], prompt_lens: list[int]) -> None:
        self.ids = ids
        self.pos = dict(zip(ids, prompt_lens, strict=True))  # next decode's start_pos
        self.order = {s: i for i, s in enumerate(ids)}

    def take(self, b: int, rng: random.Random | None = None) -> list[SeqStep]:
        """The `b` least advanced sequences, or `b` random ones with `rng`."""
        if rng is not None:
            chosen = rng.sample(self.ids, b)
        else:
            chosen = sorted(self.ids, key=lambda s: (self.pos[s], self.order[s]))[:b]
        chosen.sort(key=self.order.__getitem__)
        return [SeqStep(s, self.pos[s], 1, True) for s in chosen]

    def advance(self, steps: list[SeqStep]) -> None:
        for st in steps:
            self.pos[st.seq_id] += 1


def _make_pools(driver: _Driver, specs: list[list[int]]) -> list[_Pool]:
    """Register and prefill pools of sequences (prompt lengths per pool). A first step computes one token of
    every sequence, in round-robin order over the pools, so each pool's sequences take KV slots strided
    across the cache: a pool decodes on scattered slots like a continuous batch after some churn (the
    engine gathers their K/V), not on consecutive slots (a cheaper view) that a real run rarely has."""
    ids = [[driver.new(n) for n in lens] for lens in specs]
    lengths = {s: n for pool, lens in zip(ids, specs, strict=True) for s, n in zip(pool, lens, strict=True)}
    order = [pool[i] for i in range(max(map(len, ids), default=0)) for pool in ids if i < len(pool)]
    if order:
        driver.engine.step(StepPlan(seqs=[SeqStep(s, 0, 1, lengths[s] == 1) for s in order]))
        driver.prefill_to({s: n for s, n in lengths.items() if n > 1}, start=1)
    return [_Pool(pool, lens) for pool, lens in zip(ids, specs, strict=True)]


def _measure_once(driver: _Driver, point: Point, pools: dict[int, _Pool], mixed: _Pool | None) -> float:
    eng, b, n = driver.engine, point.x, point.y
    if point.surface == "decode":
        for _ in range(DECODE_WARM_STEPS):
            warm = pools[n].take(b)
            eng.step(StepPlan(seqs=warm))
            pools[n].advance(warm)
        steps = pools[n].take(b)
        t = eng.step(StepPlan(seqs=steps)).step_s
        pools[n].advance(steps)
        return t
    if point.surface == "mixed":
        assert mixed is not None
        steps = mixed.take(b)
        prompt = driver.new(n)
        t = eng.step(StepPlan(seqs=steps + [SeqStep(prompt, 0, n, True)])).step_s
        mixed.advance(steps)
        driver.free([prompt])
        return t
    padded = point.surface == "prefill_padded"
    # padded: the longest is n, the others spread over [n/2, n] (they are padded to n anyway)
    lengths = [n - (i * n) // (2 * b) if padded else n for i in range(b)]
    ids = [driver.new(length) for length in lengths]
    plan = StepPlan(seqs=[SeqStep(s, 0, m, True) for s, m in zip(ids, lengths, strict=True)], padded=padded)
    t = eng.step(plan).step_s
    driver.free(ids)
    return t


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
    seed: int = 0,
) -> Profile:
    """Measure every grid point on `engine` (anything implementing the Engine protocol plus num_slots,
    kv_bytes_per_token, weight_bytes and model_info()) and return the profile.

    Robust to a noisy machine: the grid is measured in passes (warmup + repeats), each pass visiting every
    point once in a shuffled order, so a burst of load spoils one sample of many points rather than every
    sample of one point; decode points draw their sequences from pools prefilled once per context."""
    started = time.perf_counter()
    plan = plan_grid(grid, engine.num_slots, engine.max_model_len)
    driver = _Driver(engine, grid.max_step_tokens)
    rng = random.Random(seed)
    passes = grid.warmup + grid.repeats
    samples: dict[Point, list[float]] = {}
    others = [p for name in ("prefill_padded", "prefill_unpadded", "mixed") for p in plan.points[name] if p]
    decode = [p for p in plan.points["decode"] if p]
    total = passes * (len(others) + len(decode))
    done = 0
    mixed: _Pool | None = None
    for w, wave in enumerate(plan.waves or [[]]):
        specs = [[c - 1] * plan.pool_size for c in wave]
        if w == 0 and plan.mixed_pool:
            specs.append([plan.mixed_context - 1] * plan.mixed_pool)
        made = _make_pools(driver, specs)
        pools = dict(zip(wave, made, strict=False))
        if w == 0 and plan.mixed_pool:
            mixed = made[-1]
        todo = [p for p in decode if p.y in pools] + (others if w == 0 else [])
        for k in range(passes):
            order = todo[:]
            rng.shuffle(order)
            for point in order:
                if progress is not None:
                    progress(point, done, total)
                t = _measure_once(driver, point, pools, mixed)
                if k >= grid.warmup:
                    samples.setdefault(point, []).append(t)
                done += 1
        driver.free([s for pool in pools.values() for s in pool.ids])
        if mixed is not None:
            driver.free(mixed.ids)
            mixed = None
    if progress is not None:
        progress(Point("decode", 0, 0), total, total)
    surfaces: dict[str, dict[str, Any]] = {}
    for name, (xs, ys) in plan.axes.items():
        table = {key: [[None] * len(ys) for _ in xs] for key in ("mean_s", "median_s", "min_s", "max_s")}
        for k, point in enumerate(plan.points[name]):
            if point is not None and point in samples:
                i, j = divmod(k, len(ys))
                ts = samples[point]
                table["median_s"][i][j] = statistics.median(ts)
                table["min_s"][i][j], table["max_s"][i][j] = min(ts), max(ts)
                # identical samples (a deterministic engine): that value exactly, not a rounded sum / n
                table["mean_s"][i][j] = ts[0] if min(ts) == max(ts) else math.fsum(ts) / len(ts)
        surfaces[name] = {"x": AXES[name][0], "y": AXES[name][1], "xs": xs, "ys": ys, **table}
    info = dict(engine.model_info())
    vocab = getattr(getattr(engine, "cfg", None), "vocab_size", None)
    if vocab is not None:
        info.setdefault("vocab_size", int(vocab))  # the simulator draws token ids in the same range
    return Profile(
        model=model,
        model_info=info,
        device_type=device_type,
        device_name=device_name,
        dtype=dtype,
        max_model_len=int(engine.max_model_len),
        num_slots=int(engine.num_slots),
        kv_bytes_per_token=int(engine.kv_bytes_per_token),
        weight_bytes=int(engine.weight_bytes),
        copy_bandwidth_gbs=copy_bandwidth_gbs,
        swap_bandwidth_gbs=swap_bandwidth_gbs,
        mixed_context=plan.mixed_context,
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
    measured_s: float  # median over the passes
    predicted_s: float  # from the profile's medians
    measured_min_s: float | None = None  # fastest pass
    predicted_min_s: float | None = None  # from the profile's minima

    @property
    def ape(self) -> float:
        return abs(self.predicted_s - self.measured_s) / self.measured_s

    @property
    def ape_min(self) -> float | None:
        if self.measured_min_s is None or self.predicted_min_s is None:
            return None
        return abs(self.predicted_min_s - self.measured_min_s) / self.measured_min_s


def validate_profile(
    engine: Any,
    profile: Profile,
    n: int = 40,
    seed: int = 1234,
    repeats: int = 5,
    progress: Callable[[int, int], None] | None = None,
) -> list[ValidationRow]:
    """Measure `n` random steps (off the grid, inside its range) on `engine` and compare each with the cost
    model's prediction. Like the profiler, it measures in passes (one warm-up, then `repeats`), visiting
    every held-out step once per pass; measured = median over the passes, predicted = median of the
    predictions of the plans actually run. Decodes come from a pool of sequences at random contexts."""
    from inferneo_bench.engine.cost_model import CostModel

    cost, cost_min = CostModel(profile, "median_s"), CostModel(profile, "min_s")  # medians vs medians
    rng = random.Random(seed)
    g = profile.grid
    budget = int(g["max_step_tokens"])
    driver = _Driver(engine, budget)
    dec_ys = profile.surfaces["decode"]["ys"]
    max_b = max(g["decode_batch"])
    prefill_b = min(max(g["prefill_batch"]), engine.num_slots // 4)
    pool_n = max(1, min(max_b + max_b // 2, engine.num_slots - prefill_b - 2))
    drift = _drift((repeats + 1) * (1 + DECODE_WARM_STEPS), [max_b] * n, pool_n)
    hi = max(min(max(dec_ys), engine.max_model_len - drift), min(dec_ys) + 1)
    (pool,) = _make_pools(driver, [[rng.randint(min(dec_ys), hi) - 1 for _ in range(pool_n)]])
    kinds = ("decode", "prefill_padded", "prefill_unpadded", "mixed")
    specs = []  # (kind, batch, prompt lengths)
    for i in range(n):
        kind = kinds[i % len(kinds)]
        if kind == "decode":
            specs.append((kind, rng.randint(1, min(pool_n, max_b)), []))
        elif kind == "mixed":
            d = rng.randint(1, min(pool_n, max(g["mixed_decodes"])))
            k = rng.choice((1, 1, 2))
            top = max(min(max(g["mixed_tokens"]), engine.max_model_len, (budget - d) // k), 2)
            specs.append((kind, d, [rng.randint(min(min(g["mixed_tokens"]), top), top) for _ in range(k)]))
        else:
            b = rng.randint(1, prefill_b)
            top = max(min(max(g["prefill_tokens"]), engine.max_model_len, budget // b), 2)
            specs.append((kind, b, [rng.randint(min(min(g["prefill_tokens"]), top), top) for _ in range(b)]))
    times: list[list[float]] = [[] for _ in specs]
    preds: list[list[float]] = [[] for _ in specs]
    preds_min: list[list[float]] = [[] for _ in specs]
    shapes = [""] * n
    order = list(range(n))
    for k in range(repeats + 1):
        rng.shuffle(order)
        for done, i in enumerate(order):
            if progress is not None:
                progress(k * n + done, (repeats + 1) * n)
            kind, b, lengths = specs[i]
            decodes = pool.take(b, rng) if kind in ("decode", "mixed") else []
            if kind == "decode":  # warm, as the profiler measures decodes (DECODE_WARM_STEPS)
                for _ in range(DECODE_WARM_STEPS):
                    engine.step(StepPlan(decodes))
                    pool.advance(decodes)
                    decodes = [SeqStep(st.seq_id, pool.pos[st.seq_id], 1, True) for st in decodes]
            ids = [driver.new(m) for m in lengths]
            plan = StepPlan(
                decodes + [SeqStep(s, 0, m, True) for s, m in zip(ids, lengths, strict=True)],
                padded=kind == "prefill_padded",
            )
            t = engine.step(plan).step_s
            pool.advance(decodes)
            driver.free(ids)
            if k == 0:
                ctx = max((st.start_pos + 1 for st in decodes), default=0)
                shapes[i] = (f"decodes={len(decodes)} max ctx={ctx} " if decodes else "") + (
                    f"prompts={len(lengths)} tokens={sum(lengths)} longest={max(lengths)}" if lengths else ""
                )
                continue
            times[i].append(t)
            preds[i].append(cost.predict(plan))
            preds_min[i].append(cost_min.predict(plan))
    driver.free(pool.ids)
    if progress is not None:
        progress((repeats + 1) * n, (repeats + 1) * n)
    return [
        ValidationRow(spec[0], shape.strip(), statistics.median(ts), statistics.median(ps), min(ts), min(pm))
        for spec, shape, ts, ps, pm in zip(specs, shapes, times, preds, preds_min, strict=True)
    ]
