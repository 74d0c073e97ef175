"""Predict the wall time of any `StepPlan` from a measured `Profile`, by interpolation over its grid.

A profile holds four measured surfaces (median seconds per step, see profile.py):

- ``decode[B][C]``: B sequences, one new token each, C = context (KV tokens after the step);
- ``prefill_padded[B][L]``: a static batch of B prompts padded to the longest, L tokens;
- ``prefill_unpadded[B][L]``: B prompts of L tokens each, no padding (continuous batching);
- ``mixed[Bd][L]``: one prompt of L tokens plus Bd decodes at context ``mixed_context``.

The torch engine runs a padded step as one [B, L] forward call, and an unpadded step as one call per
distinct ``num_tokens`` (all decodes together, prompts of equal length together), attending over the longest
context of the call. The cost model mirrors that:

- padded, one token each (decodes, idle slots) -> ``decode(B, longest context)``;
- padded with prompts -> ``prefill_padded(B, longest)`` (+ an idle-slot call if any);
- unpadded, decodes only -> ``decode(B, longest context)``;
- unpadded with prompts: the largest prompt group (B1 prompts of L1 tokens) gives the base,
  ``prefill_unpadded(B1, L1)`` alone, or with Bd decodes
  ``mixed(Bd, L1) + prefill_unpadded(B1, L1) - prefill_unpadded(1, L1) + decode(Bd, C) - decode(Bd, mixed_context)``;
  every other group adds ``prefill_unpadded(Bg, Lg) - overhead``, where ``overhead`` is the per-step cost
  outside forward calls, estimated from the profile as the median over mixed points of
  ``prefill_unpadded(1, L) + decode(Bd, mixed_context) - mixed(Bd, L)``.

Prefill chunks that start after position 0 are costed like prompts of their length (their longer attention
context is ignored). Swaps cost ``bytes / swap bandwidth`` on top.

Interpolation: each surface is piecewise linear in both axes (bilinear between the four surrounding
measured points), so a prediction equals the measured median exactly on a grid point and moves
monotonically between two neighbouring grid points. Outside the grid: below the first grid value of an
axis the first value is used (a step is never predicted cheaper than the smallest measured one); above
the last value the last segment's slope is extended linearly (never with a negative slope). Points the
profiler skipped (over its token budget, the KV capacity or the context) are treated the same way, per row.

Speed matters (the simulator calls this once per step, millions of times per replay): tables are
precomputed plain lists and lookups use `bisect`, no numpy per call.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from inferneo_bench.engine.profile import Profile
    from inferneo_bench.steps import StepPlan

SURFACES = ("decode", "prefill_padded", "prefill_unpadded", "mixed")
_MEMO_MAX = 1 << 18  # decode predictions kept (about 20 MB at most); cleared when full


class Curve:
    """A 1-D piecewise-linear function through measured points: clamped below the first point, extended
    with the last segment's slope (>= 0) above the last one."""

    __slots__ = ("xs", "vs", "slopes", "x0", "v0", "xn")

    def __init__(self, xs: Sequence[float], vs: Sequence[float]) -> None:
        if not xs or len(xs) != len(vs):
            raise ValueError("a curve needs at least one point and as many values as positions")
        if any(b <= a for a, b in zip(xs, xs[1:], strict=False)):
            raise ValueError(f"curve positions must increase strictly: {list(xs)}")
        self.xs = [float(x) for x in xs]
        self.vs = [float(v) for v in vs]
        slopes = [(self.vs[i + 1] - self.vs[i]) / (self.xs[i + 1] - self.xs[i]) for i in range(len(xs) - 1)]
        # beyond the last point: the last segment's slope, never negative (more work never costs less)
        slopes.append(max(slopes[-1], 0.0) if slopes else 0.0)
        self.slopes = slopes
        self.x0, self.v0, self.xn = self.xs[0], self.vs[0], self.xs[-1]

    def __call__(self, x: float) -> float:
        if x <= self.x0:
            return self.v0
        i = bisect_right(self.xs, x) - 1
        return self.vs[i] + (x - self.xs[i]) * self.slopes[i]


class Surface:
    """A 2-D table: one `Curve` along y per measured x (row), linear between rows, clamped below the first
    row, extended with the last two rows' slope (>= 0) above the last one."""

    __slots__ = ("xs", "rows", "x0", "xn", "row0", "n")

    def __init__(self, xs: Sequence[float], ys: Sequence[float], values: Sequence[Sequence[float | None]]) -> None:
        kept_x: list[float] = []
        rows: list[Curve] = []
        for x, row in zip(xs, values, strict=False):
            pts = [(float(y), float(v)) for y, v in zip(ys, row, strict=False) if v is not None]
            if pts:
                kept_x.append(float(x))
                rows.append(Curve([p[0] for p in pts], [p[1] for p in pts]))
        if not rows:
            raise ValueError("a surface needs at least one measured point")
        self.xs, self.rows, self.n = kept_x, rows, len(rows)
        self.x0, self.xn, self.row0 = kept_x[0], kept_x[-1], rows[0]

    def __call__(self, x: float, y: float) -> float:
        if x <= self.x0 or self.n == 1:
            return self.row0(y)
        xs, rows = self.xs, self.rows
        if x >= self.xn:
            x1, x2 = xs[-2], xs[-1]
            a, b = rows[-2](y), rows[-1](y)
            return b + (x - x2) * max((b - a) / (x2 - x1), 0.0)
        i = bisect_right(xs, x) - 1
        a = rows[i](y)
        x1 = xs[i]
        if x == x1:
            return a
        return a + (x - x1) / (xs[i + 1] - x1) * (rows[i + 1](y) - a)


