"""TorchEngine: executes scheduler steps (steps.StepPlan) on the real model with a static KV cache.

How a step maps onto forward calls:
  * padded (static batching): every non-idle sequence is padded to the longest `num_tokens` of the step and
    the whole batch runs as one [B, T] forward. Idle rows (finished members of a frozen batch) compute one
    padding token each; when T == 1 they ride in the same call, otherwise they get their own [n_idle, 1]
    call so that exactly one token per idle row is computed, as counted.
  * unpadded (continuous batching): sequences are grouped by `num_tokens` and each group runs as one
    [B, T] forward without any padding: all decodes (T = 1) in one call, prefill chunks of equal length
    together, other chunks alone.
Padding tokens and idle rows write their K/V into the cache's scratch slot, so real work on padding never
corrupts a resident sequence. Decode-only calls (T = 1) go through `DecodeRunner`, which pads the batch to a
size bucket and, on CUDA, replays a captured CUDA graph per (batch bucket, context bucket).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from inferneo_bench.engine.kv_cache import KVCache, default_kv_tokens
from inferneo_bench.engine.model import PRESETS, ModelConfig, Transformer, build_model
from inferneo_bench.errors import UserError
from inferneo_bench.steps import SeqStep, StepPlan, StepResult

DTYPES = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
          "float16": torch.float16, "fp16": torch.float16}  # fmt: skip
BATCH_BUCKETS = (1, 2, 4, 8, 16, 24, 32, 48, 64, 96, 128, 160, 192, 224, 256, 320, 384, 448, 512)
MIN_CTX_BUCKET = 256


@dataclass
class _Seq:
    """A sequence's token list = prompt + sampled tokens. Drawn prompts are not stored: they are redrawn
    from their generator key when a chunk needs them, so a long trace costs memory only for what it
    generated (the engine never learns when a sequence is gone for good: `free` also means recompute)."""

    prompt_len: int
    prompt_key: int  # seed of the drawn prompt (unused when prompt is given)
    vocab: int
    prompt: torch.Tensor | None = None  # explicit prompt ids (int32), when given
    out: list[int] = field(default_factory=list)  # sampled tokens
    slot: int | None = None
    kv_len: int = 0  # positions [0, kv_len) of the slot hold this sequence's K/V
    host_kv: tuple[torch.Tensor, torch.Tensor] | None = None  # swapped-out K/V

    def __len__(self) -> int:
        return self.prompt_len + len(self.out)

    def ids(self, start: int, end: int) -> list[int]:
        """Tokens [start, end) of the token list."""
        part: list[int] = []
        if start < self.prompt_len:
            if self.prompt is None:
                gen = torch.Generator().manual_seed(self.prompt_key)
                prompt = torch.randint(0, self.vocab, (self.prompt_len,), generator=gen, dtype=torch.int32)
            else:
                prompt = self.prompt
            part = prompt[start : min(end, self.prompt_len)].tolist()
        if end > self.prompt_len:
            part += self.out[max(0, start - self.prompt_len) : end - self.prompt_len]
        return part


@dataclass
class _Row:
    seq_id: str
    step: SeqStep
    seq: _Seq | None  # None for idle rows


class _OOMInCall(Exception):
    pass


def _is_oom(exc: BaseException) -> bool:
    return isinstance(exc, torch.OutOfMemoryError) or "out of memory" in str(exc).lower()


def bucket_for(n: int, buckets: Sequence[int]) -> int | None:
    """Smallest bucket >= n, or None when n exceeds the largest."""
    for b in buckets:
        if b >= n:
            return b
    return None


def ctx_bucket_for(ctx_len: int, max_len: int) -> int:
    """Context length rounded up to a power of two (at least MIN_CTX_BUCKET), capped at max_len."""
    b = MIN_CTX_BUCKET
    while b < ctx_len:
        b *= 2
    return min(b, max_len)


class DecodeRunner:
    """Runs T = 1 batches padded to a batch-size bucket and a context-length bucket. On CUDA each
    (layout, batch bucket, context bucket) is captured once as a CUDA graph and replayed (no per-kernel
    launch overhead); elsewhere the same padded inputs run eagerly, which keeps this logic exercised on CPU.

    Two layouts. "slot": row j of the bucket is slot j, so attention reads the cache through a view of slots
    [0, bb) with no gather; used when the step's slots fit in at most twice the batch's own bucket (the
    common case: slots are handed out lowest-first). Rows of the bucket that no sequence of the step owns
    are padding: they read their slot (harmless) and write only the scratch slot; idle rows take such a
    row. "gather": rows in order, each gathering its slot's K/V (any slot set; costs a copy of the K/V read).
    Bucket padding rows are an implementation cost of graphs (as in vLLM), not strategy padding, and are not
    counted as padded tokens. Every graph writes its logits into one shared buffer allocated outside the
    graph pool, so graphs keep no live memory in the pool and any number of them can share it."""

    def __init__(self, model: Transformer, cache: KVCache, use_graphs: bool, buckets: Sequence[int]) -> None:
        self.model, self.cache, self.use_graphs = model, cache, use_graphs
        self.buckets = tuple(b for b in buckets if b < cache.num_slots + 1) + (cache.num_slots + 1,)
        self.max_len = cache.max_len
        dev = cache.k.device
        n = self.buckets[-1]
        # static inputs shared by every graph: tokens, pos, write_slot, write_pos, read_slot
        self.static = torch.zeros((5, n), dtype=torch.long, device=dev)
        self.logits = torch.zeros((n, model.cfg.vocab_size), dtype=torch.float32, device=dev)
        self.graphs: dict[tuple[str, int, int], torch.cuda.CUDAGraph] = {}
        self.pool = torch.cuda.graph_pool_handle() if use_graphs else None
        self.last_layout: str | None = None  # for tests and diagnostics

    def _forward(self, layout: str, bb: int, lb: int) -> None:
        s = self.static
        read = slice(0, bb) if layout == "slot" else s[4, :bb]
        out = self.model(s[0, :bb, None], s[1, :bb, None], self.cache, s[2, :bb, None], s[3, :bb, None], read, lb)
        self.logits[:bb].copy_(out)

    def _padding(self, layout: str, bb: int) -> torch.Tensor:
        """Host [5, bb] inputs where every row is padding: token 0 at position 0, written to scratch."""
        buf = torch.zeros((5, bb), dtype=torch.long)
        buf[2] = self.cache.scratch
        buf[4] = torch.arange(bb) if layout == "slot" else self.cache.scratch
        return buf

    def _capture(self, layout: str, bb: int, lb: int) -> torch.cuda.CUDAGraph:
        self.static[:, :bb].copy_(self._padding(layout, bb))  # warm-up runs must write only the scratch slot
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(2):
                self._forward(layout, bb, lb)
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, pool=self.pool):
            self._forward(layout, bb, lb)
        return graph

    def ctx_buckets(self) -> list[int]:
        out, ctx = [], MIN_CTX_BUCKET
        while True:
            out.append(min(ctx, self.max_len))
            if ctx >= self.max_len:
                return out
            ctx *= 2

    def capture_all(self, max_batch: int | None = None, layouts: Sequence[str] = ("slot", "gather")) -> int:
        """Capture every graph up front (call during warm-up so no measured step pays for a capture)."""
        if not self.use_graphs:
            return 0
        top = self.buckets[-1] if max_batch is None else bucket_for(max_batch, self.buckets) or self.buckets[-1]
        for layout in layouts:
            for bb in self.buckets:
                if bb > top:
                    break
                for lb in self.ctx_buckets():
                    if (layout, bb, lb) not in self.graphs:
                        self.graphs[(layout, bb, lb)] = self._capture(layout, bb, lb)
        return len(self.graphs)

    def _place(self, rslot: list[int]) -> tuple[str, int, list[int]] | None:
        """Choose the layout and bucket; returns (layout, bb, bucket row of each input row). The slot layout
        may use up to twice the rows of the batch's own bucket: on a GPU a padding row costs only its share
        of attention reads, about what gathering a real row costs."""
        b, scratch = len(rslot), self.cache.scratch
        bb = bucket_for(b, self.buckets)
        if bb is None:
            return None
        real = [s for s in rslot if s != scratch]
        assert len(set(real)) == len(real), "two rows of one step share a KV slot"
        sb = bucket_for(max(real, default=0) + 1, self.buckets)
        if sb is not None and sb <= 2 * bb:
            sb = max(sb, bb)
            taken = set(real)
            holes = iter(j for j in range(sb) if j not in taken)
            rows = [s if s != scratch else next(holes, -1) for s in rslot]
            if -1 not in rows:
                return "slot", sb, rows
        return "gather", bb, list(range(b))

    def run(self, toks, pos, wslot, wpos, rslot, ctx_len: int) -> tuple[torch.Tensor, list[int]] | None:
        """Host lists of one token per row. Returns (logits [bb, vocab] in the shared buffer, bucket row of
        each input row), or None when the batch exceeds the largest bucket."""
        placed = self._place(rslot)
        if placed is None:
            return None
        layout, bb, rows = placed
        lb = ctx_bucket_for(ctx_len, self.max_len)
        buf = self._padding(layout, bb)
        idx = torch.tensor(rows, dtype=torch.long)
        buf[:, idx] = torch.tensor([toks, pos, wslot, wpos, rslot], dtype=torch.long)
        if layout == "slot":
            buf[4] = torch.arange(bb)  # the view reads slot j for row j; idle rows read a hole, harmlessly
        key = (layout, bb, lb)
        if self.use_graphs and key not in self.graphs:
            self.graphs[key] = self._capture(layout, bb, lb)
        self.static[:, :bb].copy_(buf.to(self.static.device, non_blocking=True))
        self.last_layout = layout
        if self.use_graphs:
            self.graphs[key].replay()
        else:
            self._forward(layout, bb, lb)
        return self.logits[:bb], rows


class _Timer:
    """CUDA events on CUDA (device time between two points on the stream), perf_counter on CPU."""

    def __init__(self, device: torch.device) -> None:
        self.cuda = device.type == "cuda"

    def start(self) -> None:
        if self.cuda:
            self._a = torch.cuda.Event(enable_timing=True)
            self._b = torch.cuda.Event(enable_timing=True)
            self._a.record()
        else:
            self._t = time.perf_counter()

    def stop(self) -> float:
        if self.cuda:
            self._b.record()
            self._b.synchronize()
            return self._a.elapsed_time(self._b) / 1000.0
        return time.perf_counter() - self._t


class TorchEngine:
    """The real-model engine (implements steps.Engine). Build it with load_engine().

    Attributes for the runner and the profiler: max_model_len, num_slots (sequences resident at once),
    kv_bytes_per_token, weight_bytes, params, device, dtype, cfg (model.ModelConfig); model_info() for the
    result file. Options: use_cuda_graphs / bucketed_decode (default: on with CUDA), keep_logits (tests:
    keep each sampled row's logits in last_logits). Call warmup() before a measured run on CUDA so no step
    pays for a graph capture."""

    def __init__(
        self,
        model: Transformer,
        cfg: ModelConfig,
        *,
        num_slots: int,
        device: torch.device,
        dtype: torch.dtype,
        seed: int = 0,
        use_cuda_graphs: bool | None = None,
        bucketed_decode: bool | None = None,
        keep_logits: bool = False,
    ) -> None:
        self.model, self.cfg, self.device, self.dtype, self.seed = model, cfg, device, dtype, seed
        self.max_model_len = cfg.max_model_len
        self.cache = KVCache(cfg, num_slots, device, dtype)
        self.num_slots = num_slots
        self.kv_bytes_per_token = self.cache.bytes_per_token
        self.weight_bytes = model.weight_bytes()
        self.params = model.param_count()
        graphs = device.type == "cuda" if use_cuda_graphs is None else use_cuda_graphs
        bucketed = graphs if bucketed_decode is None else (bucketed_decode or graphs)
        self.decoder = DecodeRunner(model, self.cache, graphs, BATCH_BUCKETS) if bucketed else None
        self.keep_logits = keep_logits
        # what the weights are, for the result's `model` block; load_engine replaces it for a checkpoint
        self.weights_info: dict = {"weights": "random (seeded)", "weights_seed": seed}
        self.last_logits: dict[str, torch.Tensor] = {}  # seq_id -> logits of its last sampled position (tests)
        self._seqs: dict[str, _Seq] = {}
        self._timer = _Timer(device)
        self._swap_timer = _Timer(device)

    # ---- info ----------------------------------------------------------------------------------------
    def model_info(self) -> dict:
        if self.device.type == "cuda":
            device_name = torch.cuda.get_device_name(self.device)
        else:
            from inferneo_bench.engine.hw import cpu_name

            device_name = cpu_name()
        return {
            "name": self.cfg.name,
            "family": self.cfg.family,
            "params": self.params,
            "dtype": str(self.dtype).removeprefix("torch."),
            "device_type": self.device.type,
            "device_name": device_name,
            "max_model_len": self.max_model_len,
            "num_slots": self.num_slots,
            "kv_bytes_per_token": self.kv_bytes_per_token,
            "weight_bytes": self.weight_bytes,
            **self.weights_info,
        }

    def tokens_of(self, seq_id: str) -> list[int]:
        """The sequence's token list (prompt + sampled), a copy."""
        seq = self._seqs[seq_id]
        return seq.ids(0, len(seq))

    def warmup(self, max_batch: int | None = None) -> int:
        """Capture decode CUDA graphs up front (no-op elsewhere); returns how many graphs exist."""
        if self.decoder is None:
            return 0
        with torch.inference_mode():
            n = self.decoder.capture_all(max_batch)
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        return n

    # ---- Engine protocol -------------------------------------------------------------------------------
    def add_sequence(self, seq_id: str, prompt_len: int, prompt_ids: Sequence[int] | None = None) -> None:
        if seq_id in self._seqs:
            raise ValueError(f"sequence {seq_id!r} is already registered")
        assert 0 < prompt_len <= self.max_model_len, f"prompt of {prompt_len} tokens vs context {self.max_model_len}"
        digest = hashlib.blake2b(f"{self.seed}:{seq_id}".encode(), digest_size=8).digest()
        seq = _Seq(prompt_len, int.from_bytes(digest, "little") & ((1 << 63) - 1), self.cfg.vocab_size)
        if prompt_ids is not None:
            ids = [int(t) for t in prompt_ids]
            if len(ids) != prompt_len:
                raise ValueError(f"sequence {seq_id!r}: {len(ids)} prompt ids but prompt_len {prompt_len}")
            if ids and not (0 <= min(ids) and max(ids) < self.cfg.vocab_size):
                raise ValueError(f"sequence {seq_id!r}: prompt ids outside the vocabulary [0, {self.cfg.vocab_size})")
            seq.prompt = torch.tensor(ids, dtype=torch.int32)
        self._seqs[seq_id] = seq

    def step(self, plan: StepPlan) -> StepResult:
        failed: dict[str, str] = {}
        self.last_logits.clear()
        with torch.inference_mode():
            self._timer.start()
            swap_s = self._apply_lifecycle(plan, failed)
            rows = self._prepare_rows(plan, failed)
            calls = self._group(rows, plan.padded)
            try:
                tokens, useful, computed = self._run_calls(calls)
            except _OOMInCall as exc:
                tokens, useful, computed = {}, 0, 0
                for row in rows:
                    if row.seq is not None:
                        failed[row.seq_id] = str(exc)
                        self._release(row.seq)
                self._recover_memory()
            step_s = self._timer.stop()
        return StepResult(step_s, tokens, useful, computed - useful, failed, swap_s)

    def reset(self) -> None:
        """Forget every sequence and free every slot, keeping weights and graphs: the runner calls it between
        replays so each strategy starts from the same empty engine."""
        for seq in self._seqs.values():
            self._release(seq)
            seq.host_kv = None
        self._seqs.clear()
        self.last_logits.clear()

    def forget(self, seq_id: str) -> None:
        """Drop an ended sequence for good (its KV slot and host copy too); unknown ids are ignored. A server
        calls it when a request ends, so a long-running engine keeps no state for finished requests."""
        seq = self._seqs.pop(seq_id, None)
        if seq is not None:
            self._release(seq)
            seq.host_kv = None

    @property
    def kv_slots_used(self) -> int:
        """KV cache slots held by sequences now (of num_slots)."""
        return self.num_slots - self.cache.free_slots

    def close(self) -> None:
        """Release the model, cache and graphs (idempotent); the engine cannot step afterwards."""
        self._seqs.clear()
        self.last_logits.clear()
        self.decoder = None
        self.__dict__.pop("cache", None)
        self.__dict__.pop("model", None)
        if self.device.type == "cuda":
            torch.cuda.empty_cache()

    # ---- internals -------------------------------------------------------------------------------------
    def _release(self, seq: _Seq) -> None:
        if seq.slot is not None:
            self.cache.release(seq.slot)
            seq.slot = None
        seq.kv_len = 0

    def _recover_memory(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.empty_cache()

    def _apply_lifecycle(self, plan: StepPlan, failed: dict[str, str]) -> float:
        for sid in plan.free:
            seq = self._seqs.get(sid)
            if seq is not None:
                self._release(seq)
                seq.host_kv = None
        if not plan.swap_out and not plan.swap_in:
            return 0.0
        self._swap_timer.start()
        for sid in plan.swap_out:
            seq = self._seqs[sid]
            assert seq.slot is not None, f"swap_out of {sid!r}, which holds no KV slot"
            seq.host_kv = self.cache.copy_out(seq.slot, seq.kv_len)
            self.cache.release(seq.slot)
            seq.slot = None
        for sid in plan.swap_in:
            seq = self._seqs[sid]
            assert seq.host_kv is not None, f"swap_in of {sid!r}, which was not swapped out"
            slot = self.cache.alloc()
            if slot is None:
                failed[sid] = f"no free KV cache slot for swap-in (num_slots={self.num_slots})"
                continue
            self.cache.copy_in(slot, *seq.host_kv)
            seq.slot, seq.kv_len, seq.host_kv = slot, seq.host_kv[0].shape[2], None
        return self._swap_timer.stop()

    def _prepare_rows(self, plan: StepPlan, failed: dict[str, str]) -> list[_Row]:
        rows = []
        for st in plan.seqs:
            if st.idle:
                rows.append(_Row(st.seq_id, st, None))
                continue
            if st.seq_id in failed:
                continue
            seq = self._seqs.get(st.seq_id)
            assert seq is not None, f"step for unregistered sequence {st.seq_id!r}"
            end = st.start_pos + st.num_tokens
            assert st.num_tokens >= 1, f"{st.seq_id!r}: num_tokens must be >= 1"
            assert end <= self.max_model_len, f"{st.seq_id!r}: position {end} beyond the context {self.max_model_len}"
            assert end <= len(seq), f"{st.seq_id!r}: computes tokens up to {end} of {len(seq)} known"
            assert not st.samples or end == len(seq), f"{st.seq_id!r}: samples before its last token"
            if seq.slot is None:
                assert seq.host_kv is None, f"{st.seq_id!r} is swapped out; swap it in first"
                seq.slot = self.cache.alloc()
                seq.kv_len = 0
                if seq.slot is None:
                    failed[st.seq_id] = f"no free KV cache slot (num_slots={self.num_slots})"
                    continue
            assert st.start_pos <= seq.kv_len, f"{st.seq_id!r}: start_pos {st.start_pos} but {seq.kv_len} cached"
            rows.append(_Row(st.seq_id, st, seq))
        return rows

    @staticmethod
    def _group(rows: list[_Row], padded: bool) -> list[tuple[list[_Row], int]]:
        """Forward calls of the step as (rows, T)."""
        active = [r for r in rows if r.seq is not None]
        idle = [r for r in rows if r.seq is None]
        if padded:
            t = max((r.step.num_tokens for r in active), default=1)
            if t == 1:
                return [(active + idle, 1)] if rows else []
            calls = [(active, t)]
            return calls + ([(idle, 1)] if idle else [])
        groups: dict[int, list[_Row]] = {}
        for r in active:
            groups.setdefault(r.step.num_tokens, []).append(r)
        calls = [(g, t) for t, g in sorted(groups.items())]
        if idle:  # idle rows only appear in frozen batches; handle a stray one the same way
            calls.append((idle, 1))
        return calls

    def _run_calls(self, calls: list[tuple[list[_Row], int]]) -> tuple[dict[str, int], int, int]:
        sampled_ids: list[str] = []
        sampled_logits: list[torch.Tensor] = []
        useful = computed = 0
        try:
            for rows, t in calls:
                logits = self._forward_call(rows, t)
                for r in rows:
                    computed += t
                    if r.seq is None:
                        continue
                    useful += r.step.num_tokens
                    r.seq.kv_len = max(r.seq.kv_len, r.step.start_pos + r.step.num_tokens)
                sample_rows = [r for r in rows if r.seq is not None and r.step.samples]
                if sample_rows:
                    sampled_ids.extend(r.seq_id for r in sample_rows)
                    sampled_logits.append(logits)
            if not sampled_ids:
                return {}, useful, computed
            all_logits = torch.cat(sampled_logits) if len(sampled_logits) > 1 else sampled_logits[0]
            toks = all_logits.argmax(dim=-1).tolist()
        except (torch.OutOfMemoryError, RuntimeError) as exc:
            if not _is_oom(exc):
                raise
            first = (str(exc).splitlines() or [type(exc).__name__])[0]
            raise _OOMInCall(
                first if first.startswith("CUDA out of memory") else f"CUDA out of memory: {first}"
            ) from exc
        out = {}
        for i, (sid, tok) in enumerate(zip(sampled_ids, toks, strict=True)):
            self._seqs[sid].out.append(tok)
            out[sid] = tok
            if self.keep_logits:
                self.last_logits[sid] = all_logits[i].clone()
        return out, useful, computed

    def _forward_call(self, rows: list[_Row], t: int) -> torch.Tensor:
        """One batched forward over `rows`, each padded to `t` tokens. Returns the float32 logits of the
        sampling rows' last real tokens, in row order."""
        scratch, max_len = self.cache.scratch, self.max_model_len
        # Sort by slot so a batch on consecutive slots reads the cache through a view, not a gather.
        rows.sort(key=lambda r: scratch if r.seq is None else r.seq.slot)
        toks, pos, wslot, wpos, rslot, logit_rows = [], [], [], [], [], []
        ctx = 1
        for i, r in enumerate(rows):
            if r.seq is None:  # idle: one padding token against the scratch slot
                toks.append([0] * t)
                pos.append([0] * t)
                wslot.append([scratch] * t)
                wpos.append(list(range(t)))
                rslot.append(scratch)
                continue
            s0, n = r.step.start_pos, r.step.num_tokens
            toks.append(r.seq.ids(s0, s0 + n) + [0] * (t - n))
            pos.append([min(s0 + j, max_len - 1) for j in range(t)])
            wslot.append([r.seq.slot] * n + [scratch] * (t - n))
            wpos.append(list(range(s0, s0 + n)) + list(range(n, t)))
            rslot.append(r.seq.slot)
            ctx = max(ctx, min(s0 + t, max_len))
            if r.step.samples:
                logit_rows.append(i * t + n - 1)
        dev = self.device
        if t == 1 and self.decoder is not None:
            flat = [x[0] for x in toks], [p[0] for p in pos], [w[0] for w in wslot], [w[0] for w in wpos]
            res = self.decoder.run(*flat, rslot, ctx)
            if res is not None:
                logits, at = res
                pick = torch.tensor([at[i] for i in logit_rows], dtype=torch.long).to(dev, non_blocking=True)
                return logits.index_select(0, pick)
        b = len(rows)
        packed = torch.tensor([toks, pos, wslot, wpos], dtype=torch.long).to(dev, non_blocking=True)
        if rslot == list(range(rslot[0], rslot[0] + b)):
            read: slice | torch.Tensor = slice(rslot[0], rslot[0] + b)
        else:
            read = torch.tensor(rslot, dtype=torch.long).to(dev, non_blocking=True)
        lrows = torch.tensor(logit_rows, dtype=torch.long).to(dev, non_blocking=True)
        # fresh prefills (static batches, first chunks) need no mask: causal attention, flash-capable
        causal = t > 1 and ctx == t and all(r.seq is not None and r.step.start_pos == 0 for r in rows)
        return self.model(packed[0], packed[1], self.cache, packed[2], packed[3], read, ctx, lrows, causal)


def _resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError as exc:
        raise UserError(f"--device {device!r}: {exc}; use auto, cpu or cuda[:N]") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"--device {device}: CUDA is not available on this machine; use --device cpu or auto")
    if dev.type not in ("cpu", "cuda"):
        raise UserError(f"--device {device}: only cpu and cuda are supported")
    return dev


def check_model_memory(cfg: ModelConfig, dtype: torch.dtype, device: torch.device, checkpoint_bytes: int = 0) -> None:
    """Refuse a model whose weights (from its shapes) do not fit the device's free memory, before allocating
    them: a hostile config.json must not ask for terabytes. On the CPU the checkpoint files are held in memory
    while loading, on top of the weights."""
    from inferneo_bench import validation
    from inferneo_bench.engine.model import estimate_params

    weights = estimate_params(cfg) * torch.empty((), dtype=dtype).element_size()
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        validation.check_memory(
            weights,
            f"model {cfg.name!r} ({estimate_params(cfg) / 1e9:.2f} B parameters, {str(dtype).removeprefix('torch.')})",
            "use a smaller model or a lower-precision --dtype",
            available=lambda: int(free),
        )
        weights = 0
    validation.check_memory(
        weights + checkpoint_bytes,
        f"model {cfg.name!r} ({estimate_params(cfg) / 1e9:.2f} B parameters, {str(dtype).removeprefix('torch.')}"
        + (", plus its checkpoint files while loading)" if checkpoint_bytes else ")"),
        "use a smaller model, a lower-precision --dtype, or a machine with more memory",
    )


def load_engine(
    model: str,
    device: str = "auto",
    dtype: str | None = None,
    max_num_seqs: int = 256,
    max_model_len: int | None = None,
    kv_cache_tokens: int | None = None,
    seed: int = 0,
    **engine_options,
) -> TorchEngine:
    """Build a TorchEngine from a preset name or a local Hugging Face checkpoint folder.

    KV slots: num_slots = min(max_num_seqs, kv_cache_tokens // max_model_len); kv_cache_tokens defaults to
    what fits (see kv_cache.default_kv_tokens). Default dtype: bfloat16 on CUDA, float32 on CPU."""
    from pathlib import Path

    dev = _resolve_device(device)
    if dtype is None:
        tdtype = torch.bfloat16 if dev.type == "cuda" else torch.float32
    elif dtype in DTYPES:
        tdtype = DTYPES[dtype]
    else:
        raise UserError(f"--dtype {dtype!r}: unknown; use one of float32, bfloat16, float16")
    state = None
    checkpoint: int | None = None  # bytes of a local checkpoint's weight files
    if model in PRESETS:
        cfg = PRESETS[model]
    elif Path(model).is_dir():
        from inferneo_bench.engine.hf_loader import checkpoint_bytes, read_config

        cfg = read_config(Path(model))
        checkpoint = checkpoint_bytes(Path(model))
    else:
        raise UserError(
            f"--model {model!r}: not a preset nor a local folder; use one of {', '.join(PRESETS)} "
            "or the path of a Hugging Face checkpoint folder (config.json + *.safetensors)"
        )
    if max_model_len is not None:
        if not 1 <= max_model_len <= cfg.max_positions:
            raise UserError(f"--max-model-len {max_model_len}: must be within 1..{cfg.max_positions} for {cfg.name}")
        cfg = cfg.with_max_model_len(max_model_len)
    if max_num_seqs < 1:
        raise UserError(f"--max-num-seqs {max_num_seqs}: must be >= 1")
    check_model_memory(cfg, tdtype, dev, checkpoint or 0)
    if checkpoint is not None:
        from inferneo_bench.engine.hf_loader import read_weights

        state = read_weights(Path(model), cfg)
    net = build_model(cfg, dev, tdtype, seed=seed if state is None else None)
    if state is not None:
        from inferneo_bench.engine.hf_loader import assign_state

        assign_state(net, state)
        del state
    tokens = kv_cache_tokens if kv_cache_tokens is not None else default_kv_tokens(cfg, tdtype, dev, max_num_seqs)
    num_slots = min(max_num_seqs, tokens // cfg.max_model_len)
    if num_slots < 1:
        raise UserError(
            f"KV cache of {tokens} tokens holds no sequence of max_model_len {cfg.max_model_len}; "
            "raise --kv-cache-tokens or lower --max-model-len"
        )
    engine = TorchEngine(net, cfg, num_slots=num_slots, device=dev, dtype=tdtype, seed=seed, **engine_options)
    if model not in PRESETS:
        from inferneo_bench.engine.hf_loader import checkpoint_digest

        engine.weights_info = {"weights": str(Path(model).resolve()), "weights_sha256": checkpoint_digest(Path(model))}
    return engine
