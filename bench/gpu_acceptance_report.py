"""The report of bench/gpu_acceptance.py: reads what the stages wrote, checks the targets, renders the final
table, and packs the work folder into the few files the device tool brings back. Standard library only, so
a report is written even when the setup stage failed."""

from __future__ import annotations

import io
import json
import shutil
import tarfile
from pathlib import Path
from typing import Any

TELEMETRY_COUNTERS = (
    "gpu_util_pct",
    "mem_used_mb",
    "power_w",
    "energy_j",
    "sm_clock_mhz",
    "temp_c",
    "throttle_reasons",
)
MBU_TARGET, MBU_TARGET_BATCH = 0.60, 64  # issue 16: llama-1b decode at batch 64, MBU >= 60% (datasheet)
PROFILE_ERROR_TARGET = 0.05  # issue 16: the simulator profile's median error on held-out real steps
STRATEGY_ORDER = ("fixed_size", "adaptive", "coalescing", "latency_optimized", "throughput_optimized", "continuous")
OUT_FILES_MAX = 8  # the device tool brings back at most 8 files from $OUT ...
TAR_LIMIT_BYTES = 15 << 20  # ... of at most 16 MiB each


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None


def read_results(folder: Path) -> list[dict[str, Any]]:
    """The results of one run folder as plain dicts (strategy, summary, telemetry, validity, status), in the
    project's strategy order. Read through the project's own loader (inferneo_bench.results) when it imports,
    so a change of the storage layout needs no change here; else as plain JSON files."""
    rows = _load_with_project(folder) if folder.is_dir() else []
    if rows is None:
        rows = []
        for path in sorted(folder.glob("*.json")):
            data = read_json(path)
            if isinstance(data, dict) and "summary" in data:
                rows.append(_row(path.name, data.get("strategy"), data.get("summary"), data.get("telemetry"),
                                 data.get("run") or {}))  # fmt: skip
    rank = {name: i for i, name in enumerate(STRATEGY_ORDER)}
    return sorted(rows, key=lambda r: (rank.get(r["strategy"], len(rank)), r["file"]))


def _row(file: str, strategy: Any, summary: Any, telemetry: Any, run: dict[str, Any]) -> dict[str, Any]:
    return {
        "file": file,
        "strategy": (strategy or {}).get("name", Path(file).stem),
        "summary": summary or {},
        "telemetry": telemetry or {},
        "validity": run.get("validity") or {},
        "status": run.get("status"),
    }


def _load_with_project(folder: Path) -> list[dict[str, Any]] | None:
    try:
        from dataclasses import asdict

        from inferneo_bench import results

        paths = results.find_result_files([folder])
        loaded = [(p, results.load(p)) for p in paths]
    except Exception:  # noqa: BLE001 - the project does not import here, or reads differently: plain JSON
        return None
    return [_row(p.name, r.strategy, r.summary, r.telemetry, asdict(r.run)) for p, r in loaded]


def telemetry_check(row: dict[str, Any], need_nvml: bool) -> tuple[bool, str]:
    """Every counter measured in some sample, or null with the driver's reason. NVML off with its reason is
    honest on the CPU and a failure on the GPU machine (`need_nvml`)."""
    tel = row["telemetry"]
    if not tel.get("available"):
        reason = tel.get("reason")
        return bool(reason) and not need_nvml, f"NVML off: {reason}" if reason else "NVML off WITHOUT a reason"
    samples, errors = tel.get("samples") or [], tel.get("counter_errors") or {}
    measured = [k for k in TELEMETRY_COUNTERS if any(s.get(k) is not None for s in samples)]
    explained = [f"{k}: {errors[k]}" for k in TELEMETRY_COUNTERS if k not in measured and errors.get(k)]
    silent = [k for k in TELEMETRY_COUNTERS if k not in measured and not errors.get(k)]
    text = f"{len(measured)}/{len(TELEMETRY_COUNTERS)} counters measured in {len(samples)} samples"
    if explained:
        text += "; null with the driver's reason: " + "; ".join(explained)
    if silent:
        text += "; NULL WITHOUT A REASON: " + ", ".join(silent)
    return not silent, text