class CostModel:
    """Step-time predictor built once from a profile; `predict(plan)` or, from the simulator's hot loop,
    `step_time(...)` with the plan's shape already counted."""

    def __init__(self, profile: Profile, stat: str | None = None) -> None:
        """`stat`: the per-point statistic interpolated. Default: "mean_s" when the profile has it (profiles
        made since issue 12), else "median_s". The mean, because simulated time is the sum of the predicted
        step times and a real engine's total is the sum of its step times, which a right-skewed step-time
        distribution (interference on a shared machine) puts above n x the median. "min_s" (the least loaded
        sample) is steadier when a shared machine's load drifts between profiling and use."""
        surfaces = profile.surfaces
        if stat is None:
            stat = "mean_s" if all("mean_s" in surfaces.get(name, {}) for name in SURFACES) else "median_s"
        if stat not in ("mean_s", "median_s", "min_s", "max_s"):
            raise ValueError(f"stat {stat!r}: use mean_s, median_s, min_s or max_s")
        if any(stat not in surfaces.get(name, {}) for name in SURFACES if name in surfaces):
            raise ValueError(f"stat {stat!r}: the profile does not record it; re-profile, or use median_s")
        self.stat = stat
        missing = [name for name in SURFACES if name not in surfaces]
        if missing:
            raise ValueError(f"profile lacks surfaces {missing}")
        self.decode = Surface(*_table(surfaces["decode"], stat))
        self.prefill_padded = Surface(*_table(surfaces["prefill_padded"], stat))
        self.prefill_unpadded = Surface(*_table(surfaces["prefill_unpadded"], stat))
        self.mixed = Surface(*_table(surfaces["mixed"], stat))
        self.mixed_context = float(profile.mixed_context)
        self.kv_bytes_per_token = int(profile.kv_bytes_per_token)
        bw = profile.swap_bandwidth_gbs or profile.copy_bandwidth_gbs
        self.swap_s_per_token = self.kv_bytes_per_token / (bw * 1e9) if bw else 0.0
        self.overhead = self._overhead(surfaces["mixed"])
        self._decode_memo: dict[int, float] = {}

    def _overhead(self, mixed: dict) -> float:
        """Per-step cost outside forward calls (timer, bookkeeping, sampling), counted once per step: what a
        mixed step costs less than its prompt and its decodes run as two steps."""
        est = []
        for bd, row in zip(mixed["xs"], mixed[self.stat], strict=False):
            for n, t in zip(mixed["ys"], row, strict=False):
                if t is not None:
                    est.append(self.prefill_unpadded(1, n) + self.decode(bd, self.mixed_context) - t)
        if not est:
            return 0.0
        est.sort()
        cap = 0.9 * min(self.decode(1, 1), self.prefill_unpadded(1, 1))
        return min(max(est[len(est) // 2], 0.0), cap)

    def step_time(self, padded: bool, n_one: int, one_ctx: int, n_idle: int, prompts: list[int] | None) -> float:
        """Seconds for a step with `n_one` sequences computing one token (longest context `one_ctx`),
        `n_idle` idle slots and prompt chunks of `prompts` tokens (each > 1; None or empty when none)."""
        if not prompts:
            return self.decode_time(n_one + n_idle, one_ctx)
        idle = self.decode(n_idle, 1) - self.overhead if n_idle else 0.0
        if padded:
            return self.prefill_padded(n_one + len(prompts), max(prompts)) + idle
        if len(prompts) == 1:
            groups = [(1, prompts[0])]
        else:
            counts: dict[int, int] = {}
            for n in prompts:
                counts[n] = counts.get(n, 0) + 1
            groups = sorted(((b, n) for n, b in counts.items()), key=lambda g: (-g[0] * g[1], -g[1]))
        b1, l1 = groups[0]
        if n_one:
            t = self.mixed(n_one, l1) + self.decode(n_one, one_ctx) - self.decode(n_one, self.mixed_context)
            if b1 > 1:
                t += self.prefill_unpadded(b1, l1) - self.prefill_unpadded(1, l1)
        else:
            t = self.prefill_unpadded(b1, l1)
        for b, n in groups[1:]:
            t += self.prefill_unpadded(b, n) - self.overhead
        return max(t + idle, 0.0)

    def decode_time(self, n: int, one_ctx: int) -> float:
        """Seconds for a step of `n` one-token sequences (decodes and idle slots), longest context `one_ctx`:
        step_time's decode-only case. Memoised: a replay repeats the same (n, context) pairs all run long."""
        if not n:
            return 0.0
        ctx = one_ctx if one_ctx > 1 else 1
        key = (n << 32) | ctx
        t = self._decode_memo.get(key)
        if t is None:
            if len(self._decode_memo) >= _MEMO_MAX:
                self._decode_memo.clear()
            t = self._decode_memo[key] = self.decode(n, ctx)
        return t

    def swap_time(self, tokens: int) -> float:
        """Seconds to copy `tokens` tokens of KV cache between device and host (one direction)."""
        return tokens * self.swap_s_per_token

    def predict(self, plan: StepPlan, swap_tokens: int = 0) -> float:
        """Seconds for `plan`, plus the copy of `swap_tokens` KV tokens when it swaps."""
        n_one = one_ctx = n_idle = 0
        prompts: list[int] = []
        for s in plan.seqs:
            if s.idle:
                n_idle += 1
            elif s.num_tokens > 1:
                prompts.append(s.num_tokens)
            else:
                n_one += 1
                if s.start_pos + 1 > one_ctx:
                    one_ctx = s.start_pos + 1
        return self.step_time(plan.padded, n_one, one_ctx, n_idle, prompts) + self.swap_time(swap_tokens)


def _table(surface: dict, stat: str) -> tuple[list, list, list]:
    return surface["xs"], surface["ys"], surface[stat]
