"""Latency A/B decisions with a fake clock: pass, fail, inconclusive, sequential looks."""
from __future__ import annotations

import json

import numpy as np
import pytest

from gate.verdict.abtest import compare_latency, decide

MS = 1_000_000
BASE, CAND = b"baseline-model", b"candidate-model"


class FakeLab:
    """A fake clock: every invoke advances it by its model's cost, times a per-instance
    placement factor and a positive (exponential) noise, like a busy machine."""

    def __init__(self, ratio: float, *, noise: float = 0.0, placement: float = 0.0, seed: int = 0):
        self.now = 0
        self.costs = {BASE: MS, CAND: int(ratio * MS)}
        self.noise, self.placement = noise, placement
        self.rng = np.random.default_rng(seed)
        self.created: list[str] = []

    def timer(self) -> int:
        return self.now

    def make_invoke(self, name: str, content: bytes, example: np.ndarray, threads: int):
        cost = self.costs[content] * np.exp(self.placement * self.rng.standard_normal())
        self.created.append(name)

        def invoke():
            self.now += int(cost * (1 + self.noise * self.rng.exponential()))
        return invoke


@pytest.fixture(scope="module")
def tiny_tflite(tiny_model) -> bytes:
    from gate.measure.convert import reference_spec, to_tflite

    return to_tflite(tiny_model.keras, reference_spec()).content


def run(lab: FakeLab, **kw):
    kw = {"max_ratio": 1.05, "time_budget_s": 10.0, "resamples": 500, **kw}
    return compare_latency(BASE, CAND, np.zeros(4), timer=lab.timer, make_invoke=lab.make_invoke, **kw)


def test_decide():
    assert decide(0.98, 1.04, 1.05) == "pass"
    assert decide(1.06, 1.10, 1.05) == "fail"
    assert decide(1.00, 1.06, 1.05) == "inconclusive"


def test_equal_models_pass_on_the_first_look():
    v = run(FakeLab(1.0, noise=0.1))
    assert (v.outcome, v.passed, v.looks, v.rounds) == ("pass", True, 1, 20)
    assert v.ci_low < 1.0 < v.ci_high < 1.05
    assert v.baseline_p50_ms == pytest.approx(1.0, rel=0.1)


def test_a_slower_candidate_fails():
    v = run(FakeLab(1.2, noise=0.1))
    assert (v.outcome, v.passed) == ("fail", False)
    assert 1.05 < v.ci_low < 1.2 < v.ci_high
    assert v.candidate_p50_ms / v.baseline_p50_ms == pytest.approx(1.2, rel=0.05)


def test_no_noise_measures_the_exact_ratio():
    v = run(FakeLab(1.1))
    assert v.ratio == pytest.approx(1.1, rel=1e-6)
    assert v.ci_low == pytest.approx(1.1, rel=1e-6) and v.ci_high == pytest.approx(1.1, rel=1e-6)


def test_at_the_limit_it_stays_inconclusive_until_the_budget_and_counts_as_told():
    lab = FakeLab(1.05, noise=0.1)
    v = run(lab, time_budget_s=3.0)
    assert v.outcome == "inconclusive" and not v.passed
    assert v.looks > 1 and v.rounds > 20
    assert v.seconds <= 3.0 * 1.1
    assert v.settings["instances_used"] > 5 and len(lab.created) == 2 * v.settings["instances_used"]
    assert "counted as fail" in v.message()
    assert run(FakeLab(1.05, noise=0.1), time_budget_s=3.0, inconclusive="pass").passed


def test_more_rounds_resolve_a_close_call():
    v = run(FakeLab(1.03, noise=0.4, seed=1), max_ratio=1.05, time_budget_s=60)
    assert v.outcome == "pass" and v.looks > 1 and v.seconds < 60
    assert v.ci_low < 1.03 < v.ci_high


def test_instance_placement_widens_the_interval():
    quiet = run(FakeLab(1.0, noise=0.05))
    placed = run(FakeLab(1.0, noise=0.05, placement=0.03))
    assert placed.placement_sd > 0.01 > quiet.placement_sd
    assert placed.ci_high - placed.ci_low > 2 * (quiet.ci_high - quiet.ci_low)


