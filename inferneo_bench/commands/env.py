"""`inferneo-bench env`: the machine as a result file will record it."""

from __future__ import annotations

import json

import typer


def env(as_json: bool = typer.Option(False, "--json", help="Print the environment as JSON.")) -> None:
    """Show Python, CPU, torch build, accelerators, NVML status, tool version and git commit."""
    from inferneo_bench.environment import capture

    info = capture()
    if as_json:
        typer.echo(json.dumps(info, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title="inferneo-bench environment", show_header=False)
    table.add_column("what", style="bold")
    table.add_column("value")
    torch_info = info["torch"]
    nvml = info["nvml"]
    table.add_row("python", info["python"])
    table.add_row("platform", info["platform"])
    table.add_row("cpu", f"{info['cpu']['model']} ({info['cpu']['cores']} cores)")
    table.add_row("torch", f"{torch_info.get('version')} ({torch_info.get('build') or torch_info.get('reason')})")
    accelerators = torch_info.get("accelerators") or []
    if accelerators:
        for acc in accelerators:
            table.add_row(
                f"cuda:{acc['index']}",
                f"{acc['name']}, {acc['memory_gib']} GiB, compute capability {acc['compute_capability']}",
            )
    else:
        table.add_row("accelerators", "none visible to torch")
    if nvml["available"]:
        gpus = ", ".join(f"{g['index']}: {g['name']} ({g['memory_gib']} GiB)" for g in nvml["gpus"])
        table.add_row("nvml", f"driver {nvml['driver_version']}; {gpus or 'no GPUs'}")
    else:
        table.add_row("nvml", f"unavailable: {nvml['reason']}")
    table.add_row("inferneo-bench", info["tool_version"])
    table.add_row("git commit", info["git_commit"] or "not in a git repository")
    Console().print(table)


def register(app: typer.Typer) -> None:
    app.command(epilog="[bold]Example[/]: inferneo-bench env --json > env.json")(env)