def pct(x: Any, digits: int = 1) -> str:
    return "n/a" if x is None else f"{100 * x:.{digits}f}%"


def num(x: Any, fmt: str = ".1f") -> str:
    return "n/a" if x is None else format(x, fmt)


def rel(a: Any, b: Any) -> str:
    return "n/a" if a is None or not b else f"{(a - b) / b:+.0%}"


def bench_rows(bench: Any) -> list[dict[str, Any]]:
    if not isinstance(bench, dict) or not bench.get("models"):
        return []
    return bench["models"][0].get("rows") or []


def mbu_headline(bench: Any) -> str:
    rows = bench_rows(bench)
    at = next((r for r in rows if r["batch"] == MBU_TARGET_BATCH), rows[-1] if rows else None)
    if at is None:
        return "no figures"
    datasheet, copy = pct(at.get("mbu_datasheet")), pct(at.get("mbu_measured"))
    return f"MBU at batch {at['batch']}: {datasheet} of datasheet, {copy} of measured copy"


def verdict(value: Any, target: float, higher_is_better: bool) -> str:
    if value is None:
        return "NOT MEASURED"
    return "PASS" if (value >= target if higher_is_better else value <= target) else "MISS"


def table(headers: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(headers)]

    def line(cells: list[str]) -> str:
        return "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()

    return [line(headers), line(["-" * w for w in widths])] + [line(r) for r in rows]


def build_summary(settings: dict[str, Any], work: Path, stages: list[dict[str, Any]], wall_s: float) -> dict:
    """Everything the final table shows, as one JSON-able dict (summary.json)."""
    need_nvml = not settings["dry_run"]
    bench = read_json(work / "bench.json")
    validate = read_json(work / "profile" / "validate.json")
    runs = {name: read_results(work / "runs" / name) for name in ("inproc", "sim", "serve")}
    at = next((r for r in bench_rows(bench) if r["batch"] == MBU_TARGET_BATCH), None)
    mbu = None if at is None else at.get("mbu_datasheet")
    checks = [telemetry_check(r, need_nvml) for r in runs["inproc"]]
    sweep_dir = work / "sweep"
    return {
        "mode": "dry-run (CPU, tiny model)" if settings["dry_run"] else "GPU",
        "settings": settings,
        "machine": read_json(work / "machine.json") or {},
        "wall_s": round(wall_s, 1),
        "stages": stages,
        "bench": bench,
        "mbu_target": {
            "batch": MBU_TARGET_BATCH,
            "target": MBU_TARGET,
            "mbu_datasheet": mbu,
            "verdict": verdict(mbu, MBU_TARGET, True),
        },
        "profile_validation": None if validate is None else {k: v for k, v in validate.items() if k != "rows"},
        "profile_target": {
            "target": PROFILE_ERROR_TARGET,
            "verdict": verdict((validate or {}).get("median_ape"), PROFILE_ERROR_TARGET, False),
        },
        "runs": {
            name: [
                {
                    "strategy": r["strategy"],
                    "status": r["status"],
                    "summary": r["summary"],
                    "validity": r["validity"],
                    "telemetry_check": telemetry_check(r, need_nvml)[1] if name == "inproc" else None,
                }
                for r in rows
            ]
            for name, rows in runs.items()
        },
        "telemetry_verdict": ("PASS" if all(ok for ok, _ in checks) else "MISS") if checks else "NOT MEASURED",
        "sweep": [read_json(f) for f in sorted(sweep_dir.rglob("sweep.json"))] if sweep_dir.is_dir() else [],
    }


