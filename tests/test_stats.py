"""Paired accuracy statistics and the latency ratio CI, on constructed data with known answers."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import binom

from gate.verdict.stats import (
    accuracy_drop,
    correctness,
    drop_ci,
    mcnemar_exact,
    placement_spread,
    ratio_ci,
)


def paired(n: int, base_right: int, b: int, c: int) -> tuple[np.ndarray, np.ndarray]:
    """n examples; the baseline gets `base_right` right; b flip right->wrong, c wrong->right."""
    base = np.zeros(n, bool)
    base[:base_right] = True
    cand = base.copy()
    cand[:b] = False                          # right for the baseline, wrong for the candidate
    cand[base_right:base_right + c] = True    # wrong for the baseline, right for the candidate
    return base, cand


def test_mcnemar_exact_matches_the_binomial_tail():
    assert mcnemar_exact(10, 2) == pytest.approx(2 * binom.cdf(2, 12, 0.5))
    assert mcnemar_exact(2, 10) == pytest.approx(2 * binom.cdf(2, 12, 0.5))
    assert mcnemar_exact(5, 5) == 1.0
    assert mcnemar_exact(0, 0) == 1.0


def test_counts_accuracies_and_drop():
    base, cand = paired(100, 90, b=10, c=2)
    r = accuracy_drop(base, cand, max_drop=0.1)
    assert (r.examples, r.b, r.c) == (100, 10, 2)
    assert (r.base_acc, r.cand_acc) == (0.90, 0.82)
    assert r.drop == pytest.approx(0.08)
    assert r.mcnemar_p == pytest.approx(2 * binom.cdf(2, 12, 0.5))
    assert r.ci_low < r.drop < r.ci_high


def test_point_mode_passes_where_ci_mode_fails_on_a_small_set():
    base, cand = paired(100, 90, b=10, c=2)
    point = accuracy_drop(base, cand, max_drop=0.1, mode="point")
    ci = accuracy_drop(base, cand, max_drop=0.1, mode="ci")
    assert point.passed and not ci.passed
    assert ci.ci_high > 0.1
    assert "ci mode" in ci.explanation and "over max_drop" in ci.explanation


def test_ci_mode_passes_with_enough_examples():
    # 3 flips each way: drop 0. On 360 examples the CI is about +-1.4 points, on 3,600 (30 each way) +-0.4.
    small = accuracy_drop(*paired(360, 350, 3, 3), max_drop=0.01, mode="ci")
    large = accuracy_drop(*paired(3600, 3500, 30, 30), max_drop=0.01, mode="ci")
    assert small.drop == large.drop == 0.0
    assert not small.passed and 0.012 < small.ci_high < 0.016
    assert large.passed and large.ci_high < 0.005


def test_identical_predictions_have_a_zero_interval():
    r = accuracy_drop(*paired(50, 40, 0, 0), max_drop=0.0, mode="ci")
    assert (r.drop, r.ci_low, r.ci_high, r.mcnemar_p, r.passed) == (0.0, 0.0, 0.0, 1.0, True)


def test_an_improvement_is_a_negative_drop():
    r = accuracy_drop(*paired(100, 80, b=1, c=6), max_drop=0.0, mode="ci")
    assert r.drop == pytest.approx(-0.05)
    assert r.passed


def test_drop_ci_is_seeded_and_covers_the_drop():
    assert drop_ci(10, 2, 100, seed=3) == drop_ci(10, 2, 100, seed=3)
    low, high = drop_ci(10, 2, 100, confidence=0.99)
    low95, high95 = drop_ci(10, 2, 100, confidence=0.95)
    assert low <= low95 < 0.08 < high95 <= high


def test_correctness_and_bad_input():
    assert correctness((1, 2, 3), (1, 0, 3)).tolist() == [True, False, True]
    with pytest.raises(ValueError):
        correctness((1, 2), (1, 2, 3))
    with pytest.raises(ValueError):
        accuracy_drop([True, False], [True], max_drop=0.1)
    with pytest.raises(ValueError):
        accuracy_drop([True], [True], max_drop=0.1, mode="strict")  # type: ignore[arg-type]
    r = accuracy_drop([True], [True], max_drop=0.1)
    assert set(r.to_dict()) >= {"base_acc", "cand_acc", "drop", "ci_low", "ci_high", "b", "c", "mcnemar_p",
                                "passed", "mode", "explanation"}


# --- latency ratio ------------------------------------------------------------------------

def cells(rounds: int, ratio: float, *, noise: float = 0.0, offsets=(0.0,) * 5, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = 1e6 * np.exp(np.array(offsets))[None, :] * (1 + noise * rng.exponential(size=(rounds, len(offsets))))
    cand = ratio * 1e6 * np.exp(np.array(offsets))[None, :] * (
        1 + noise * rng.exponential(size=(rounds, len(offsets))))
    return np.stack([base, cand], axis=1)


def test_ratio_ci_without_noise_is_exact():
    r, low, high = ratio_ci(cells(20, 1.1))
    assert r == pytest.approx(1.1) and low == pytest.approx(1.1) and high == pytest.approx(1.1)


def test_ratio_ci_covers_the_truth_and_narrows_with_rounds():
    r, low, high = ratio_ci(cells(20, 1.05, noise=0.1))
    r2, low2, high2 = ratio_ci(cells(320, 1.05, noise=0.1))
    assert low < 1.05 < high and low2 < 1.05 < high2
    assert high2 - low2 < (high - low) / 2


def test_placement_spread_is_robust_and_widens_the_interval():
    a = 0.02
    assert placement_spread(cells(10, 1.0, offsets=(0, 0, 0, 0, 0.3))) == pytest.approx(0.0, abs=1e-12)
    spread = placement_spread(cells(10, 1.0, offsets=(-2 * a, -a, 0, a, 2 * a)))
    assert spread == pytest.approx(1.4826 * a)
    _, low, high = ratio_ci(cells(40, 1.0, offsets=(-2 * a, -a, 0, a, 2 * a)))
    assert low < 0.985 and high > 1.015   # +-1.96 * 1.4826 a * sqrt(pi / 5)


def test_ratio_ci_ignores_instances_that_did_not_exist_yet():
    c = cells(10, 1.2, offsets=(0,) * 10)
    c[:5, :, 5:] = np.nan
    r, low, high = ratio_ci(c)
    assert r == pytest.approx(1.2) and low == pytest.approx(1.2) and high == pytest.approx(1.2)
    with pytest.raises(ValueError):
        ratio_ci(np.ones((3, 3, 2)))
