"""What machine a result came from: stored in every result file and printed by `inferneo-bench env`.

Every field is measured or null with a reason; nothing is guessed.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

from inferneo_bench import __version__
from inferneo_bench.telemetry.nvml import nvml_status


def cpu_model() -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def git_commit(cwd: str | os.PathLike[str] | None = None) -> str | None:
    """Commit of the working directory's repository, with '-dirty' when it has uncommitted changes."""
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=5)
        if head.returncode != 0:
            return None
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=5,
        )
        return head.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None


def torch_package() -> dict[str, Any]:
    """torch as installed, without importing it (importing torch costs ~1 s): for runs that never use it
    (the simulated engine). The build (CUDA/ROCm/CPU) and devices need the import; they are null here."""
    from importlib import metadata

    try:
        version = metadata.version("torch")
    except metadata.PackageNotFoundError:
        return {"version": None, "build": None, "reason": "torch not installed", "accelerators": []}
    return {
        "version": version,
        "build": None,
        "reason": "not imported: this run does not use torch (simulated engine)",
        "accelerators": [],
    }


def torch_info() -> dict[str, Any]:
    try:
        import torch
    except ImportError as exc:
        return {"version": None, "build": None, "reason": f"torch not importable: {exc}", "accelerators": []}
    cuda = torch.version.cuda
    hip = getattr(torch.version, "hip", None)
    build = f"CUDA {cuda}" if cuda else (f"ROCm {hip}" if hip else "CPU-only")
    accelerators = []
    if torch.cuda.is_available():
        for i in range(torch.cuda.device_count()):
            p = torch.cuda.get_device_properties(i)
            accelerators.append(
                {
                    "index": i,
                    "name": p.name,
                    "memory_gib": round(p.total_memory / 2**30, 2),
                    "compute_capability": f"{p.major}.{p.minor}",
                }
            )
    return {
        "version": torch.__version__,
        "build": build,
        "cuda_available": torch.cuda.is_available(),
        "num_threads": torch.get_num_threads(),
        "accelerators": accelerators,
    }


def capture(torch_runtime: bool = True) -> dict[str, Any]:
    """The machine, with torch's runtime (build, devices) when `torch_runtime`, else its package version."""
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpu": {"model": cpu_model(), "cores": os.cpu_count()},
        "torch": torch_info() if torch_runtime else torch_package(),
        "nvml": nvml_status(),
        "tool_version": __version__,
        "git_commit": git_commit(),
    }
