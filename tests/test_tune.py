"""`gate tune`'s search with the trial runner faked at the measurement boundary
(gate.tune.trial.RunTrial): the order, the early stops, the budget, the outputs, the exit
codes and bad input. No TensorFlow here; tests/test_tune_e2e.py runs the real thing."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from gate.cli import main
from gate.errors import ConfigError
from gate.tune import tune
from gate.tune.search import Search
from gate.tune.tables import allocate, tables_for
from gate.tune.trial import Trial, read_trial, trial_config

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "digits"
REF_GZIP = 100_000


def config(tmp_path: Path, thresholds: dict | None = None, policy="int8") -> Path:
    cfg = {"model": str(EXAMPLE / "model.keras"),
           "data": {"train": str(EXAMPLE / "train.npz"), "eval": str(EXAMPLE / "eval.npz")},
           "policy": policy, "thresholds": thresholds if thresholds is not None else {"accuracy": {"max_drop": 0.01}}}
    path = tmp_path / "gate.yml"
    path.write_text(yaml.safe_dump(cfg))
    return path


class Fake:
    """Trials judged from a table name -> (gzip bytes, accuracy drop, seconds); the accuracy
    limit is 1 point. Unlisted names: float-sized, passing."""

    def __init__(self, table: dict[str, tuple[int, float]], seconds: float = 10.0, clock=None,
                 default: tuple[int, float] = (REF_GZIP, 0.0)):
        self.table, self.seconds, self.calls, self.clock, self.default = table, seconds, [], clock, default

    def __call__(self, index: int, name: str, family: str, policy: dict) -> Trial:
        self.calls.append(name)
        if self.clock is not None:
            self.clock.now += self.seconds
        gz, drop = self.table.get(name, self.default)
        failed = drop > 0.01
        return Trial(index, name, family, policy, "fail" if failed else "pass", self.seconds, bytes_gzip=gz,
                     reference_gzip=REF_GZIP, compression=round(REF_GZIP / gz, 3), accuracy=0.9 - drop,
                     accuracy_drop=drop, latency_ratio=1.0, latency_ms=1.0,
                     failed=(f"accuracy.max_drop FAILED: {drop}",) if failed else (),
                     failed_checks=("accuracy.max_drop",) if failed else ())


class Clock:
    now = 0.0

    def __call__(self) -> float:
        return self.now


SENS = {"layers": {
    "prune": [{"layer": "a", "weights": 1000, "drops": {"0.5": 0.0, "0.75": 0.0, "0.9": 0.01}},
              {"layer": "b", "weights": 1000, "drops": {"0.5": 0.02, "0.75": 0.2, "0.9": 0.5}}],
    "cluster": [{"layer": "a", "weights": 1000, "drops": {"32": 0.0, "16": 0.0, "8": 0.0}},
                {"layer": "b", "weights": 40, "drops": {"32": 0.1, "16": 0.3, "8": 0.5}}],
    "structured_prune": []}}


def search(fake, **kw) -> Search:
    kw.setdefault("measure_sensitivity", lambda: SENS)
    return Search("size", 600, fake, max_drop=0.01, **kw)


def test_ptq_first_then_qat_then_families_strongest_first():
    # int8 fails accuracy (so fallback/QAT run), QAT passes: families build on int8 + preserving QAT
    fake = Fake({"int4-dynamic": (14_000, 0.3), "int4-weight-only": (14_000, 0.3), "int8": (25_000, 0.03),
                 "dynamic-range": (25_000, 0.0), "qat-int8": (25_000, 0.0), "prune-85": (5_000, 0.03),
                 "prune-85-uniform": (5_000, 0.05), "prune-75": (6_000, 0.02), "prune-75-uniform": (6_000, 0.02),
                 "prune-60": (9_000, 0.0), "cluster-8": (8_000, 0.0)})
    s = search(fake)
    best = s.run()
    assert fake.calls[:4] == ["int4-dynamic", "int4-weight-only", "int8", "dynamic-range"]
    assert "int16x8" not in fake.calls and "float16" not in fake.calls      # cannot beat dynamic-range
    assert fake.calls.index("qat-int8") < fake.calls.index("prune-85")
    assert fake.calls[fake.calls.index("prune-85"):fake.calls.index("prune-85") + 5] == \
        ["prune-85", "prune-85-uniform", "prune-75", "prune-75-uniform", "prune-60"]   # tabled, then as presets do
    assert "per_layer" not in s.by_name("prune-75-uniform").policy["steps"][0]["prune"]
    assert "prune-45" not in fake.calls                                      # prune-60 passed: weaker is larger
    assert "cluster-16" not in fake.calls and "cluster-32" not in fake.calls  # cannot beat prune-60 (9 kB)
    assert best.name == "cluster-8"
    prune = next(t for t in s.trials if t.name == "prune-75")
    assert prune.policy["steps"][-1] == {"qat": {"preserve": ["sparsity"], "finetune": {
        "epochs": 2, "max_steps": 1000, "learning_rate": 0.00005}}}
    assert prune.policy["steps"][0]["prune"]["per_layer"] == {"a": 0.9, "b": 0.75}   # the sensitive layer less
    reasons = {k.name: k.reason for k in s.skipped}
    assert reasons["prune-45"].startswith("weaker than prune-60")
    assert "cannot beat" in reasons["float16"]


def test_far_failure_jumps_to_the_weakest_setting():
    fake = Fake({"int8": (25_000, 0.0), "prune-85": (5_000, 0.4), "prune-45": (12_000, 0.0)})
    s = search(fake)
    s.run()
    assert "prune-75" not in fake.calls and "prune-60" not in fake.calls and "prune-45" in fake.calls
    assert "failed accuracy by far" in next(k.reason for k in s.skipped if k.name == "prune-75")


def test_no_route_passing_accuracy_skips_every_compression_family():
    fake = Fake({n: (25_000, 0.2) for n in ("int4-dynamic", "int4-weight-only", "int8", "dynamic-range",
                                            "int16x8", "float16", "qat-int8")})
    s = search(fake)
    assert s.run() is None
    assert not any(n.startswith(("prune", "cluster", "structured")) for n in fake.calls)
    assert {k.name for k in s.skipped} >= {"prune", "cluster", "structured"}


def test_a_trial_that_would_overrun_the_budget_is_not_started():
    clock = Clock()
    fake = Fake({"int8": (25_000, 0.0)}, seconds=60, clock=clock)
    s = Search("size", 5 * 60, fake, measure_sensitivity=lambda: SENS, max_drop=0.01, clock=clock)
    s.run()
    # each post-training trial takes 1 min; an epoch is estimated at 2 of them: no 6-epoch prune fits
    assert not any(n.startswith("prune") for n in fake.calls)
    assert any("of the budget left" in k.reason for k in s.skipped)
    assert clock.now <= 5 * 60


def test_latency_objective_runs_what_size_would_skip():
    fake = Fake({"int8": (25_000, 0.0)})
    s = Search("latency", 600, fake, max_drop=0.01)
    s.run()
    assert "float16" in fake.calls and "int16x8" in fake.calls


def test_allocate_compresses_the_least_sensitive_layers_most():
    curves = [("a", 1000, {0.5: 0.0, 0.75: 0.0, 0.9: 0.0}), ("b", 1000, {0.5: 0.1, 0.75: 0.3, 0.9: 0.6})]
    assert allocate(curves, 0.45, "prune") == {"a": 0.9, "b": 0.0}
    assert allocate(curves, 0.7, "prune") == {"a": 0.9, "b": 0.5}
    tables = tables_for(SENS, "cluster")
    assert tables[8]["a"] == 8 and tables[8]["b"] <= 32          # b has 40 weights: at most 32 clusters


def test_trial_config_keeps_thresholds_and_makes_paths_absolute(tmp_path):
    cfg = trial_config(config(tmp_path), {"convert": {"quantization": "float16"}}, trust=False)
    assert cfg["model"] == str(EXAMPLE / "model.keras") and cfg["policy"] == {"convert": {"quantization": "float16"}}
    assert cfg["thresholds"] == {"accuracy": {"max_drop": 0.01}} and cfg["trust_model_code"] is False


def test_read_trial_from_a_report():
    report = {"status": "fail", "exit_code": 1, "original": {"accuracy": {"top1": 0.9}},
              "reference": {"bytes_gzip": 1000, "latency": {"p50_ms": 2.0}},
              "candidate": {"bytes_gzip": 250, "bytes_raw": 300, "latency": {"p50_ms": 1.0},
                            "evaluation": {"accuracy": {"top1": 0.85}, "metrics": {"accuracy": 0.85}}},
              "checks": [{"name": "accuracy.max_drop", "passed": False, "message": "too much"},
                         {"name": "compression.min", "passed": True, "message": "ok"}],
              "timings_s": {"cache": 0.1}}
    t = read_trial(3, "int8", "ptq", {}, report, 4.0)
    assert (t.compression, t.accuracy_drop, t.latency_ratio, t.cached) == (4.0, 0.05, 0.5, True)
    assert t.failed == ("too much",) and t.accuracy_failed and not t.passed


def test_tune_writes_policy_json_md_png_and_exits_0(tmp_path):
    fake = Fake({"int8": (25_000, 0.0), "int4-dynamic": (14_000, 0.0)})
    result = tune(config(tmp_path), tmp_path / "out", budget_minutes=5, run_trial=fake, cache_dir=None)
    assert result.exit_code == 0 and result.winner.name == "int4-dynamic"
    assert fake.calls[0] == "gate.yml-int8"                        # the configured policy first
    data = json.loads((tmp_path / "out" / "tune.json").read_text())
    assert data["winner"] == "int4-dynamic" and len(data["trials"]) == len(fake.calls)
    assert {"policy", "bytes_gzip", "compression", "metrics", "latency_ratio", "status", "failed"} <= set(
        data["trials"][0])
    assert "## Pareto front" in (tmp_path / "out" / "tune.md").read_text()
    assert (tmp_path / "out" / "pareto.png").read_bytes()[:4] == b"\x89PNG"
    policy = tmp_path / "out" / "policy.yml"
    assert yaml.safe_load(policy.read_text())["convert"] == {"quantizer": "litert", "recipe": "dynamic_wi4_afp32"}
    assert CliRunner().invoke(main, ["policy", "validate", str(policy)]).exit_code == 0


def test_tune_exits_1_naming_the_closest(tmp_path):
    fake = Fake({"float16": (50_000, 0.02)}, default=(25_000, 0.2))
    result = tune(config(tmp_path), tmp_path / "out", budget_minutes=5, run_trial=fake, cache_dir=None,
                  write=tmp_path / "p.yml")
    assert result.exit_code == 1 and result.closest.name == "float16"
    assert "closest: float16" in result.summary and not (tmp_path / "p.yml").exists()


@pytest.mark.parametrize("args,thresholds,field", [
    (["--budget-minutes", "0"], None, "--budget-minutes"),
    ([], {}, "thresholds"),
    ([], {"size": {"max_increase": 0.01}}, "thresholds"),
])
def test_bad_input_exits_2_naming_the_field(tmp_path, args, thresholds, field):
    cfg = config(tmp_path, thresholds)
    result = CliRunner().invoke(main, ["tune", "--config", str(cfg), "--out", str(tmp_path / "o"), *args])
    assert result.exit_code == 2, result.output
    assert field in result.output
    with pytest.raises(ConfigError) as err:
        tune(cfg, tmp_path / "o", budget_minutes=0 if args else 1, run_trial=Fake({}), cache_dir=None)
    assert err.value.field == field


def test_allocate_with_layers_that_score_better_compressed():
    curves = [("a", 10, {0.5: -0.01, 0.75: -0.02, 0.9: 0.0}), ("b", 10, {0.5: 0.0, 0.75: 0.1, 0.9: 0.2})]
    assert allocate(curves, 0.7, "prune") == {"a": 0.9, "b": 0.5}


def test_selective_fallback_after_a_failing_post_training_mode():
    fake = Fake({"int4-dynamic": (14_000, 0.05), "int4-weight-only": (14_000, 0.05), "int8": (25_000, 0.03),
                 "int4-dynamic-keep-float-1": (15_000, 0.02), "int4-dynamic-keep-float-3": (16_000, 0.0),
                 "int8-keep-float-1": (26_000, 0.0)})
    s = search(fake, has_keep_float=True)
    s.run()
    order = [n for n in fake.calls if "keep-float" in n]
    assert order == ["int4-dynamic-keep-float-1", "int4-dynamic-keep-float-3"]   # int8's cannot beat 16 kB
    t = s.by_name("int4-dynamic-keep-float-3")
    assert t.policy == {"convert": {"quantizer": "litert", "recipe": "dynamic_wi4_afp32", "keep_float": {"worst": 3}}}
    assert "int4-dynamic-keep-float-8" in {k.name for k in s.skipped}
    assert fake.calls.index("int4-dynamic-keep-float-3") < fake.calls.index("qat-int8")


def test_fallback_that_keeps_nothing_stops_that_mode():
    class KeepsNothing(Fake):
        def __call__(self, index, name, family, policy):
            t = super().__call__(index, name, family, policy)
            from dataclasses import replace
            return replace(t, kept_float=0 if "keep-float" in name else None)

    fake = KeepsNothing({"int4-dynamic": (14_000, 0.05), "int8": (25_000, 0.03)}, default=(25_000, 0.05))
    s = search(fake, has_keep_float=True)
    s.run()
    assert [n for n in fake.calls if n.startswith("int4-dynamic-keep")] == ["int4-dynamic-keep-float-1"]
    assert "kept no op" in next(k.reason for k in s.skipped if k.name == "int4-dynamic-keep-float-3")


def test_a_family_whose_strongest_setting_passes_escalates():
    fake = Fake({"int8": (25_000, 0.0), "prune-85": (6_000, 0.0), "prune-90": (5_500, 0.0),
                 "structured-50": (7_000, 0.0), "structured-65": (5_500, 0.03)}, default=(30_000, 0.2))
    s = search(fake)
    best = s.run()
    assert fake.calls.index("prune-85") < fake.calls.index("prune-90")
    assert "structured-65" in fake.calls and best.name == "prune-90"
    assert s.by_name("prune-90").policy["steps"][0]["prune"]["final_sparsity"] == 0.9


def test_one_bisection_step_between_a_pass_and_a_near_failure():
    fake = Fake({"int8": (25_000, 0.0), "prune-85": (6_000, 0.02), "prune-75": (7_000, 0.0),
                 "prune-80": (6_500, 0.0), "structured-50": (6_400, 0.0), "structured-65": (4_000, 0.015),
                 "structured-57": (5_000, 0.0)}, default=(30_000, 0.2))
    s = search(fake)
    best = s.run()
    # between 85 (a near failure) and 75: with two layers, 80 % makes the same table as 75 %: not run again
    assert "same per-layer table as prune-75" in next(k.reason for k in s.skipped if k.name == "prune-80")
    assert fake.calls.index("structured-65") < fake.calls.index("structured-57")  # after a failed escalation
    assert best.name == "structured-57"
    assert s.by_name("structured-57").policy["steps"][0]["structured_prune"]["ratio"] == 0.575


def test_every_candidate_policy_validates():
    from gate.config.schema import Policy
    from gate.tune import space

    tables = {kind: tables_for(SENS, kind, targets) for kind, targets in
              (("prune", (0.9, 0.85, 0.75, 0.6, 0.45)), ("cluster", (8, 16, 32)), ("structured_prune", (0.5, 0.65)))}
    candidates = space.ptq(False) + space.ptq(True) + space.qat()
    candidates += space.fallback(True, {"int4-dynamic", "int8"})
    for route in (space.route_from({"int8"}), space.route_from({"qat-int8"}), space.route_from({"float16"})):
        candidates += space.prune(route, tables["prune"]) + space.prune(route, tables["prune"], (0.9,))
        candidates += space.cluster(route, tables["cluster"]) + space.structured(route, tables["structured_prune"])
    assert len({c.name for c in candidates}) > 15
    for c in candidates:
        Policy.model_validate(c.policy)


def test_no_sensitivity_when_no_family_trial_fits_the_budget():
    clock = Clock()
    measured = []
    fake = Fake({"int8": (25_000, 0.0)}, seconds=60, clock=clock)
    s = Search("size", 4 * 60, fake, measure_sensitivity=lambda: measured.append(1) or SENS, max_drop=0.01,
               clock=clock)
    s.run()
    assert not measured and s.sensitivity is None