def render(summary: dict[str, Any]) -> str:
    """The compact final table (printed last: only the end of the output comes back from the GPU machine)."""
    m = summary.get("machine") or {}
    lines = [
        f"=== inferneo-bench GPU acceptance: {summary['mode']}, {summary['wall_s']:.0f} s ===",
        f"machine: {m.get('device_name') or 'no CUDA device'}; torch {m.get('torch')}; python {m.get('python')}",
        "",
    ]
    lines += table(
        ["stage", "status", "s", "note (the first error line when it failed)"],
        [[st["name"], st["status"] if st["status"] == "ok" else st["status"].upper(), f"{st['wall_s']:.0f}", st["note"]]
         for st in summary["stages"]],
    )  # fmt: skip
    lines += [""] + _mbu_lines(summary) + [""] + _profile_lines(summary) + [""] + _run_lines(summary)
    lines += _sim_lines(summary) + _serve_lines(summary)
    if summary.get("sweep"):
        lines += ["", "sweep.json: " + json.dumps(summary["sweep"][0])[:400]]
    failed = [st["name"] for st in summary["stages"] if st["status"] in ("failed", "timeout")]
    lines += ["", f"stages failed: {', '.join(failed) or 'none'}; each stage's log is under logs/ of the work folder"]
    return "\n".join(lines)


def _mbu_lines(summary: dict[str, Any]) -> list[str]:
    bench, s = summary.get("bench") or {}, summary["settings"]
    sheet, copy = num(bench.get("datasheet_bw_gbs"), ".0f"), num(bench.get("measured_copy_bw_gbs"), ".0f")
    lines = [
        f"decode MBU ({s['model']} on {bench.get('device_name', 'n/a')}, ctx {s['bench_ctx']}; "
        f"datasheet {sheet} GB/s, measured copy {copy} GB/s):"
    ]
    rows = bench_rows(bench)
    if rows:
        lines += table(
            ["batch", "step ms", "tokens/s", "GB/s", "MBU datasheet", "MBU copy"],
            [[str(r["batch"]), num(r["step_ms"], ".2f"), num(r["tok_s"], ",.0f"), num(r["gb_s"], ".0f"),
              pct(r.get("mbu_datasheet")), pct(r.get("mbu_measured"))] for r in rows],
        )  # fmt: skip
    else:
        lines.append("  not measured (bench stage)")
    t = summary["mbu_target"]
    return lines + [f"target: MBU >= {pct(t['target'], 0)} of datasheet at batch {t['batch']}: {t['verdict']}"]


def _profile_lines(summary: dict[str, Any]) -> list[str]:
    v, target = summary.get("profile_validation"), summary["profile_target"]
    if v:
        kinds = ", ".join(f"{k} {pct(x)}" for k, x in (v.get("per_kind") or {}).items())
        line = (
            f"simulator profile error on held-out real steps: median {pct(v.get('median_ape'))}, "
            f"p90 {pct(v.get('p90_ape'))} over {v.get('steps')} steps ({kinds})"
        )
    else:
        line = "simulator profile error: not measured (profile and validate stages)"
    return [line, f"target: median <= {pct(target['target'], 0)}: {target['verdict']}"]


def _run_lines(summary: dict[str, Any]) -> list[str]:
    s, inproc = summary["settings"], summary["runs"]["inproc"]
    lines = [
        f"run --strategy all: {s['workload']}, the first {s['run_trace_s']:g} s of the trace at "
        f"{s['run_time_scale']:g}x, request time-out {s['run_request_timeout_s']:g} s, {s['model']} on {s['device']}:"
    ]
    if not inproc:
        return lines + ["  not measured (run stage)"]
    body = []
    for r in inproc:
        sm = r["summary"]
        valid = "VALID" if r["validity"].get("valid") else "INVALID"
        body.append(
            [r["strategy"], f"{sm.get('completed')}/{sm.get('total_requests')}",
             f"{sm.get('cancelled', 0)}c {sm.get('rejected', 0)}r {sm.get('failed', 0)}f",
             num(sm.get("output_throughput"), ",.0f"), num(sm.get("p50_ttft_ms"), ",.0f"),
             num(sm.get("p50_tpot_ms"), ".1f"), num(sm.get("gpu_util_mean"), ".0f"),
             num(sm.get("gpu_power_mean_w"), ".0f"), num(sm.get("energy_per_output_token_j"), ".3f"),
             valid + ("" if r["status"] == "completed" else f" ({r['status']})")]
        )  # fmt: skip
    headers = ["strategy", "done", "lost", "out tok/s", "TTFT p50", "TPOT p50", "busy %", "W", "J/tok", "validity"]
    lines += table(headers, body)
    for r in inproc:  # why each INVALID result is invalid (saturated, too short, rejected ...), one line each
        if r["validity"].get("failed"):
            lines.append(f"  {r['strategy']}: {'; '.join(r['validity']['failed'])}"[:150])
    texts = list(dict.fromkeys(r["telemetry_check"] for r in inproc))
    if len(texts) == 1:
        return lines + [f"telemetry ({summary['telemetry_verdict']}): {texts[0]}"]
    return (
        lines
        + [f"telemetry ({summary['telemetry_verdict']}):"]
        + [f"  {r['strategy']}: {r['telemetry_check']}" for r in inproc]
    )


