"""Writing the project's JSONL format (reading is in traces.py).

Line 1 (optional on input): {"format": "inferneo-jsonl", "version": 1, "name", "description", "source",
"prefix_block_size"}. Then one request per line: {"request_id", "arrival_s", "prompt_tokens",
"output_tokens", "max_tokens", "priority", ["prefix_block_ids"]}.
"""

from __future__ import annotations

import json
from pathlib import Path

from inferneo_bench.errors import UserError
from inferneo_bench.fileio import atomic_writer
from inferneo_bench.workload.spec import Workload
from inferneo_bench.workload.traces import JSONL_HEADER_FORMAT


def write_jsonl(workload: Workload, path: str | Path) -> None:
    """Atomic write (temp file + rename) so a failed write never leaves a half file."""
    path = Path(path)
    header = {
        "format": JSONL_HEADER_FORMAT,
        "version": 1,
        "name": workload.name,
        "description": workload.description,
        "source": workload.source,
    }
    if workload.prefix_block_size:
        header["prefix_block_size"] = workload.prefix_block_size
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise UserError(f"{path}: folder {folder} does not exist")
    with atomic_writer(path) as f:
        f.write(json.dumps(header) + "\n")
        for r in workload.requests:
            f.write(json.dumps(r.to_dict()) + "\n")
