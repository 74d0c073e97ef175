"""Issue 15, kind 2: a finished or interrupted run is never lost. SIGTERM behaves as Ctrl-C; a second signal
during the save does not abort it; every ended request is journalled, so even SIGKILL leaves a run that
`inferneo-bench recover` rebuilds; no stray temp file; a run folder belongs to one run (lock, --overwrite).
The kill tests here are the small deterministic version of tests/benchmarks/kill_test.py (simulated engine,
kills at fixed steps)."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest

from inferneo_bench import results
from inferneo_bench.metrics import summarize

SIM = ["--engine", "sim", "--profile", "tiny-cpu", "--min-duration", "0", "--min-requests", "1", "-q"]


def run(cli, out: Path, *args: str) -> tuple[int, str, str]:
    return cli("run", *SIM, "--workload", "default", "--out", str(out), "--run-id", "r", *args)


def assert_complete(result: results.RunResult, total: int) -> None:
    s = result.summary
    assert s["completed"] + s["failed"] == total == len(result.requests)
    assert s["failed"] == s["rejected"] + s["cancelled"] + s["errored"]
    assert summarize(result.requests, result.steps, result.telemetry, s["slo"]) == s


def no_temp_files(folder: Path) -> bool:
    return not [p for p in folder.rglob("*") if p.name.endswith(".tmp")]


def signal_after_requests(monkeypatch, count: int, *signums: int) -> None:
    """Send the signals to this process once `count` requests have ended (from the journal's request hook)."""
    from inferneo_bench.runner import journal

    real = journal.Journal.request
    seen = {"n": 0}

    def request_hook(self, record):
        real(self, record)
        seen["n"] += 1
        if seen["n"] == count:
            for signum in signums:
                os.kill(os.getpid(), signum)

    monkeypatch.setattr(journal.Journal, "request", request_hook)


@pytest.mark.parametrize(("signums", "code"), [((signal.SIGTERM,), 143), ((signal.SIGINT, signal.SIGINT), 130)])
def test_sigterm_and_double_ctrl_c_save_the_partial_result(cli, tmp_path, monkeypatch, signums, code):
    signal_after_requests(monkeypatch, 20, *signums)
    got, out, err = run(cli, tmp_path, "--csv")
    assert got == code, err
    assert "interrupted: partial results saved" in err
    (path,) = [Path(p) for p in out.split()]
    result = results.load(path)
    assert result.run.status == "interrupted" and result.run.validity["checks"]["run_completed"] is False
    assert_complete(result, 80)
    assert 0 < result.summary["completed"] < 80 and result.summary["cancelled"] > 0
    assert sorted(p.name for p in path.parent.iterdir()) == ["adaptive"]  # no journal, lock or temp left
    assert sorted(p.name for p in path.iterdir()) == [
        "requests.csv",
        "requests.parquet",
        "result.json",
        "steps.parquet",
    ]


def test_a_second_signal_during_the_save_does_not_abort_it(cli, tmp_path, monkeypatch):
    from inferneo_bench.runner import session

    real = results.save

    def save_under_fire(result, path):
        os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C while the file is being written ...
        os.kill(os.getpid(), signal.SIGTERM)  # ... and SIGTERM too
        return real(result, path)

    monkeypatch.setattr(session.results, "save", save_under_fire)
    code, out, err = run(cli, tmp_path)
    assert code == 130, err  # the replay had finished: the result is complete, the session then stops
    result = results.load(out.split()[0])
    assert result.run.status == "completed" and result.summary["completed"] == 80


def _killed_child(cli, out: Path, kill_after_requests: int, during_save: bool = False) -> int:
    """Fork; the child runs the CLI and SIGKILLs itself after `kill_after_requests` journal lines (or in the
    middle of writing the result file). Returns the child's wait status."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child never returns
        try:
            from inferneo_bench import fileio
            from inferneo_bench.runner import journal

            real = journal.Journal.request
            seen = {"n": 0}

            def request_hook(self, record):
                real(self, record)
                seen["n"] += 1
                if seen["n"] == kill_after_requests and not during_save:
                    os.kill(os.getpid(), signal.SIGKILL)

            journal.Journal.request = request_hook
            if during_save:  # SIGKILL with half a result entry written into its hidden temp folder
                real_directory = fileio.atomic_directory

                class Dying:
                    def __init__(self, path):
                        self.cm = real_directory(path)

                    def __enter__(self):
                        tmp = self.cm.__enter__()
                        (tmp / "result.json").write_text('{"schema_version": 2, "half":')
                        os.kill(os.getpid(), signal.SIGKILL)

                    def __exit__(self, *exc):
                        return False

                results.atomic_directory = Dying
            run(cli, out)
        finally:
            os._exit(3)
    _, status = os.waitpid(pid, 0)
    return status


@pytest.mark.parametrize(("after", "during_save"), [(1, False), (37, False), (80, True)])
def test_sigkill_leaves_a_recoverable_journal_and_no_temp_file(cli, tmp_path, after, during_save):
    status = _killed_child(cli, tmp_path, after, during_save)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
    folder = tmp_path / "r"
    assert not (folder / "adaptive").exists() and (folder / "adaptive.journal.jsonl").is_file()
    code, out, err = cli("recover", str(folder))
    assert code == 0, err
    assert out.startswith(f"recovered {folder / 'adaptive'}: ") or "removed stale temp" in out
    assert no_temp_files(tmp_path)  # a temp folder of a save cut by the kill: removed by recover
    result = results.load(folder / "adaptive")
    assert result.run.status == "interrupted" and result.strategy["stats"] == {
        "recovered_from": "adaptive.journal.jsonl"
    }
    assert_complete(result, 80)
    assert result.summary["completed"] >= (after if not during_save else 80) - 5
    assert sorted(p.name for p in folder.iterdir()) == ["adaptive"]  # journal and stale lock gone
    code, _, err = cli("recover", str(folder))
    assert code == 2 and "no journals" in err


def test_recover_ignores_a_torn_last_line_and_removes_leftover_journals(cli, tmp_path):
    status = _killed_child(cli, tmp_path, 20)
    assert os.WIFSIGNALED(status)
    journal = tmp_path / "r" / "adaptive.journal.jsonl"
    kept = journal.read_text()
    with journal.open("a") as fh:
        fh.write('{"request": {"request_id": "r9')  # a line cut short by the kill
    code, out, err = cli("recover", str(journal))
    assert code == 0, err
    assert "ignored 1 torn last line" in out
    journal.write_text(kept)  # a journal left beside its saved result (killed between the save and the removal)
    code, out, err = cli("recover", str(journal))
    assert code == 0 and "already saved; removed the leftover journal" in out and not journal.exists()
    import shutil

    shutil.rmtree(journal.parent / "adaptive")
    journal.write_text(kept.splitlines(keepends=True)[0])  # killed while starting: a header, no workload line
    code, out, err = cli("recover", str(journal.parent))
    assert code == 0 and "nothing measured (killed while starting)" in out and not journal.exists()


def test_stale_temp_files_are_cleaned(tmp_path):
    from inferneo_bench.fileio import atomic_writer, clean_stale_temps

    stale = tmp_path / ".adaptive.json.999999999.abcd1234.tmp"  # a pid that cannot exist
    stale.write_text("half")
    mine = tmp_path / f".x.json.{os.getpid()}.abcd1234.tmp"
    mine.write_text("in progress")
    assert clean_stale_temps(tmp_path) == [stale] and mine.exists()
    with pytest.raises(RuntimeError), atomic_writer(tmp_path / "b.csv", newline="") as fh:
        fh.write("half a csv")
        raise RuntimeError("killed mid-write")
    assert not (tmp_path / "b.csv").exists() and sorted(p.name for p in tmp_path.iterdir()) == [mine.name]


def test_a_run_folder_belongs_to_one_run(cli, tmp_path):
    assert run(cli, tmp_path)[0] == 0
    code, _, err = run(cli, tmp_path)
    assert code == 2 and "already holds 1 file(s) of an earlier run (adaptive)" in err and "--overwrite" in err
    code, out, err = run(cli, tmp_path, "--strategy", "fixed", "--overwrite")
    assert code == 0, err
    assert sorted(p.name for p in (tmp_path / "r").iterdir()) == ["fixed_size"]  # cleared first
    (tmp_path / "r" / "notes.txt").write_text("mine")
    code, _, err = run(cli, tmp_path, "--overwrite")
    assert code == 2 and "also holds notes.txt" in err


def test_a_concurrent_run_of_the_same_id_is_refused(cli, tmp_path):
    import fcntl

    folder = tmp_path / "r"
    folder.mkdir()
    with (folder / ".lock").open("w") as fh:
        fh.write("4242\n")
        fh.flush()
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        code, _, err = run(cli, tmp_path)
    assert code == 2 and "in use by another inferneo-bench run (pid 4242)" in err


def test_the_journal_holds_every_ended_request_as_it_ends(cli, tmp_path, monkeypatch):
    """Each request's line is written (and flushed) when the request ends; the journal goes once saved."""
    from inferneo_bench.runner import journal as jmod

    real = jmod.Journal.request
    sizes: list[int] = []

    def spy(self, record):
        real(self, record)
        sizes.append(self.path.stat().st_size)  # on disk already: flushed line by line

    monkeypatch.setattr(jmod.Journal, "request", spy)
    code, out, err = cli("run", *SIM, "-n", "12", "--out", str(tmp_path), "--run-id", "j")
    assert code == 0, err
    assert len(sizes) == 12 and sizes == sorted(sizes) and len(set(sizes)) == 12
    assert not list(tmp_path.rglob("*.journal.jsonl"))  # removed once the result was saved
    assert json.loads((tmp_path / "j" / "adaptive" / "result.json").read_text())["run"]["status"] == "completed"
