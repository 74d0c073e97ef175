"""What the GPU machine has, for the setup stage of bench/gpu_acceptance.py (run there with its Python).

    python bench/gpu_probe.py torch                       # one JSON line: Python, torch, the CUDA device
    python bench/gpu_probe.py requirements pyproject.toml # one line per requirement; exit 1 if one is unmet

`requirements` checks every requirement of pyproject.toml (dependencies and extras, linters aside) against the
packages this Python sees (the image's and the carried wheels on PYTHONPATH), then imports inferneo_bench.
"""

from __future__ import annotations

import json
import platform
import re
import sys
from importlib import metadata
from pathlib import Path

LINTERS = ("ruff",)


def torch_facts() -> dict:
    out: dict = {"python": platform.python_version(), "executable": sys.executable}
    try:
        import torch
    except Exception as exc:  # noqa: BLE001 - reported, not raised: the stage fails on it
        return {**out, "torch": None, "error": f"{type(exc).__name__}: {exc}"}
    out.update(torch=torch.__version__, cuda=torch.cuda.is_available())
    if out["cuda"]:
        p = torch.cuda.get_device_properties(torch.cuda.current_device())
        out.update(
            device_name=p.name,
            cuda_version=torch.version.cuda,
            capability=f"{p.major}.{p.minor}",
            memory_gib=round(p.total_memory / 2**30, 1),
            multiprocessors=p.multi_processor_count,
            uuid=str(getattr(p, "uuid", "")) or None,
            device_count=torch.cuda.device_count(),
        )
    return out


def requirements(pyproject: Path) -> list[str]:
    text = pyproject.read_text(encoding="utf-8")
    try:
        import tomllib
    except ImportError:  # Python 3.10: the quoted requirement strings of the file
        return re.findall(r'^\s*"([A-Za-z0-9_.\-]+(?:\[[^\]]*\])?\s*[<>=!~][^"]*)",?\s*$', text, re.M)
    project = tomllib.loads(text)["project"]
    reqs = list(project.get("dependencies", []))
    for items in project.get("optional-dependencies", {}).values():
        reqs += items
    return [r for r in dict.fromkeys(reqs) if not r.startswith(LINTERS)]


def check(reqs: list[str]) -> int:
    """Print one line per requirement; return how many are missing or too old."""
    try:
        from packaging.requirements import Requirement
    except ImportError:
        Requirement = None  # noqa: N806 - versions then go unchecked, presence still is
    bad = 0
    for raw in reqs:
        name = re.split(r"[\s\[<>=!~;]", raw, maxsplit=1)[0]
        try:
            have = metadata.version(name)
        except metadata.PackageNotFoundError:
            print(f"MISSING  {raw}")
            bad += 1
            continue
        ok = Requirement is None or Requirement(raw).specifier.contains(have, prereleases=True)
        print(f"{'ok      ' if ok else 'TOO OLD '} {raw:<28} {have}")
        bad += not ok
    return bad


def main(argv: list[str]) -> int:
    if argv[:1] == ["torch"]:
        print(json.dumps(torch_facts()))
        return 0
    if argv[:1] == ["requirements"] and len(argv) == 2:
        bad = check(requirements(Path(argv[1])))
        import inferneo_bench

        print(f"inferneo_bench {inferneo_bench.__version__} from {inferneo_bench.__file__}")
        return 1 if bad else 0
    print("usage: gpu_probe.py torch | requirements PYPROJECT", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
