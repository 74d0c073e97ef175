"""`inferneo-bench profile` end to end on the analytic engine (no model): table, file, --validate."""

from __future__ import annotations

import pytest

import inferneo_bench.engine as engine_pkg
import inferneo_bench.engine.profile as profile_mod
from inferneo_bench.engine.analytic import AnalyticEngine
from inferneo_bench.engine.profile import read_profile


@pytest.fixture
def analytic(monkeypatch):
    made = []

    def fake_load_engine(model, device="auto", dtype=None, max_num_seqs=256, max_model_len=None, seed=0, **kw):
        eng = AnalyticEngine(num_slots=max_num_seqs, max_model_len=max_model_len or 4096)
        made.append(eng)
        return eng

    monkeypatch.setattr(engine_pkg, "load_engine", fake_load_engine)
    monkeypatch.setattr(profile_mod, "measure_copy_bandwidth", lambda device: 10.0)
    monkeypatch.setattr(profile_mod, "measure_swap_bandwidth", lambda device: 5.0)
    return made


def test_profile_quick_writes_a_profile_and_prints_mbu(cli, tmp_path, analytic) -> None:
    out = tmp_path / "a.json"
    code, stdout, err = cli("profile", "--model", "analytic", "--device", "cpu", "--quick", "--out", str(out))
    assert code == 0, err
    prof = read_profile(out, model="analytic")
    assert prof.copy_bandwidth_gbs == 10.0 and prof.grid["repeats"] == 3
    assert "GB/s" in stdout and "MBU" in stdout and "profile written to" in stdout
    # batch 1, context 16: (weights + KV of 16 tokens) / step time / 10 GB/s
    t = prof.surfaces["decode"]["median_s"][0][0]
    mbu = (10_000_000 + 1024 * 16) / t / 1e9 / 10.0
    assert f"{mbu:.1%}" in stdout
    assert not analytic[0].live

    code, stdout, err = cli("profile", "--validate", str(out), "--steps", "8")
    assert code == 0, err
    assert "over 8 held-out steps: median" in stdout.replace("\n", " ")


def test_validate_unknown_profile_name(cli) -> None:
    code, _, err = cli("profile", "--validate", "no-such-profile")
    assert code == 2 and "no such profile" in err and err.count("\n") == 1
