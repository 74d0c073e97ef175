"""Fill bench/wheels/ with what the GPU machine lacks: run here, before a GPU call (bench/fetch-gpu-wheels.sh).

The GPU machine reaches no package registry, so a Python package the project needs and its image lacks has to
travel with the working tree as a wheel (64 MiB for the whole tree). Which ones: every requirement of
pyproject.toml (dependencies and extras, linters aside) whose package is not in bench/gpu-image-packages.txt,
plus their own dependencies that the image lacks. They are downloaded for the image's interpreter (CPython
3.12, manylinux x86-64) with pip's resolver; bench/gpu_acceptance.py's setup stage installs them there with
`pip install --no-index --no-deps --target` (beside the image's packages, never over them) and checks every
requirement. The commit they were fetched for is written to bench/wheels/SOURCE_COMMIT (the GPU machine's copy
of the tree may have no git history).
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
IMAGE_LIST = REPO / "bench" / "gpu-image-packages.txt"
WHEELS = REPO / "bench" / "wheels"
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64",
             "manylinux1_x86_64")  # fmt: skip
NOT_FOR_THE_GPU = {"ruff"}  # linters: nothing on the GPU machine runs them
WARN_MIB = 32.0


def normalize(name: str) -> str:
    """PEP 503 name: lower case, runs of -_. as one '-'."""
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_name(req: str) -> str:
    return normalize(re.split(r"[\s\[<>=!~;(]", req.strip(), maxsplit=1)[0])


def image_packages(path: Path = IMAGE_LIST) -> set[str]:
    lines = path.read_text(encoding="utf-8").splitlines()
    return {normalize(ln.strip()) for ln in lines if ln.strip() and not ln.startswith("#")}


def project_requirements(pyproject: Path = REPO / "pyproject.toml") -> list[str]:
    """dependencies plus every optional-dependencies group (linters aside)."""
    import tomllib

    project = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]
    reqs = list(project.get("dependencies", []))
    for items in project.get("optional-dependencies", {}).values():
        reqs += items
    return [r for r in dict.fromkeys(reqs) if requirement_name(r) not in NOT_FOR_THE_GPU]


def missing(requirements: list[str], image: set[str]) -> list[str]:
    """The requirements whose package the image does not hold."""
    return [r for r in requirements if requirement_name(r) not in image]


def wheel_name(path: Path) -> str:
    return normalize(path.name.split("-")[0])


def source_commit() -> str:
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO,
                               capture_output=True, text=True)  # fmt: skip
        return head.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def download(reqs: list[str], dest: Path, python_version: str) -> None:
    cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--only-binary=:all:", "--python-version",
           python_version, "--implementation", "cp", "-d", str(dest)]  # fmt: skip
    cmd += [f"--platform={p}" for p in PLATFORMS]
    subprocess.run(cmd + reqs, check=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="bench/fetch-gpu-wheels.sh", description=__doc__.splitlines()[0])
    ap.add_argument("--also", nargs="*", default=[], help="more requirements to carry (e.g. a branch's new ones)")
    ap.add_argument("--python-version", default="3.12", help="the GPU image's Python (default 3.12)")
    ap.add_argument("--check", action="store_true", help="only print what would be carried; download nothing")
    args = ap.parse_args(argv)
    image = image_packages()
    wanted = missing(project_requirements(), image) + missing(args.also, image)
    print(f"requirements the GPU image lacks: {', '.join(wanted) or 'none'}")
    if args.check:
        return 0
    WHEELS.mkdir(parents=True, exist_ok=True)
    for old in WHEELS.glob("*.whl"):
        old.unlink()
    if wanted:
        with tempfile.TemporaryDirectory() as tmp:
            download(wanted, Path(tmp), args.python_version)
            for whl in sorted(Path(tmp).glob("*.whl")):
                if wheel_name(whl) in image:
                    print(f"  the image has {wheel_name(whl)}: not carried ({whl.name})")
                    continue
                shutil.move(str(whl), WHEELS / whl.name)
    (WHEELS / "SOURCE_COMMIT").write_text(source_commit() + "\n")
    wheels = sorted(WHEELS.glob("*.whl"))
    total = sum(w.stat().st_size for w in wheels) / 2**20
    for w in wheels:
        print(f"  {w.stat().st_size / 2**20:7.2f} MiB  {w.name}")
    print(f"{len(wheels)} wheels, {total:.2f} MiB in {WHEELS.relative_to(REPO)}; commit {source_commit()}")
    if total > WARN_MIB:
        print(f"warning: over {WARN_MIB:.0f} MiB of the 64 MiB a device call may carry", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
