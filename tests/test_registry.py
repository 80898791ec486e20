"""Each threshold of the registry passes and fails on constructed evidence, with the margin said."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from gate.config.schema import BenchmarkSpec, Thresholds
from gate.measure.bench import Latency
from gate.measure.sizes import FileSizes
import gate.verdict.registry as registry
from gate.verdict.check import verdict
from gate.verdict.evidence import Evidence, Side
from gate.verdict.registry import ROW_NAMES, configured
from gate.verdict.registry import judge as judge_all


def latency(p50: float, p99: float) -> Latency:
    return Latency(init_ms=1, first_ms=1, runs=10, mean_ms=p50, std_ms=0, min_ms=p50, p50_ms=p50, p90_ms=p99,
                   p99_ms=p99, max_ms=p99)


def fake_ab(baseline: bytes, candidate: bytes, example, *, max_ratio: float, **_):
    """The A/B test on constructed models: the ratio of their stated p50s."""
    ratio = P50[candidate] / P50[baseline]
    outcome = "pass" if ratio <= max_ratio else "fail"
    return SimpleNamespace(ratio=ratio, ci_low=ratio, ci_high=ratio, passed=outcome == "pass", outcome=outcome,
                           message=lambda: f"ratio {ratio}")


P50 = {b"ref": 2.0, b"cand": 1.0, b"base": 0.9}
ORIG = Side({1: 0.95, 5: 0.99})
REF = Side({1: 0.95, 5: 0.99}, sizes=FileSizes(400 * 1024, 360 * 1024, "r"), content=b"ref", latency=latency(2.0, 3.0))
CAND = Side({1: 0.93, 5: 0.985}, sizes=FileSizes(100 * 1024, 60 * 1024, "c"), content=b"cand",
            latency=latency(1.0, 4.0))
M = Evidence(ORIG, REF, CAND, labels=np.zeros(0), example=np.zeros((1, 1)), bench=BenchmarkSpec(),
             compare_latency=fake_ab)


def judge(t: Thresholds, ev: Evidence):
    return judge_all(t, ev)

# threshold mapping, check name, limit that passes, limit that fails, value
CASES = [
    ({"size_kb": {"max": "L"}}, "size_kb.max", 100.0, 99.9, 100.0),
    ({"size_kb": {"max": "L", "measure": "gzip"}}, "size_kb.max", 60.0, 59.0, 60.0),
    ({"compression": {"min": "L", "measure": "raw"}}, "compression.min", 4.0, 4.01, 4.0),
    ({"compression": {"min": "L"}}, "compression.min", 6.0, 6.1, 6.0),
    ({"accuracy": {"min": "L"}}, "accuracy.min", 0.93, 0.94, 0.93),
    ({"accuracy": {"min": "L", "top_k": 5}}, "accuracy.min", 0.985, 0.99, 0.985),
    ({"accuracy": {"max_drop": "L"}}, "accuracy.max_drop", 0.02, 0.019, 0.02),
    ({"latency_ms": {"p50_max": "L"}}, "latency_ms.p50_max", 1.0, 0.99, 1.0),
    ({"latency_ms": {"p99_max": "L"}}, "latency_ms.p99_max", 4.0, 3.9, 4.0),
    ({"latency": {"max_ratio": "L"}}, "latency.max_ratio", 0.5, 0.49, 0.5),
]


def thresholds(template: dict, limit: float) -> Thresholds:
    def fill(d):
        return {k: fill(v) if isinstance(v, dict) else (limit if v == "L" else v) for k, v in d.items()}
    return Thresholds.model_validate(fill(template))


@pytest.mark.parametrize("template,name,ok,bad,value", CASES, ids=[f"{c[1]}-{i}" for i, c in enumerate(CASES)])
def test_check_passes_at_and_fails_beyond_the_limit(template, name, ok, bad, value):
    [passed] = judge(thresholds(template, ok), M)
    assert passed.name == name and passed.passed and passed.value == pytest.approx(value)
    [failed] = judge(thresholds(template, bad), M)
    assert not failed.passed and verdict([passed, failed]) == "fail"
    assert failed.margin < 0 and "FAILED" in failed.message and "the limit by" in failed.message


def test_messages_use_the_metric_units():
    [acc] = judge(thresholds({"accuracy": {"min": "L"}}, 0.99), M)
    assert acc.message == "accuracy.min FAILED: accuracy 93.00 % (limit >= 99.00 %), under the limit by 6.00 pts"
    [drop] = judge(thresholds({"accuracy": {"max_drop": "L"}}, 0.01), M)
    assert drop.message == ("accuracy.max_drop FAILED: accuracy drop vs original 2.00 pts "
                              "(limit <= 1.00 pts), over the limit by 1.00 pts")
    [size] = judge(thresholds({"size_kb": {"max": "L"}}, 50), M)
    assert size.message.endswith("over the limit by 50.0 KiB")


def test_no_thresholds_no_checks_pass():
    assert judge(Thresholds(), M) == [] and verdict([]) == "pass"


def test_all_checks_together_in_gate_yml_order():
    t = Thresholds.model_validate({"size_kb": {"max": 500}, "compression": {"min": 2},
                                   "accuracy": {"min": 0.5, "max_drop": 0.1},
                                   "latency_ms": {"p50_max": 9, "p99_max": 9}, "latency": {"max_ratio": 2}})
    checks = judge(t, M)
    assert [c.name for c in checks] == ["size_kb.max", "compression.min", "accuracy.min", "accuracy.max_drop",
                                        "latency_ms.p50_max", "latency_ms.p99_max", "latency.max_ratio"]
    assert verdict(checks) == "pass"


def test_proxy_limits_absolute_and_vs_base():
    cand = replace(CAND, proxies={"macs": 1200, "parameters": 500, "peak_delta_bytes": 10})
    base = replace(CAND, proxies={"macs": 1000, "parameters": 500})
    t = Thresholds.model_validate({"proxies": {"macs": {"max": 1100, "max_increase": "10%"},
                                               "parameters": {"max_increase": 0}}})
    checks = {c.name: c for c in judge(t, replace(M, candidate=cand, base=base))}
    assert not checks["proxies.macs.max"].passed and checks["proxies.macs.max"].message.endswith("by 100")
    assert not checks["proxies.macs.max_increase"].passed
    assert checks["proxies.macs.max_increase"].value == pytest.approx(0.2)
    assert checks["proxies.parameters.max_increase"].passed
    # Without a measured base, the limits that need it are not judged, and fail by default.
    judged = {c.name: c for c in judge(t, replace(M, candidate=replace(CAND, proxies={"macs": 900})))}
    assert judged["proxies.macs.max"].passed and judged["proxies.macs.max"].outcome == "point"
    for name in ("proxies.parameters.max_increase", "proxies.macs.max_increase"):
        assert judged[name].outcome == "not_judged" and not judged[name].passed and judged[name].value is None


def test_regression_limits_against_the_base():
    base = Side({1: 0.95, 5: 0.99}, sizes=FileSizes(90 * 1024, 50 * 1024, "b"), content=b"base")
    t = Thresholds.model_validate({"size": {"max_increase": "2%"}, "accuracy": {"max_drop_vs_base": 0.01},
                                   "latency": {"max_regression": "5%"}})
    checks = {c.name: c for c in judge(t, replace(M, base=base))}
    assert checks["size.max_increase"].value == pytest.approx(100 / 90 - 1) and not checks["size.max_increase"].passed
    drop = checks["accuracy.max_drop_vs_base"]
    assert drop.value == pytest.approx(0.02) and not drop.passed and drop.unit == "pts"
    assert "not scored on the same examples" in drop.detail          # no predictions: the point estimate
    lat = checks["latency.max_regression"]
    # judged in the unit the limit is written in: the change (ratio - 1), "5%" -> 0.05
    assert lat.value == pytest.approx(1.0 / 0.9 - 1) and lat.limit == pytest.approx(0.05) and not lat.passed
    assert lat.unit == "%" and lat.ci_low == pytest.approx(lat.value) and "over the limit" in lat.message
    unchanged = {c.name: c for c in judge(t, replace(M, base=base, base_unchanged=True))}
    assert unchanged["latency.max_regression"].outcome == "unchanged" and unchanged["latency.max_regression"].passed


def test_checks_carry_their_line_in_gate_yml():
    t = Thresholds.model_validate({"size_kb": {"max": 500}, "accuracy": {"min": 0.5}})
    lines = {"size_kb.max": 7, "accuracy": 9}
    checks = judge_all(t, M, lambda name: lines.get(name) or lines.get(name.split(".")[0]))
    assert [(c.name, c.line) for c in checks] == [("size_kb.max", 7), ("accuracy.min", 9)]


def test_every_row_is_named_by_its_path_in_gate_yml():
    full = Thresholds.model_validate({
        "size": {"max_increase": 0.1}, "size_kb": {"max": 1}, "compression": {"min": 1},
        "accuracy": {"min": 0.1, "max_drop": 0.1, "max_drop_vs_base": 0.1},
        "latency_ms": {"p50_max": 1, "p99_max": 1}, "latency": {"max_ratio": 1, "max_regression": 0.1},
        "proxies": {n: {"max": 1, "max_increase": 0.1} for n in
                    ("parameters", "nonzero_parameters", "unique_values", "macs", "peak_memory_bytes")},
        "delegation": {"full": True, "min_share": 0.9, "max_drop_vs_base": 0.05}})
    assert configured(full) == list(ROW_NAMES) and len(set(ROW_NAMES)) == len(ROW_NAMES)
    for name in ROW_NAMES:
        node = full
        for part in name.split("."):
            node = getattr(node, part)
        assert isinstance(node, float) or (name == "delegation.full" and node is True)


def _delegation(accelerated: int, cpu: tuple[str, ...] = (), partitions: int = 1):
    from gate.measure.targets.delegation import Delegation

    return Delegation("gpu", "TfLiteGpuDelegateV2", 10, accelerated, partitions, cpu, "test")


def test_delegation_rows_judge_the_target_profile_and_name_cpu_ops():
    shares = {"candidate": _delegation(8, ("SOFTMAX [probs]", "RESHAPE [flat]"), 2), "base": _delegation(10)}
    ev = replace(M, base=CAND, delegation=lambda who, content: shares[who], measured_on="Pixel 7 (arm64-v8a)")
    t = Thresholds.model_validate({"delegation": {"full": True, "min_share": 0.75, "max_drop_vs_base": 0.1}})
    checks = {c.name: c for c in judge_all(t, ev)}
    assert not checks["delegation.full"].passed and "SOFTMAX [probs], RESHAPE [flat]" in checks["delegation.full"].detail
    assert checks["delegation.min_share"].passed and checks["delegation.min_share"].value == pytest.approx(0.8)
    assert "measured on Pixel 7" in checks["delegation.min_share"].detail
    drop = checks["delegation.max_drop_vs_base"]
    assert not drop.passed and drop.value == pytest.approx(0.2) and "base: 10 of 10 ops" in drop.detail


def test_full_delegation_fails_without_a_share_when_the_tool_says_not_fully_accelerated():
    """An ssh board's litert-benchmark says only "not fully accelerated": delegation.full is
    judged (a fail, no figure invented), min_share is not judged."""
    from gate.measure.targets.delegation import Delegation

    partly = Delegation("gpu", "GPU", 10, None, 0, (), "litert-benchmark --result_json")
    ev = replace(M, delegation=lambda who, content: partly, measured_on="rpi5 over ssh")
    t = Thresholds.model_validate({"delegation": {"full": True, "min_share": 0.9}})
    full, share = judge_all(t, ev)
    assert (full.name, full.passed, full.value, full.outcome) == ("delegation.full", False, None, "point")
    assert "not fully accelerated on GPU" in full.detail and "FAIL" in full.message
    assert share.outcome == "not_judged" and "needs an op profile" in share.detail


def test_delegation_without_a_device_is_not_judged():
    ev = replace(M, delegation=lambda who, content: "delegation is measured on the device")
    t = Thresholds.model_validate({"delegation": {"min_share": 0.9}})
    (check,) = judge_all(t, ev)
    assert check.outcome == "not_judged" and not check.passed and "on the device" in check.detail


REGRESSION = {"size": {"max_increase": "2%"}, "latency": {"max_regression": "5%"}}


def test_no_base_although_one_was_expected_is_not_judged_and_fails():
    t = Thresholds.model_validate(REGRESSION)
    checks = judge(t, replace(M, no_base=("unavailable", "git is not installed")))
    assert [(c.name, c.outcome, c.passed) for c in checks] == [("size.max_increase", "not_judged", False),
                                                                ("latency.max_regression", "not_judged", False)]
    assert verdict(checks) == "fail"
    assert checks[0].message == "size.max_increase NOT JUDGED: git is not installed; counted as fail"
    assert checks[0].margin is None and checks[0].limit == 0.02 and checks[0].unit == "%"


def test_not_judged_can_be_counted_as_pass_and_still_says_so():
    t = Thresholds.model_validate({**REGRESSION, "not_judged": "pass"})
    checks = judge(t, replace(M, no_base=("unavailable", "the fetch failed")))
    assert verdict(checks) == "pass" and all(c.outcome == "not_judged" for c in checks)
    assert checks[1].message.endswith("counted as pass (thresholds.not_judged: pass)")


@pytest.mark.parametrize("kind", ["absent", "disabled"])
def test_base_without_a_model_or_no_baseline_is_not_applicable(kind):
    checks = judge(Thresholds.model_validate(REGRESSION), replace(M, no_base=(kind, "the base has no gate.yml")))
    assert all(c.outcome == "not_applicable" and c.passed for c in checks) and verdict(checks) == "pass"
    assert checks[0].message == "size.max_increase not applicable: the base has no gate.yml"


def test_a_figure_that_could_not_be_measured_is_not_judged():
    t = Thresholds.model_validate({"proxies": {"peak_memory_bytes": {"max": 10}}})
    [check] = judge(t, replace(M, candidate=replace(CAND, proxies={"peak_delta_bytes": None})))
    assert check.outcome == "not_judged" and not check.passed and "could not be measured" in check.detail


def test_each_fixed_row_name_is_written_once():
    """A threshold's name, unit and limit kind live in its row alone: the judges return a
    Found and Row.check names the Check, so the name appears once in the registry."""
    source = Path(registry.__file__).read_text(encoding="utf-8")
    fixed = [name for name in ROW_NAMES if not name.startswith("proxies.")]
    assert all(source.count(f'"{name}"') == 1 for name in fixed), {n: source.count(f'"{n}"') for n in fixed}
    assert "Check(name=" in source and source.count("Check(name=") == 2   # Row.check and unjudged