def _sim_lines(summary: dict[str, Any]) -> list[str]:
    inproc, sim = summary["runs"]["inproc"], {r["strategy"]: r["summary"] for r in summary["runs"]["sim"]}
    if not inproc or not sim:
        return []
    body = []
    for r in inproc:
        real, pred = r["summary"], sim.get(r["strategy"]) or {}
        body.append(
            [r["strategy"], num(real.get("output_throughput"), ",.0f"), num(pred.get("output_throughput"), ",.0f"),
             rel(pred.get("output_throughput"), real.get("output_throughput")),
             num(real.get("p50_ttft_ms"), ",.0f"), num(pred.get("p50_ttft_ms"), ",.0f"),
             rel(pred.get("p50_ttft_ms"), real.get("p50_ttft_ms"))]
        )  # fmt: skip
    headers = ["strategy", "real tok/s", "sim tok/s", "diff", "real TTFT p50", "sim TTFT p50", "diff"]
    return ["", "the simulator with this profile vs the real run, same workload:"] + table(headers, body)


def _serve_lines(summary: dict[str, Any]) -> list[str]:
    remote = summary["runs"]["serve"]
    if not remote:
        return []
    base = {r["strategy"]: r["summary"] for r in summary["runs"]["inproc"]}.get(summary["settings"]["serve_strategy"])
    base = base or {}
    body = [
        [r["strategy"], f"{r['summary'].get('completed')}/{r['summary'].get('total_requests')}",
         num(r["summary"].get("output_throughput"), ",.0f"), num(base.get("output_throughput"), ",.0f"),
         num(r["summary"].get("p50_ttft_ms"), ",.0f"), num(base.get("p50_ttft_ms"), ",.0f")]
        for r in remote
    ]  # fmt: skip
    headers = ["served", "done", "tok/s remote", "tok/s in-process", "TTFT p50 remote", "TTFT p50 in-process"]
    return ["", "serve + run --target vs the in-process run, same workload:"] + table(headers, body)


def package(work: Path, out: Path | None) -> list[str]:
    """Copy into `out` at most 8 files under 16 MiB each: summary.md, summary.json, profile.json, a tarball of
    the work folder without its run folders, and one tarball per run folder (runs-inproc, runs-sim,
    runs-serve, sweep). A run tarball over the limit is remade with slim result files (no per-request ITL
    lists, no step rows), which SLIM.txt inside it says."""
    if out is None:
        return []
    out.mkdir(parents=True, exist_ok=True)
    copied = []
    for src, name in ((work / "summary.md", "summary.md"), (work / "summary.json", "summary.json"),
                      (work / "profile" / "profile.json", "profile.json")):  # fmt: skip
        if src.is_file():
            shutil.copy2(src, out / name)
            copied.append(name)
    skip = {"_site", "_bin", "_wheel-check", "runs", "sweep"}
    with tarfile.open(out / "acceptance.tar.gz", "w:gz") as tar:
        for item in sorted(work.iterdir()):
            if item.name not in skip:
                tar.add(item, arcname=f"{work.name}/{item.name}")
    copied.append("acceptance.tar.gz")
    for folder in [work / "runs" / n for n in ("inproc", "sim", "serve")] + [work / "sweep"]:
        if not folder.is_dir() or len(copied) >= OUT_FILES_MAX:
            continue
        name = f"{'runs-' if folder.parent.name == 'runs' else ''}{folder.name}.tar.gz"
        arc = f"{work.name}/{folder.relative_to(work)}"
        with tarfile.open(out / name, "w:gz") as tar:
            tar.add(folder, arcname=arc)
        if (out / name).stat().st_size > TAR_LIMIT_BYTES:
            _slim_tar(folder, out / name, arc)
        copied.append(name)
    return copied


