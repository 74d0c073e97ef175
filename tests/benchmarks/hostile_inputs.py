"""Every example of issue 15 ("results you can trust under any input"), run from a shell: the table of input,
exit code and first line of output, and the peak memory (/usr/bin/time -v) of the bounded cases.

    python tests/benchmarks/hostile_inputs.py [--keep DIR] [--skip-big]

Builds every hostile input in a temporary folder (a 217 MB trace and a 1 GB result file among them, unless
--skip-big), runs `inferneo-bench` on each as a subprocess (the simulated engine where an engine is needed, so
the whole table takes a few minutes on a 2-core CPU), and prints one row per example. The read-only folder and
the full disk are small tmpfs mounts: they need root; without it those rows say "skipped". Not collected by
pytest (the per-kind tests in tests/test_trust_*.py assert the same behaviour on small inputs).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
V1 = ROOT / "tests" / "data" / "results" / "chat-cpu" / "fixed_size.json"  # a schema-1 (single JSON) result
CLI = [sys.executable, "-m", "inferneo_bench"]
SIM = ["--engine", "sim", "--profile", "tiny-cpu"]
QUICK = [*SIM, "--min-duration", "0", "--min-requests", "1", "-q"]


class Table:
    def __init__(self) -> None:
        self.rows: list[tuple[str, str, str, str]] = []

    def add(self, kind: str, label: str, code: object, line: str) -> None:
        self.rows.append((kind, label, str(code), line))
        print(f"| {kind} | {label} | {code} | {line} |", flush=True)


def first_line(text: str) -> str:
    """The first non-blank line; for `check`, its verdict line and the first flagged reason instead of the table's
    title (the first line a user reads that says anything)."""
    lines = text.splitlines()
    verdict = [line.strip() for line in lines if line.startswith("check: ")]
    if verdict:
        flagged = [
            line.strip()
            for line in lines
            if re.match(
                r"  \S+: .*(REGRESSION|INCONCLUSIVE|FAIL|missing|no "
                r"request|worse|cannot separate)",
                line,
            )
        ]
        reasons = [line.strip() for line in lines if line.startswith("  ") and ": " in line]
        text = " / ".join([verdict[-1], (flagged or reasons or [""])[0]])
        return (text[:297] + "...") if len(text) > 300 else text
    for line in lines:
        if line.strip():
            line = line.strip()
            return (line[:157] + "...") if len(line) > 160 else line
    return "(no output)"


def run(args: list[str], cwd: Path, timeout: float = 600, measure: bool = False) -> tuple[int, str, int | None]:
    """(exit code, first line of stderr-or-stdout, peak RSS kB when measured)."""
    cmd = (["/usr/bin/time", "-v"] if measure else []) + args
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    err = proc.stderr
    rss = None
    if measure:
        m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", err)
        rss = int(m.group(1)) if m else None
        err = err[: err.find("\tCommand being timed")] if "\tCommand being timed" in err else err
    text = err if err.strip() and (proc.returncode != 0 or not proc.stdout.strip()) else proc.stdout
    return proc.returncode, first_line(text), rss


def cli(*args: str) -> list[str]:
    return [*CLI, *args]


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def sim_result(work: Path, run_id: str, *extra: str, strategy: str = "continuous", n: str = "20") -> Path:
    proc = subprocess.run(
        cli("run", *QUICK, "-n", n, "--strategy", strategy, "--out", str(work / "res"), "--run-id", run_id, *extra),
        capture_output=True,
        cwd=work,
    )
    if proc.returncode not in (0, 4):  # 4: saved, but INVALID (some examples are INVALID on purpose)
        raise RuntimeError(f"run {run_id} failed: {proc.stderr.decode()[-300:]}")
    return work / "res" / run_id


def edited(src: Path, dst: Path, edit) -> Path:
    """A copy of a result (an entry folder, or a schema-1 file) at `dst`, its JSON changed by `edit`."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    if src.is_dir():
        shutil.copytree(src, dst, dirs_exist_ok=True)
        meta = dst / "result.json"
    else:
        meta = dst
        meta.write_text(src.read_text())
    data = json.loads(meta.read_text())
    edit(data)
    meta.write_text(json.dumps(data))
    return dst


def mount_tmpfs(path: Path, options: str) -> bool:
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        return False
    return (
        subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], capture_output=True).returncode == 0
    )