def test_seeded_runs_repeat_exactly():
    a, b = run(FakeLab(1.02, noise=0.2), seed=7), run(FakeLab(1.02, noise=0.2), seed=7)
    assert a.to_dict(with_rounds=True) == b.to_dict(with_rounds=True)


def test_to_dict_is_json_and_records_settings():
    v = run(FakeLab(1.0, noise=0.1), threads=2, invokes_per_round=5)
    d = json.loads(json.dumps(v.to_dict()))
    assert d["outcome"] == "pass" and "round_ms" not in d and d["message"].startswith("candidate/baseline")
    assert d["settings"]["threads"] == 2 and d["settings"]["invokes_per_round"] == 5
    assert len(v.to_dict(with_rounds=True)["round_ms"]) == v.rounds


def test_bad_arguments():
    with pytest.raises(ValueError):
        run(FakeLab(1.0), instances=0)
    with pytest.raises(ValueError):
        run(FakeLab(1.0), inconclusive="maybe")


def test_real_litert_smoke(tiny_tflite):
    v = compare_latency(tiny_tflite, tiny_tflite, np.zeros((8, 8, 1), np.float32), max_ratio=1.5,
                        instances=2, rounds=5, time_budget_s=5)
    assert v.outcome == "pass" and 0.8 < v.ratio < 1.25
    assert v.settings["interpreter"].startswith("ai_edge_litert.interpreter.Interpreter")


class SlowLab(FakeLab):
    """A model of 100 ms per invoke: the probe alone (2 visits x 10 instances x 20 invokes)
    took 40 s of a 5 s budget before the budget bounded it."""

    def __init__(self):
        super().__init__(1.0)
        self.costs = {BASE: 100 * MS, CAND: 100 * MS}


def test_the_time_budget_bounds_setup_probe_and_rounds():
    lab = SlowLab()
    v = run(lab, time_budget_s=5.0)
    assert v.seconds <= 5.0 + 0.2            # one invoke of slack: the deadline is checked between invokes
    assert v.outcome == "not_judged" and not v.passed and v.rounds < 5
    assert v.message().startswith("cut short by latency.time_budget_s 5 s after")
    assert "raise time_budget_s" in v.message()
    fast = run(FakeLab(1.0, noise=0.1), time_budget_s=0.05)       # 1 ms invokes, 50 ms: not even set up
    assert fast.seconds <= 0.05 + 0.01 and fast.outcome == "not_judged" and not fast.passed


def test_a_budget_with_room_for_a_few_rounds_judges_on_them():
    v = run(FakeLab(1.0, noise=0.1), time_budget_s=1.0)
    assert v.seconds <= 1.0 + 0.01 and v.outcome == "pass" and 5 <= v.rounds < 20


def test_a_cut_short_latency_check_is_not_judged_never_a_pass():
    from functools import partial

    from gate.config.schema import BenchmarkSpec, Thresholds
    from gate.verdict.evidence import Evidence, Side
    from gate.verdict.registry import judge

    lab = SlowLab()
    side = Side({}, content=BASE)
    ev = Evidence(original=side, reference=side, candidate=Side({}, content=CAND), labels=None,
                  example=np.zeros(4), bench=BenchmarkSpec(), tasks={},
                  compare_latency=partial(compare_latency, timer=lab.timer, make_invoke=lab.make_invoke))
    t = Thresholds.model_validate({"latency": {"max_ratio": 1.5, "time_budget_s": 2, "inconclusive": "pass"}})
    (check,) = judge(t, ev)
    assert check.outcome == "not_judged" and not check.passed and check.value is None
    assert "cut short by latency.time_budget_s 2 s" in check.detail


def test_real_litert_tiny_budget_is_a_bound(tiny_tflite):
    import time

    start = time.perf_counter()
    v = compare_latency(tiny_tflite, tiny_tflite, np.zeros((8, 8, 1), np.float32), max_ratio=1.5,
                        time_budget_s=0.05)
    elapsed = time.perf_counter() - start
    assert elapsed <= 0.05 + 0.5          # slack: making the first pair of interpreters is not interruptible
    assert v.outcome == "not_judged" or v.rounds >= 5      # judged only on enough rounds
