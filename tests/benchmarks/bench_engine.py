"""Decode speed of the torch engine: tokens/s, GB/s and model bandwidth utilization (MBU) per batch size.

    python tests/benchmarks/bench_engine.py                       # tiny and gpt2 on CPU (or llama-1b on CUDA)
    python tests/benchmarks/bench_engine.py --model llama-1b --device cuda --batches 1,8,64,256 --json bench.json

MBU = (weight bytes + KV bytes read per step) / step time / peak memory bandwidth. Peak: on CPU the measured
copy bandwidth (a large tensor copy, read + write counted); on CUDA the datasheet figure of the named GPU
when known (null otherwise), with the measured device-to-device copy bandwidth printed next to it.
Every sequence decodes from a context of --ctx tokens; the prefill is skipped (slots are marked filled) since
decode cost depends on the context length, not the cached values.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import torch  # noqa: E402

from inferneo_bench.engine import load_engine  # noqa: E402
from inferneo_bench.engine.hw import measured_copy_bandwidth  # noqa: E402
from inferneo_bench.steps import SeqStep, StepPlan  # noqa: E402

# Datasheet HBM bandwidth (bytes/s) of common data-centre GPUs, matched on torch.cuda.get_device_name().
DATASHEET_BW = (
    ("H200", 4.8e12),
    ("H100 NVL", 3.9e12),
    ("H100 PCIe", 2.0e12),
    ("H100", 3.35e12),  # SXM5
    ("A100-SXM4-80GB", 2.039e12),
    ("A100 80GB PCIe", 1.935e12),
    ("A100", 1.555e12),  # 40 GB
    ("L40S", 0.864e12),
    ("L4", 0.3e12),
)


def cuda_device(name: str) -> torch.device:
    """'auto' / 'cuda' / 'cuda:N' -> a CUDA device with its index (torch.cuda.set_device refuses a bare 'cuda')."""
    dev = torch.device("cuda" if name == "auto" else name)
    return dev if dev.index is not None else torch.device("cuda", torch.cuda.current_device())


def cuda_peak(device: torch.device) -> tuple[float | None, float]:
    """(datasheet bytes/s of the named GPU or None, measured device-to-device copy bytes/s, read + write)."""
    name = torch.cuda.get_device_name(device)
    sheet = next((bw for key, bw in DATASHEET_BW if key in name), None)
    x = torch.empty(1 << 30, dtype=torch.uint8, device=device)
    y = torch.empty_like(x)
    for _ in range(3):
        y.copy_(x)
    torch.cuda.synchronize(device)
    a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    a.record()
    for _ in range(10):
        y.copy_(x)
    b.record()
    b.synchronize()
    measured = 2 * x.numel() * 10 / (a.elapsed_time(b) / 1000)
    del x, y
    return sheet, measured


def bench(model: str, device: str, batches: list[int], ctx: int, steps: int, warmup: int) -> tuple[list[dict], dict]:
    max_b = max(batches)
    max_len = ctx + warmup + steps + 8
    engine = load_engine(model, device=device, max_num_seqs=max_b, max_model_len=max_len,
                         kv_cache_tokens=max_b * max_len)  # fmt: skip
    if engine.device.type == "cuda":
        t0 = time.perf_counter()
        n = engine.warmup(max_b)
        print(f"  captured {n} CUDA graphs in {time.perf_counter() - t0:.1f} s")
    rows = []
    for b in batches:
        ids = [f"b{b}-{i}" for i in range(b)]
        for sid in ids:
            engine.add_sequence(sid, ctx)
            seq = engine._seqs[sid]  # skip the prefill: mark the slot as holding ctx positions
            seq.slot, seq.kv_len = engine.cache.alloc(), ctx
        times, kv_read = [], []
        for k in range(warmup + steps):
            pos = ctx - 1 + k
            # decode input: the last known token at position pos (the prompt's last one, then each sampled)
            res = engine.step(StepPlan([SeqStep(s, pos, 1, True) for s in ids]))
            assert not res.failed, res.failed
            if k >= warmup:
                times.append(res.step_s)
                kv_read.append(b * (pos + 1) * engine.kv_bytes_per_token)
        engine.step(StepPlan([], free=ids))
        step_s = statistics.median(times)
        moved = engine.weight_bytes + statistics.median(kv_read)
        rows.append({"batch": b, "step_ms": step_s * 1e3, "tok_s": b / step_s, "gb_s": moved / step_s / 1e9})
    info = engine.model_info()
    engine.close()
    return rows, info


def build_parser() -> argparse.ArgumentParser:
    """The command line (also used by tests/test_gpu_acceptance.py to check the GPU script's arguments)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", action="append", help="preset or HF folder (repeatable)")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--batches", default="1,8,64,256")
    ap.add_argument("--ctx", type=int, default=128, help="context length each sequence decodes from")
    ap.add_argument("--steps", type=int, default=None, help="measured decode steps (default: 5 CPU, 50 CUDA)")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--threads", type=int, default=None, help="torch intra-op threads on CPU (default: torch's)")
    ap.add_argument("--json", default=None, help="also write every figure to this JSON file")
    return ap


def main() -> None:
    args = build_parser().parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    cuda = args.device.startswith("cuda") or (args.device == "auto" and torch.cuda.is_available())
    models = args.model or (["llama-1b"] if cuda else ["tiny", "gpt2"])
    steps = args.steps or (50 if cuda else 5)
    batches = [int(x) for x in args.batches.split(",")]
    if cuda:
        dev = cuda_device(args.device)
        torch.cuda.set_device(dev)  # events, graphs and the copy all on the benchmarked GPU
        sheet, measured = cuda_peak(dev)
        peak = sheet
        device_name = torch.cuda.get_device_name(dev)
        sheet_txt = "n/a" if sheet is None else f"{sheet / 1e9:.0f} GB/s"
        print(f"device: {device_name}; datasheet peak {sheet_txt}; measured copy {measured / 1e9:.0f} GB/s")
    else:
        from inferneo_bench.engine.hw import cpu_name

        peak = measured = measured_copy_bandwidth()
        sheet, device_name = None, cpu_name()
        print(f"device: {cpu_name()} ({torch.get_num_threads()} torch threads); "
              f"peak = measured copy bandwidth {peak / 1e9:.1f} GB/s")  # fmt: skip
    print(f"torch {torch.__version__}; decode from ctx {args.ctx}; {steps} measured steps (median) after {args.warmup}")
    report = {
        "device_name": device_name,
        "torch": torch.__version__,
        "datasheet_bw_gbs": None if sheet is None else sheet / 1e9,
        "measured_copy_bw_gbs": measured / 1e9,
        "ctx": args.ctx,
        "steps": steps,
        "warmup": args.warmup,
        "models": [],
    }
    for model in models:
        rows, info = bench(model, args.device, batches, args.ctx, steps, args.warmup)
        for r in rows:
            r["mbu_datasheet"] = None if sheet is None else r["gb_s"] * 1e9 / sheet
            r["mbu_measured"] = r["gb_s"] * 1e9 / measured
        report["models"].append({"model": info, "rows": rows})
        print(f"\n{info['name']} ({info['family']}, {info['params'] / 1e6:.1f} M params, {info['dtype']}, "
              f"weights {info['weight_bytes'] / 1e6:.0f} MB, KV {info['kv_bytes_per_token']} B/token)")  # fmt: skip
        print(f"{'batch':>6} {'step ms':>9} {'tokens/s':>10} {'GB/s':>8} {'MBU':>7} {'MBU(meas)':>10}")
        for r in rows:
            mbu = "n/a" if peak is None else f"{r['gb_s'] * 1e9 / peak:.1%}"
            mbu_m = f"{r['gb_s'] * 1e9 / measured:.1%}"
            print(f"{r['batch']:>6} {r['step_ms']:>9.2f} {r['tok_s']:>10.1f} {r['gb_s']:>8.2f} {mbu:>7} {mbu_m:>10}")
        base = rows[0]["tok_s"]
        print("tokens/s vs batch " + str(rows[0]["batch"]) + ": " +
              ", ".join(f"b{r['batch']} x{r['tok_s'] / base:.1f}" for r in rows))  # fmt: skip
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(report, indent=1) + "\n")
        print(f"figures written to {args.json}")


if __name__ == "__main__":
    main()