def big_trace(path: Path, size_mb: int) -> Path:
    """An Azure-format trace of about `size_mb` MB (one row per 10 ms)."""
    with path.open("w") as fh:
        fh.write("TIMESTAMP,ContextTokens,GeneratedTokens\n")
        i, written = 0, 0
        while written < size_mb * 1_000_000:
            day, rest = divmod(i, 8_640_000)
            sec, frac = divmod(rest, 100)
            clock = f"{sec // 3600:02d}:{sec // 60 % 60:02d}:{sec % 60:02d}.{frac * 100000:07d}"
            line = f"2023-11-{16 + day:02d} {clock},374,44\n"
            fh.write(line)
            written += len(line)
            i += 1
    return path


def big_result(src: Path, dst: Path, size_mb: int) -> Path:
    """A valid result file of about `size_mb` MB: a real result's head, its request records repeated."""
    data = json.loads(src.read_text())
    records = data["requests"]
    dst.parent.mkdir(parents=True, exist_ok=True)
    with dst.open("w") as fh:
        head = {
            k: data[k]
            for k in ("schema_version", "tool", "run", "environment", "model", "workload", "strategy", "summary")
        }
        fh.write(json.dumps(head, separators=(",", ":"))[:-1] + ',"requests":[')
        written, i = 0, 0
        while written < size_mb * 1_000_000:
            r = dict(records[i % len(records)], request_id=f"x{i}")
            line = ("," if i else "") + json.dumps(r, separators=(",", ":"))
            fh.write(line)
            written += len(line)
            i += 1
        fh.write('],"steps":' + json.dumps(data["steps"]) + ',"telemetry":' + json.dumps(data["telemetry"]) + "}\n")
    return dst


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", type=Path, help="build the inputs here and keep them")
    parser.add_argument("--skip-big", action="store_true", help="skip the 217 MB trace and the 1 GB result file")
    args = parser.parse_args()
    work = args.keep or Path(tempfile.mkdtemp(prefix="hostile-"))
    work.mkdir(parents=True, exist_ok=True)
    t = Table()
    memory: list[tuple[str, int | None, int]] = []
    print("| kind | input | exit | first line of output |\n|---|---|--:|---|")
    out = str(work / "out")

    # ---- kind 1: validation --------------------------------------------------------------------------------
    for opt in (
        ["--slo", "ttft_ms=inf"],
        ["--slo", "ttft_ms=nan"],
        ["--min-duration", "nan"],
        ["--max-arrival-lag-ms", "inf"],
        ["--telemetry-interval", "inf"],
        ["--set", "max_queue_delay_ms=inf"],
        ["--slo", "ttft_ms=-5"],
        ["--warmup", "-3"],
        ["--request-timeout", "nan"],
        ["--max-model-len", "0"],
        ["--run-id", "../x"],
        ["--run-id", "/tmp/abs"],
    ):
        code, line, _ = run(cli("run", *SIM, *opt, "--out", out), work)
        t.add("1", f"run --engine sim {' '.join(opt)}", code, line)
    write(work / "a-file", "x")
    code, line, _ = run(cli("run", *SIM, "--out", str(work / "a-file")), work)
    t.add("1", "run --out <a file>", code, line)
    if mount_tmpfs(work / "ro", "size=1m,ro"):
        code, line, _ = run(cli("run", *SIM, "--out", str(work / "ro")), work)
        t.add("1", "run --out <read-only folder (tmpfs, ro)>", code, line)
        subprocess.run(["umount", str(work / "ro")])
    else:
        t.add("1", "run --out <read-only folder>", "-", "skipped: mounting a read-only tmpfs needs root")
    for size, what in (("32k", "full disk (32 kB tmpfs)"), ("128k", "nearly full disk (128 kB tmpfs)")):
        if mount_tmpfs(work / f"full-{size}", f"size={size}"):
            code, line, _ = run(cli("run", *SIM, "--out", str(work / f"full-{size}")), work)
            t.add("1", f"run --out <{what}>", code, line)
            subprocess.run(["umount", str(work / f"full-{size}")])
        else:
            t.add("1", f"run --out <{what}>", "-", "skipped: mounting a tmpfs needs root")
    header = "TIMESTAMP,ContextTokens,GeneratedTokens\n"
    cells = {
        "token count 1e300 (trace cell)": ("t-1e300.csv", header + "2023-11-16 18:15:46.6805900,1e300,44\n"),
        "count beyond int64 (JSONL)": (
            "t-int64.jsonl",
            '{"arrival_s":0,"prompt_tokens":99999999999999999999999,"output_tokens":4}\n',
        ),
        "CSV field of 140,000 characters": (
            "t-wide.csv",
            header + '2023-11-16 18:15:46.68,"' + "9" * 140_000 + '",4\n',
        ),
        "JSON nested 100,000 deep (trace line)": (
            "t-deep.jsonl",
            '{"arrival_s":0,"prompt_tokens":4,"output_tokens":4}\n' + "[" * 100_000 + "]" * 100_000 + "\n",
        ),
    }
    for label, (name, text) in cells.items():
        code, line, _ = run(cli("run", *SIM, "--workload", str(write(work / name, text)), "--out", out), work)
        t.add("1", label, code, line)
    spec = "name: w\nseed: {seed}\nsynthetic: {{num_requests: 4, prompt_tokens: {p}, output_tokens: 4}}\n"
    for label, text in (
        ("spec seed: -1", spec.format(seed=-1, p=8)),
        ("spec prompt_tokens: 'many' (wrong type)", spec.format(seed=0, p="many")),
    ):
        code, line, _ = run(cli("run", *SIM, "--workload", str(write(work / "s.yaml", text)), "--out", out), work)
        t.add("1", label, code, line)
    code, line, _ = run(
        cli(
            "run",
            *SIM,
            "--workload",
            str(write(work / "sys.yaml", "name: s\ntrace:\n  path: /etc/passwd\n")),
            "--out",
            out,
        ),
        work,
    )
    t.add("1", "spec whose trace path is /etc/passwd (excerpt only)", code, line)
    ckpt = work / "ckpt"
    ckpt.mkdir(exist_ok=True)
    base_cfg = {"model_type": "gpt2", "n_embd": 8, "n_layer": 1, "n_head": 2, "vocab_size": 10, "n_positions": 8}
    write(ckpt / "config.json", json.dumps({**base_cfg, "n_layer": "12"}))
    code, line, _ = run(cli("run", "--model", str(ckpt), "--device", "cpu", "--out", out), work)
    t.add("1", 'model config.json n_layer: "12" (wrong type)', code, line)
    write(ckpt / "config.json", json.dumps(base_cfg))
    (ckpt / "model.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{corrupt header}")
    code, line, _ = run(cli("run", "--model", str(ckpt), "--device", "cpu", "--out", out), work)
    t.add("1", "corrupt model.safetensors", code, line)
    good = sim_result(work, "good") / "continuous"
    code, line, _ = run(
        cli("compare", str(edited(good, work / "bad" / "r", lambda d: d["summary"].__setitem__("p99_ttft_ms", "x")))),
        work,
    )
    t.add("1", 'result entry: summary.p99_ttft_ms "x"', code, line)
    code, line, _ = run(
        cli(
            "compare",
            str(edited(V1, work / "bad" / "v1.json", lambda d: d["requests"][0].__setitem__("arrival_s", "x"))),
        ),
        work,
    )
    t.add("1", 'schema-1 result file: requests[0].arrival_s "x"', code, line)
    write(work / "deep.json", "[" * 100_000 + "]" * 100_000)
    code, line, _ = run(cli("compare", str(work / "deep.json")), work)
    t.add("1", "result file nested 100,000 deep", code, line)

    # ---- kind 2: nothing lost (the kill test: tests/benchmarks/kill_test.py) ----------------------------------
    sim_result(work, "reuse")
    code, line, _ = run(cli("run", *QUICK, "-n", "20", "--out", str(work / "res"), "--run-id", "reuse"), work)
    t.add("3", "run --run-id reuse (folder holds an earlier run)", code, line)

    # ---- kind 3: comparability -------------------------------------------------------------------------------
    a = sim_result(work, "a", "--slo", "ttft_ms=500")
    b = sim_result(work, "b", "--slo", "ttft_ms=50")
    w = sim_result(work, "w", "--warmup", "10", "--slo", "ttft_ms=500")
    code, line, _ = run(cli("check", "--baseline", str(a), "--current", str(b)), work)
    t.add("3", "check: runs identical except their SLOs", code, line)
    code, line, _ = run(cli("compare", str(a / "continuous"), str(w / "continuous")), work)
    t.add("3", "compare: --warmup 10 vs 0", code, line)
    rej = sim_result(work, "rej", "--slo", "ttft_ms=500", "--set", "kv_cache_tokens=64")
    code, line, _ = run(cli("check", "--baseline", str(a), "--current", str(rej), "--force"), work)
    t.add("3", "check: every current request rejected (--force: config differs)", code, line)
    for label, value in (("NaN", "NaN"), ("text", '"fast"')):
        bad = work / f"gated-{label}" / "continuous"
        shutil.copytree(a / "continuous", bad)
        meta = bad / "result.json"
        meta.write_text(meta.read_text().replace('"output_throughput":', f'"output_throughput":{value},"x":', 1))
        code, line, _ = run(cli("check", "--baseline", str(a), "--current", str(bad.parent)), work)
        t.add("3", f"check: gated metric is {label}", code, line)
    two = sim_result(work, "two", "--slo", "ttft_ms=500", strategy="continuous,fixed")
    code, line, _ = run(cli("check", "--baseline", str(two), "--current", str(a)), work)
    t.add("3", "check: current lacks a strategy the baseline has", code, line)
    for side, values in (("pb", [3, 0, 0, 0, 4]), ("pc", [7, 7, 7, 6, 7])):
        for i, v in enumerate(values, start=1):

            def edit(d, v=v, i=i):
                d["summary"]["preemptions"] = v
                d["run"]["engine"], d["run"]["trial"] = "torch", i

            edited(a / "continuous", work / side / f"continuous-trial{i}", edit)
    code, line, _ = run(
        cli("check", "--baseline", str(work / "pb"), "--current", str(work / "pc"), "--metric", "preemptions"), work
    )
    t.add("3", "check --metric preemptions: 3,0,0,0,4 vs 7,7,7,6,7", code, line)
    for side, ttft in (("ob", 100.0), ("oc", 207.8)):

        def one(d, ttft=ttft):
            d["summary"]["p99_ttft_ms"] = ttft
            d["run"]["engine"] = "torch"

        edited(a / "continuous", work / side / "continuous", one)
    code, line, _ = run(cli("check", "--baseline", str(work / "ob"), "--current", str(work / "oc")), work)
    t.add("3", "check: one wall-clock trial per side, p99 TTFT +107.8%", code, line)
    torch_args = [
        "run",
        "--engine",
        "torch",
        "--model",
        "tiny",
        "-n",
        "16",
        "--time-scale",
        "8",
        "--min-duration",
        "0",
        "--min-requests",
        "1",
        "-q",
        "--strategy",
        "continuous",
        "--out",
        str(work / "res"),
    ]
    subprocess.run(cli(*torch_args, "--run-id", "t1"), capture_output=True, cwd=work)
    subprocess.run(cli(*torch_args, "--run-id", "t2"), capture_output=True, cwd=work)
    code, line, _ = run(
        cli("check", "--baseline", str(work / "res" / "t1"), "--current", str(work / "res" / "t2")), work
    )
    t.add("3", "check: two identical real-model runs, one trial each", code, line)
    code, line, _ = run(cli("run", "--engine", "torch", "--repeat", "3", "--num-requests", "0"), work)
    t.add("3", "run --repeat 3 (warning before the run)", code, line)

    # ---- kind 4: exhaustion ------------------------------------------------------------------------------------
    bomb = "name: bomb\nseed: 0\ndescription: &a [" + ",".join(['"lol"'] * 9) + "]\n"
    for level in "bcdefghi":
        prev = chr(ord(level) - 1)
        bomb += f"{level}: &{level} [" + ",".join([f"*{prev}"] * 9) + "]\n"
    bomb += "synthetic: {num_requests: 4, prompt_tokens: 8, output_tokens: 4}\n"
    code, line, rss = run(
        cli("run", *SIM, "--workload", str(write(work / "bomb.yaml", bomb)), "--out", out), work, measure=True
    )
    t.add("4", "YAML alias bomb in a spec", code, line)
    memory.append(("YAML alias bomb (9 levels of 9 aliases)", rss, code))
    huge = write(
        work / "huge.yaml",
        "name: huge\nseed: 0\nsynthetic: {num_requests: 1000000000, prompt_tokens: 8, output_tokens: 4}\n",
    )
    code, line, rss = run(cli("run", *SIM, "--workload", str(huge), "--out", out), work, measure=True)
    t.add("4", "spec num_requests: 1000000000", code, line)
    memory.append(("num_requests: 1000000000", rss, code))
    hostile = work / "hostile"
    hostile.mkdir(exist_ok=True)
    write(
        hostile / "config.json",
        json.dumps(
            {
                "model_type": "llama",
                "hidden_size": 65536,
                "num_hidden_layers": 1000,
                "num_attention_heads": 64,
                "intermediate_size": 262144,
                "vocab_size": 1000000,
            }
        ),
    )
    code, line, rss = run(cli("run", "--model", str(hostile), "--device", "cpu", "--out", out), work, measure=True)
    t.add("4", "hostile model config.json (hidden 65536, 1000 layers, vocab 1M)", code, line)
    memory.append(("hostile model config.json", rss, code))
    if not args.skip_big:
        trace = big_trace(work / "big-217MB.csv", 217)
        code, line, rss = run(
            cli("run", *QUICK, "--workload", str(trace), "-n", "20", "--out", out), work, measure=True
        )
        t.add("4", f"{trace.stat().st_size / 1e6:.0f} MB trace with -n 20 (sim)", code, line)
        memory.append((f"{trace.stat().st_size / 1e6:.0f} MB trace, run -n 20 --engine sim", rss, code))
        res = big_result(V1, work / "big" / "fixed_size.json", 1000)  # schema 1: every record inside the JSON
        base = work / "big-base" / "fixed_size.json"
        base.parent.mkdir(exist_ok=True)
        shutil.copy(V1, base)
        for command, label in ((["check", "-b", str(base.parent), "-c", str(res.parent)], "check"),
                               (["compare", str(res)], "compare (table)")):  # fmt: skip
            code, line, rss = run(cli(*command), work, measure=True)
            t.add("4", f"{label} on a {res.stat().st_size / 1e9:.2f} GB schema-1 result file", code, line)
            memory.append((f"{label}, a {res.stat().st_size / 1e9:.2f} GB schema-1 result file", rss, code))

    # ---- kind 5: edge semantics --------------------------------------------------------------------------------
    to = sim_result(work, "to", "--request-timeout", "0.05", n="80")
    from inferneo_bench import results

    loaded = results.load(to / "continuous")
    late = sum(r.status == "completed" and r.finish_s - r.arrival_s > 0.05 for r in loaded.requests)
    s = loaded.summary
    data = {"run": {"validity": loaded.run.validity}}
    t.add(
        "5",
        "run --request-timeout 0.05 (sim)",
        0,
        f"completed after the deadline: {late}; completed "
        f"{s['completed']}, cancelled {s['cancelled']}; INVALID: {'; '.join(data['run']['validity']['failed'][:2])}",
    )
    rows = (ROOT / "workloads" / "traces" / "AzureLLMInferenceTrace_conv.csv").read_text().splitlines()[:121]
    t2099 = write(work / "t2099.csv", "\n".join(rows) + "\n2099-11-16 18:15:46.6805900,374,44\n")
    code, line, _ = run(cli("run", *SIM, "--workload", str(t2099), "--out", out), work)
    t.add("5", "trace with one row dated 2099", code, line)
    code, line, _ = run(cli("run", *QUICK, "--workload", str(t2099), "--allow-long", "--out", out), work)
    t.add("5", "same, --allow-long (sim)", code, line)
    code, line, _ = run(
        [
            sys.executable,
            "-c",
            (
                "from inferneo_bench.runner.validity import judge, ValidityRules as V;"
                "s={'total_requests':120,'warmup_requests':0,'completed':41,'failed':79,'rejected':0,'cancelled':79,"
                "'duration':30.0,'arrival_lag_p99_ms':0.0};print(judge(s,'completed',V())['failed'])"
            ),
        ],
        work,
    )
    t.add("5", "79 of 120 requests cancelled: validity", code, line)
    data = json.loads((rej / "continuous" / "result.json").read_text())["summary"]
    t.add(
        "5",
        "vLLM's failed (all 20 rejected)",
        0,
        "failed {failed}, breakdown: rejected {rejected}, cancelled {cancelled}, errored {errored}".format(**data),
    )
    code, line, _ = run(
        [
            sys.executable,
            "-c",
            (
                "from inferneo_bench.results import RequestRecord as R; from inferneo_bench.metrics import summarize;"
                "s=summarize([R('a',0.0,8,0,4,4,5,'completed',finish_s=0.5)],[]);print('completed',s['completed'],"
                "'mean_ttft_ms',s['mean_ttft_ms'],'mean_e2el_ms',s['mean_e2el_ms'])"
            ),
        ],
        work,
    )
    t.add("5", "completed record with 0 output tokens: summarize", code, line)
    code, line, _ = run(
        [
            sys.executable,
            "-c",
            (
                "from inferneo_bench.results import RequestRecord as R; from inferneo_bench.metrics import meets_slo;"
                "r=R('r',3.2628747,8,1,1,1,5,'completed',first_token_s=3.51475,finish_s=3.51475);"
                "print('ttft_ms', (r.first_token_s-r.arrival_s)*1000, '<= 251.8753 ms in seconds (vLLM):',"
                "meets_slo(r,{'ttft_ms':251.8753}))"
            ),
        ],
        work,
    )
    t.add("5", "SLO exactly at the boundary (ttft_ms=251.8753)", code, line)

    print("\nPeak memory (/usr/bin/time -v, maximum resident set size):\n")
    print("| bounded case | exit | peak RSS |\n|---|--:|--:|")
    for label, rss, code in memory:
        print(f"| {label} | {code} | {rss / 1024:.0f} MB |" if rss else f"| {label} | {code} | n/a |")
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