def _slim_tar(folder: Path, dest: Path, arc: str) -> None:
    def add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
        info = tarfile.TarInfo(name)
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))

    with tarfile.open(dest, "w:gz") as tar:
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            doc = read_json(path) if path.suffix == ".json" else None
            if isinstance(doc, dict) and isinstance(doc.get("requests"), list):
                for req in doc["requests"]:
                    if isinstance(req, dict):
                        req.pop("itl_s", None)
                if isinstance(doc.get("steps"), dict):
                    doc["steps"]["rows"] = []
                add(tar, f"{arc}/{path.relative_to(folder)}", json.dumps(doc, separators=(",", ":")).encode())
            else:
                add(tar, f"{arc}/{path.relative_to(folder)}", path.read_bytes())
        add(tar, f"{arc}/SLIM.txt", b"result files slimmed (no per-request itl_s, no step rows): over 15 MiB\n")


def card_slug(name: str) -> str:
    """'NVIDIA H200' -> 'nvidia-h200': the folder of a card's committed results."""
    return "-".join("".join(c if c.isalnum() else " " for c in name.lower()).split()) or "unknown-gpu"


def collect(src: Path, results_root: Path) -> Path:
    """Unpack what a GPU call brought back (`src`: the device tool's files_at folder) into
    `results_root/gpu/<card>/`: the report, the machine facts, the benchmark, the profile and its validation,
    and slim result files (summary and telemetry of every strategy; no per-request or per-step records, which
    the tarballs in `src` keep). Returns the folder."""
    summary = read_json(src / "summary.json")
    if not isinstance(summary, dict):
        raise SystemExit(f"error: {src}/summary.json is missing or corrupt; is {src} a GPU call's files_at folder?")
    if (summary.get("settings") or {}).get("dry_run"):
        raise SystemExit(
            f"error: {src} holds a dry run's output (CPU, tiny model): only GPU figures go to results/gpu/"
        )
    dest = results_root / "gpu" / card_slug((summary.get("machine") or {}).get("device_name") or "")
    dest.mkdir(parents=True, exist_ok=True)
    for name in ("summary.md", "summary.json", "profile.json"):
        if (src / name).is_file():
            shutil.copy2(src / name, dest / name)
    for tar_path in sorted(src.glob("*.tar.gz")):
        with tarfile.open(tar_path) as tar:
            for member in tar.getmembers():
                parts = Path(member.name).parts[1:]  # drop the work folder's own name
                if not member.isfile() or not parts or ".." in parts:
                    continue
                keep = {"bench.json", "env.json", "machine.json", "nvidia-smi.csv", "validate.json", "cuda-tests.xml"}
                if parts[-1] in keep:
                    (dest / parts[-1]).write_bytes(tar.extractfile(member).read())
                elif parts[0] in ("runs", "sweep") and parts[-1].endswith(".json"):
                    doc = json.loads(tar.extractfile(member).read())
                    if isinstance(doc, dict) and "summary" in doc:
                        doc = {k: doc[k] for k in ("run", "model", "workload", "strategy", "summary") if k in doc}
                    out = dest.joinpath(*parts)
                    out.parent.mkdir(parents=True, exist_ok=True)
                    out.write_text(json.dumps(doc, indent=1) + "\n")
    return dest
