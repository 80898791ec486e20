"""Each threshold passes and fails on constructed measurements, with the margin said."""
from __future__ import annotations

import pytest

from gate.verdict.judge import Measured, Measurements, Sizes, judge, verdict
from gate.config.schema import Thresholds

REF = Measured(Sizes(raw=400 * 1024, gzip=360 * 1024), p50_ms=2.0, p99_ms=3.0, accuracy={1: 0.95, 5: 0.99})
CAND = Measured(Sizes(raw=100 * 1024, gzip=60 * 1024), p50_ms=1.0, p99_ms=4.0, accuracy={1: 0.93, 5: 0.985})
M = Measurements(original_accuracy={1: 0.95, 5: 0.99}, reference=REF, candidate=CAND)

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
    assert failed.margin < 0 and "FAILED" in failed.message() and "the limit by" in failed.message()


def test_messages_use_the_metric_units():
    [acc] = judge(thresholds({"accuracy": {"min": "L"}}, 0.99), M)
    assert acc.message() == "accuracy.min FAILED: accuracy 93.00 % (limit >= 99.00 %), under the limit by 6.00 %"
    [drop] = judge(thresholds({"accuracy": {"max_drop": "L"}}, 0.01), M)
    assert drop.message() == ("accuracy.max_drop FAILED: accuracy drop vs original 2.00 pts "
                              "(limit <= 1.00 pts), over the limit by 1.00 pts")
    [size] = judge(thresholds({"size_kb": {"max": "L"}}, 50), M)
    assert size.message().endswith("over the limit by 50.0 KiB")


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
    m = Measurements(M.original_accuracy, REF, CAND, proxies={"macs": 1200, "parameters": 500, "peak_delta_bytes": 10},
                     base_proxies={"macs": 1000, "parameters": 500})
    t = Thresholds.model_validate({"proxies": {"macs": {"max": 1100, "max_increase": "10%"},
                                               "parameters": {"max_increase": 0}}})
    checks = {c.name: c for c in judge(t, m)}
    assert not checks["proxies.macs.max"].passed and checks["proxies.macs.max"].message().endswith("by 100")
    assert not checks["proxies.macs.max_increase"].passed
    assert checks["proxies.macs.max_increase"].value == pytest.approx(0.2)
    assert checks["proxies.parameters.max_increase"].passed
    # Without a measured base, only the absolute limits are judged.
    no_base = Measurements(M.original_accuracy, REF, CAND, proxies={"macs": 900})
    assert [c.name for c in judge(t, no_base)] == ["proxies.macs.max"]
