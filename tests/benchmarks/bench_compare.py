"""How long `compare` takes on big result files: six strategies x N requests (default 3000, about an hour of
a busy chat trace's scale on the simulator), loading, table, all plots. Prints seconds per phase.

    python tests/benchmarks/bench_compare.py [N]
"""

from __future__ import annotations

import importlib.util
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from inferneo_bench import results  # noqa: E402
from inferneo_bench.report import plots, tables  # noqa: E402


def main(n: int) -> None:
    spec = importlib.util.spec_from_file_location("make_results", ROOT / "tests" / "data" / "make_results.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["make_results"] = mod
    spec.loader.exec_module(mod)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        for i, s in enumerate(mod.STRATEGIES):
            data = mod.make(s, run_id="bench", gpu=True, trial=None, jitter_seed=i, num_requests=n)
            mod.write(data, Path(tmp) / f"{s}.json")
        gen = time.perf_counter() - t0
        files = results.find_result_files([tmp])
        size = sum(f.stat().st_size for f in files)
        t0 = time.perf_counter()
        res = [results.load(f) for f in files]
        t_load = time.perf_counter() - t0
        t0 = time.perf_counter()
        comp = tables.compare(res, files)
        tables.render_text(tables.to_rich(comp), width=160)
        tables.to_markdown(comp), tables.to_csv(comp), tables.to_json(comp)
        t_table = time.perf_counter() - t0
        t0 = time.perf_counter()
        plots.save_all(comp.columns, Path(tmp) / "plots")
        t_plots = time.perf_counter() - t0
        steps = sum(len(r.steps) for r in res)
    print(f"6 strategies x {n} requests ({steps} steps, {size / 2**20:.1f} MiB of JSON; generated in {gen:.1f} s)")
    print(f"load   {t_load:6.2f} s")
    print(f"tables {t_table:6.2f} s  (all four formats)")
    print(f"plots  {t_plots:6.2f} s  (5 PNGs)")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 3000)
