"""Paired statistics for the gate: accuracy of two models on the same examples, and
the latency ratio of two models timed in the same rounds. numpy + scipy only.

Accuracy (`accuracy_drop`)
--------------------------
Both models are scored on the same eval examples, so the comparison is *paired*: only
the examples where they disagree carry information. With ``b`` = examples the baseline
gets right and the candidate gets wrong, ``c`` = the reverse, and ``n`` examples:

- drop = base_acc - cand_acc = (b - c) / n (positive: the candidate is worse);
- McNemar's exact test: under "equally accurate", each discordant example is a fair coin,
  so p = two-sided binomial test of b successes in b + c trials at 0.5
  (``scipy.stats.binomtest``; b = 10, c = 2 gives p = 2 * binom.cdf(2, 12, 0.5) = 0.039);
- a paired bootstrap CI of the drop: examples are resampled with replacement, both
  models' results of an example staying together. Only the counts of the three kinds of
  example (b-type, c-type, agreeing) matter, so one resample is one multinomial draw.

``mode`` decides what is compared with ``max_drop``:

- ``"point"``: the observed drop. What most people expect, but on a small eval set the
  drop moves in big steps and by chance: with 360 examples, one example is 0.28 points,
  so a max_drop of 1 point is "at most 3 more examples wrong".
- ``"ci"``: the upper bound of the drop's CI. Conservative: it passes only when the eval
  set is big enough to *show* the drop is within the limit. With 360 examples, a
  candidate that flips 3 examples each way (drop 0) has a 95 % CI of about
  [-1.4, +1.4] points and fails a 1-point limit; the same rate of flips (30 each way) on
  3,600 examples gives about [-0.4, +0.4] and passes.
  Use it when a regression that slips through costs more than a re-run with more data.

If the models agree on every example (b = c = 0) the bootstrap CI is [0, 0]: the data
show no disagreement at all, and McNemar's p is 1.

Latency (`ratio_ci`)
--------------------
See `gate.verdict.abtest` for the measurement design. Input: ``cells[round, model, instance]``,
each cell the fastest of that interpreter instance's timed invokes in that round
(model 0 = baseline, 1 = candidate). A model's round figure = the median over its
instances (on logs); the estimate = the median over rounds of the per-round ratio
candidate/baseline. Its CI adds two sources of error:

- rounds: a paired bootstrap over rounds (a round keeps both models together);
- placement: where an instance's buffers landed in memory is a fixed offset per
  instance (here: mostly within 1 %, but one of 8 MobileNet instances was 6.3 % slow in
  both halves of a run) that more rounds never average away. It enters each bootstrap
  draw as a normal term with the variance of the difference of two medians of
  `instances` draws, (pi/2) sigma^2 (2 / instances), sigma = the MAD-based spread of the
  instances' offsets pooled over both models (robust to one slow instance, as the median
  itself is). Resampling the instances instead was tried and rejected: a bootstrap of
  the median of 5 puts a single outlier instance at the median in 6 % of resamples, so
  MobileNet A/A intervals stayed at about +-5 % and never narrowed (still inconclusive
  against a 2 % limit after 550 rounds). With one instance per model the placement term
  is zero: it cannot be estimated. `gate.verdict.abtest` adds instances when it extends a run,
  so this term, unlike a fixed set of instances, shrinks as the run goes on.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Literal, Sequence

import numpy as np

Mode = Literal["point", "ci"]


def correctness(predictions: Sequence[int], labels: Sequence[int]) -> np.ndarray:
    """Per-example top-1 correctness (bool) from predicted classes (EvalResult.predictions)."""
    p, y = np.asarray(predictions), np.asarray(labels)
    if p.shape != y.shape:
        raise ValueError(f"{p.size} predictions for {y.size} labels")
    return p == y


@dataclass(frozen=True)
class AccuracyComparison:
    examples: int
    base_acc: float
    cand_acc: float
    drop: float          # base_acc - cand_acc; positive = the candidate is worse
    ci_low: float        # bootstrap CI of the drop
    ci_high: float
    confidence: float
    b: int               # baseline right, candidate wrong
    c: int               # baseline wrong, candidate right
    mcnemar_p: float     # exact, two-sided
    max_drop: float
    mode: str            # "point" or "ci"
    passed: bool
    explanation: str

    def to_dict(self) -> dict:
        return asdict(self)


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value from the discordant counts."""
    from scipy.stats import binomtest

    if b + c == 0:
        return 1.0
    return float(binomtest(min(b, c), b + c, 0.5).pvalue)


