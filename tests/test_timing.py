"""gate.measure.timing.settle_invokes: how many invokes a visit needs to be warm again,
on a fake clock where switching interpreters costs the first invokes of a visit."""
from __future__ import annotations

import numpy as np
import pytest

from gate.measure.timing import MAX_SETTLE, settle_invokes
from gate.verdict.abtest import compare_latency


class ColdCaches:
    """Interpreters whose first `cold` invokes after another interpreter ran are `penalty`
    times slower (an evicted cache refilled over a few invokes), with exponential noise."""

    def __init__(self, cold: int, penalty: float = 2.0, noise: float = 0.05, seed: int = 0):
        self.now, self.last, self.run = 0, None, 0
        self.cold, self.penalty, self.noise = cold, penalty, noise
        self.rng = np.random.default_rng(seed)

    def timer(self) -> int:
        return self.now

    def interpreter(self, cost_ns: int, name: str = ""):
        me = object()

        def invoke():
            self.run = self.run + 1 if self.last is me else 0
            self.last = me
            slow = self.penalty if self.run < self.cold else 1.0
            self.now += int(cost_ns * slow * (1 + self.noise * self.rng.exponential()))
        return invoke

    def make_invoke(self, name, content, example, threads):
        return self.interpreter(1_000_000 if content == b"big" else 400_000, name)


@pytest.mark.parametrize("cold", [0, 1, 3, 6])
def test_finds_how_many_invokes_a_visit_needs(cold):
    lab = ColdCaches(cold)
    models = [[lab.interpreter(1_000_000) for _ in range(3)], [lab.interpreter(400_000) for _ in range(3)]]
    assert settle_invokes(models, lab.timer) == cold


def test_noise_alone_needs_no_settling_and_a_single_interpreter_never_does():
    lab = ColdCaches(0, noise=0.4, seed=3)
    assert settle_invokes([[lab.interpreter(10**6) for _ in range(5)], [lab.interpreter(10**6)]], lab.timer) == 0
    assert settle_invokes([[lab.interpreter(10**6)]], lab.timer) == 0


def test_a_long_cold_start_is_capped():
    lab = ColdCaches(14)
    assert settle_invokes([[lab.interpreter(10**6)], [lab.interpreter(10**6)]], lab.timer) == MAX_SETTLE


def test_the_ab_test_discards_the_cold_invokes():
    """Fastest-of-3 cells on interpreters that need 5 invokes to be warm measured the cold
    ratio before; with settling the A/B finds the true warm ratio 0.4."""
    lab = ColdCaches(5, penalty=2.5)
    v = compare_latency(b"big", b"small", np.zeros(4), max_ratio=1.0, timer=lab.timer, make_invoke=lab.make_invoke,
                        invokes_per_round=3, time_budget_s=10, resamples=200)
    assert v.settings["settle_invokes"] == 5
    assert v.ratio == pytest.approx(0.4, rel=0.03)
