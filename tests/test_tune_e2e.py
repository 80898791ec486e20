"""`gate tune` for real on the tiny digits CNN: trials through `gate check`'s worker and
cache, the winning policy accepted by `gate policy validate` and reproduced by `gate check`,
and a second run served by the cache. About a minute: one budget-bounded run, one re-run."""
from __future__ import annotations

import json
import time

import yaml
from click.testing import CliRunner
from conftest import write_config

from gate.cli import main


def test_tune_finds_a_policy_gate_check_reproduces_and_a_rerun_hits_the_cache(tiny, tmp_path, monkeypatch):
    monkeypatch.delenv("GATE_NO_CACHE", raising=False)
    cfg = write_config(tmp_path, tiny, thresholds={"accuracy": {"max_drop": 0.02}, "compression": {"min": 2.0}})
    out, cache = tmp_path / "tune", tmp_path / "cache"
    args = ["tune", "--config", str(cfg), "--budget-minutes", "1", "--out", str(out), "--cache-dir", str(cache)]
    start = time.perf_counter()
    first = CliRunner().invoke(main, args)
    first_s = time.perf_counter() - start
    assert first.exit_code == 0, first.output
    lines = [ln for ln in first.output.splitlines() if ln.startswith("[")]
    data = json.loads((out / "tune.json").read_text())
    assert len(lines) == len(data["trials"]) >= 2                  # one progress line per trial
    assert data["trials"][0]["name"] == "gate.yml-int8" and data["winner"]
    assert first_s < 3 * 60
    for name in ("tune.md", "pareto.png", "policy.yml"):
        assert (out / name).exists()

    policy = out / "policy.yml"
    assert CliRunner().invoke(main, ["policy", "validate", str(policy)]).exit_code == 0
    winner = next(t for t in data["trials"] if t["name"] == data["winner"])
    (tmp_path / "check").mkdir()
    check_cfg = write_config(tmp_path / "check", tiny, policy=str(policy),
                             thresholds={"accuracy": {"max_drop": 0.02}, "compression": {"min": 2.0}})
    result = CliRunner().invoke(main, ["check", "--config", str(check_cfg), "--out", str(tmp_path / "check-out"),
                                       "--no-baseline", "--cache-dir", str(cache)])
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "check-out" / "report.json").read_text())
    assert report["candidate"]["bytes_gzip"] == winner["bytes_gzip"]
    assert yaml.safe_load(policy.read_text())["convert"] == winner["policy"]["convert"]

    start = time.perf_counter()
    second = CliRunner().invoke(main, args)
    second_s = time.perf_counter() - start
    assert second.exit_code == 0, second.output
    again = json.loads((out / "tune.json").read_text())
    first_names = [t["name"] for t in data["trials"]]
    # the same order; what the first run finished is served by the cache (with the time the
    # first run's budget ran out on, the re-run may get one trial further)
    assert [t["name"] for t in again["trials"]][:len(first_names)] == first_names
    assert all(t["cached"] for t in again["trials"][:len(first_names)])
    assert min(t["bytes_gzip"] for t in again["trials"] if t["status"] == "pass") <= winner["bytes_gzip"]
    assert second_s < first_s


def test_a_bad_policy_in_gate_yml_ends_the_tune_with_exit_2_naming_the_field(tiny, tmp_path):
    policy = {"steps": [{"prune": {"final_sparsity": 0.5, "per_layer": {"convv": 0.5}}}],
              "convert": {"quantization": "int8"}}
    cfg = write_config(tmp_path, tiny, policy=policy)
    result = CliRunner().invoke(main, ["tune", "--config", str(cfg), "--out", str(tmp_path / "o"),
                                       "--budget-minutes", "2", "--no-cache"])
    assert result.exit_code == 2, result.output
    assert "policy.steps.prune.per_layer.convv" in result.output and "not a layer of this model" in result.output