def drop_ci(b: int, c: int, n: int, *, confidence: float = 0.95, resamples: int = 10_000,
            seed: int = 0) -> tuple[float, float]:
    """Paired bootstrap CI (percentile) of (b - c) / n, resampling the n examples."""
    if n <= 0:
        raise ValueError("no examples")
    rng = np.random.default_rng(seed)
    counts = rng.multinomial(n, [b / n, c / n, (n - b - c) / n], size=resamples)
    drops = (counts[:, 0] - counts[:, 1]) / n
    alpha = 1 - confidence
    low, high = np.quantile(drops, [alpha / 2, 1 - alpha / 2])
    return float(low), float(high)


def accuracy_drop(base_correct: Sequence[bool], cand_correct: Sequence[bool], *, max_drop: float,
                  mode: Mode = "point", confidence: float = 0.95, resamples: int = 10_000,
                  seed: int = 0) -> AccuracyComparison:
    """Compare two models scored on the same examples; pass if the drop is within max_drop.

    mode "point" judges the observed drop, "ci" the upper bound of its bootstrap CI.
    """
    base = np.asarray(base_correct, dtype=bool)
    cand = np.asarray(cand_correct, dtype=bool)
    if base.shape != cand.shape or base.ndim != 1:
        raise ValueError(f"correctness vectors differ in shape: {base.shape} vs {cand.shape}")
    if mode not in ("point", "ci"):
        raise ValueError(f"mode must be 'point' or 'ci', got {mode!r}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    n = int(base.size)
    if n == 0:
        raise ValueError("no examples to compare")
    b, c = int((base & ~cand).sum()), int((~base & cand).sum())
    drop = (b - c) / n
    low, high = drop_ci(b, c, n, confidence=confidence, resamples=resamples, seed=seed)
    p = mcnemar_exact(b, c)
    judged = drop if mode == "point" else high
    passed = judged <= max_drop + 1e-12
    return AccuracyComparison(n, float(base.mean()), float(cand.mean()), drop, low, high, confidence, b, c, p,
                              max_drop, mode, passed, _explain(n, b, c, drop, low, high, p, confidence,
                                                               max_drop, mode, passed))


def _pts(x: float) -> str:
    return f"{100 * x:+.2f}"


def _explain(n, b, c, drop, low, high, p, confidence, max_drop, mode, passed) -> str:
    what = (f"on {n} examples the candidate gets {b} wrong that the baseline gets right and {c} right that "
            f"it gets wrong (McNemar exact p = {p:.3g}); drop {_pts(drop)} pts, "
            f"{100 * confidence:g} % CI [{_pts(low)}, {_pts(high)}] pts; one example = {100 / n:.2f} pts")
    judged = f"the drop {_pts(drop)}" if mode == "point" else f"the CI's upper bound {_pts(high)}"
    verdict = "within" if passed else "over"
    return f"{what}. {mode} mode: {judged} pts is {verdict} max_drop {100 * max_drop:.2f} pts."


# --- latency ---------------------------------------------------------------------------

def round_ratios(cells: np.ndarray) -> np.ndarray:
    """Per-round log(candidate / baseline) from cells[round, model, instance] (NaN = absent)."""
    per_round = np.nanmedian(np.log(cells), axis=2)
    return per_round[:, 1] - per_round[:, 0]


def placement_spread(cells: np.ndarray) -> float:
    """Robust SD (MAD * 1.4826) of the instances' fixed offsets, on logs, pooled over models.

    An instance's offset is the median over rounds of its cell's log-distance from its
    model's round figure.
    """
    logs = np.log(cells)
    offsets = np.nanmedian(logs - np.nanmedian(logs, axis=2, keepdims=True), axis=0)   # [2, instances]
    centred = offsets - np.nanmedian(offsets, axis=1, keepdims=True)
    return float(1.4826 * np.nanmedian(np.abs(centred)))


def ratio_ci(cells: np.ndarray, *, confidence: float = 0.95, resamples: int = 2000,
             seed: int = 0) -> tuple[float, float, float]:
    """(ratio, ci_low, ci_high) of candidate/baseline latency; see the module docstring.

    cells[round, model, instance]: model 0 baseline, 1 candidate; values > 0, NaN for an
    instance that did not exist yet in that round.
    """
    cells = np.asarray(cells, dtype=np.float64)
    if cells.ndim != 3 or cells.shape[1] != 2 or cells.shape[0] < 1 or (cells <= 0).any():
        raise ValueError(f"cells must be positive, shaped [rounds, 2, instances]; got {cells.shape}")
    rounds = cells.shape[0]
    ratios = round_ratios(cells)
    rng = np.random.default_rng(seed)
    stats = np.median(ratios[rng.integers(0, rounds, (resamples, rounds))], axis=1)
    # Two medians of n placements each: var ~ (pi/2) sigma^2 / n apiece; n = the instance
    # count of the median round (instances are added as a run goes on).
    n = float(np.median(np.sum(~np.isnan(cells[:, 0, :]), axis=1)))
    tau = placement_spread(cells) * math.sqrt(math.pi / 2 * 2 / n)
    stats = stats + rng.normal(0.0, tau, resamples)
    alpha = 1 - confidence
    low, high = np.exp(np.quantile(stats, [alpha / 2, 1 - alpha / 2]))
    return float(np.exp(np.median(ratios))), float(low), float(high)


# --- metrics: paired change of a per-example statistic -----------------------------------

@dataclass(frozen=True)
class MetricChange:
    change: float        # the judged change (positive = worse): a drop, or an increase (relative or absolute)
    ci_low: float | None
    ci_high: float | None
    before: float
    after: float
    examples: int | None
    paired: bool


def metric_change(before: float, after: float, *, higher_is_better: bool, relative: bool,
                  before_examples: np.ndarray | None = None, after_examples: np.ndarray | None = None,
                  root: bool = False, confidence: float = 0.95, resamples: int = 2000,
                  seed: int = 0) -> MetricChange:
    """How much worse `after` is than `before`: a drop (higher is better: before - after)
    or an increase (after - before), divided by `before` when `relative`. With per-example
    values of both on the same examples, a paired bootstrap interval of that change:
    examples are resampled with replacement, both models' values of an example staying
    together (`root`: the statistic is sqrt(mean), as rmse of squared errors).

    The statistic of a resample is the mean of its per-example values (accuracy from 0/1
    correctness, mae from absolute errors, ...); the point estimate is the change itself."""
    def change(b, a):
        d = (b - a) if higher_is_better else (a - b)
        if not relative:
            return d
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(b != 0, d / np.abs(np.where(b != 0, b, 1)), np.where(d > 0, np.inf, 0.0))

    point = float(change(np.float64(before), np.float64(after)))
    paired = (before_examples is not None and after_examples is not None
              and np.shape(before_examples) == np.shape(after_examples) and np.size(before_examples) > 0)
    if not paired:
        return MetricChange(point, None, None, before, after, None, False)
    b_ex = np.asarray(before_examples, np.float64)
    a_ex = np.asarray(after_examples, np.float64)
    n = b_ex.size
    rng = np.random.default_rng(seed)
    stats = []
    for lo in range(0, resamples, 200):
        idx = rng.integers(0, n, (min(200, resamples - lo), n))
        bs, as_ = b_ex[idx].mean(axis=1), a_ex[idx].mean(axis=1)
        if root:
            bs, as_ = np.sqrt(bs), np.sqrt(as_)
        stats.append(change(bs, as_))
    alpha = 1 - confidence
    low, high = np.quantile(np.concatenate(stats), [alpha / 2, 1 - alpha / 2])
    return MetricChange(point, float(low), float(high), before, after, n, True)
