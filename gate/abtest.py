"""Latency A/B test you can gate on: is the candidate at most `max_ratio` times slower?

Design (`compare_latency`)
--------------------------
Baseline and candidate `.tflite` bytes are timed in one process, interleaved:

- ``instances`` interpreters per model (default 5), created alternately. Where an
  instance's buffers land in memory shifts its speed by a few percent (up to 7 % here),
  a fixed effect that more runs of the same instance never remove.
- Every instance gets ``warmup`` untimed invokes, same threads for all.
- A *round* visits every instance of both models once, in a fresh random order (seeded
  ``numpy`` generator), and times ``invokes_per_round`` back-to-back invokes of it with
  ``timer``. A cell = the median of those invokes; a model's round figure = the median
  of its instances' cells. The first invoke after another model ran is slower (cold
  caches: 12.0 vs 10.2 µs on the digits CNN, 2.10 vs 1.80 ms on MobileNetV2-0.35); the
  median of >= 3 keeps it out without a separate re-warm.
- The estimate is the median over rounds of the per-round ratio candidate/baseline, with
  a two-level bootstrap CI (`gate.stats.ratio_ci`: instances and rounds resampled).
  Pairing within a round is the point: on this 2-core machine shared with other jobs,
  MobileNet round figures ranged 1.7-8.6 ms (CV 47 %); over blocks of 20 rounds of an
  A/A run, the ratio of the two models' overall medians spread 0.887-1.044, the median
  of per-round ratios 0.967-1.016. The reported p50s are the medians of the round figures.
- Decision for ``max_ratio``: pass if the CI's upper bound is under it, fail if its lower
  bound is over it, otherwise inconclusive - then more rounds are run (doubling the
  count, capped by what fits in ``time_budget_s``) and the CI is recomputed, until it
  decides or the budget is spent. ``inconclusive`` says what a final inconclusive
  counts as (``passed``). Each look uses the same ``confidence``; looks are spaced
  geometrically so there are few of them, but a candidate whose true ratio sits right at
  the limit is misjudged somewhat more often than 1 - confidence suggests.

Timing API: evidence
--------------------
`ai_edge_litert.interpreter.Interpreter.invoke()` (XNNPACK, like the CompiledModel CPU
path). Measured here (ai-edge-litert 2.3.0, 1 thread, median per call, 10 calls back to
back / one call between other models):

===================================  ===============  ===============  ===========
call                                 1-op model       digits CNN       MobileNetV2
===================================  ===============  ===============  ===========
Interpreter.invoke()                 0.53 / 0.83 µs   10.2 / 11.8 µs   1.86 ms
Interpreter._interpreter.Invoke()    0.33 / 0.50 µs   10.0 / 11.1 µs   1.84 ms
CompiledModel.run_by_index()         2.04 / 2.26 µs   12.0 / 13.4 µs   1.87 ms
CompiledModel._model.RunByIndex()    1.47 / 1.63 µs   11.1 / 11.4 µs   1.76 ms
===================================  ===============  ===============  ===========

The CompiledModel path costs 1.5 µs more per call than `invoke()` (buffer capsules,
locking): 15 % of the digits CNN, fixed overhead that pulls every ratio towards 1. On
MobileNet both measure the same kernels. LiteRT's `benchmark_litert_model` tool runs the
CompiledModel API in its own process (no interleaving) with random inputs, and writes
its figures rounded to 0.01 ms: the digits CNN reads 0.01 ms (one digit), MobileNet
1.69-1.82 ms over three runs of 50. The private raw `Invoke` saves 0.2 µs more but is
not public API. Timing is `time.perf_counter_ns` around each invoke (0.05-0.2 µs).

Everything that touches LiteRT is behind ``make_invoke``; tests pass a fake one with a
fake ``timer``.
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from typing import Callable, Literal

import numpy as np

from gate.stats import ratio_ci

Outcome = Literal["pass", "fail", "inconclusive"]
Invoke = Callable[[], object]
InvokeFactory = Callable[[str, bytes, np.ndarray, int], Invoke]
MODELS = ("baseline", "candidate")
BURST_NS = 1_000_000  # automatic invokes_per_round: at least this long per instance visit


@dataclass(frozen=True)
class LatencyVerdict:
    outcome: str            # "pass" | "fail" | "inconclusive" (the statistics)
    passed: bool            # the decision; an inconclusive outcome counts as the caller said
    ratio: float            # median per-round candidate/baseline latency
    ci_low: float
    ci_high: float
    max_ratio: float
    confidence: float
    rounds: int
    looks: int              # how many times the CI was computed
    seconds: float          # benchmarking wall time: instances, warmup, rounds, statistics
    baseline_p50_ms: float
    candidate_p50_ms: float
    settings: dict
    round_ms: tuple[tuple[float, float], ...] = field(default=(), repr=False)  # (baseline, candidate)

    def message(self) -> str:
        pct = f"{100 * self.confidence:g} %"
        where = {"pass": f"under max_ratio {self.max_ratio:.3f}",
                 "fail": f"over max_ratio {self.max_ratio:.3f}",
                 "inconclusive": f"straddles max_ratio {self.max_ratio:.3f}"}[self.outcome]
        text = (f"candidate/baseline latency {self.ratio:.3f} ({pct} CI {self.ci_low:.3f}-{self.ci_high:.3f}; "
                f"p50 {self.candidate_p50_ms:.4g} vs {self.baseline_p50_ms:.4g} ms) over {self.rounds} rounds "
                f"in {self.seconds:.1f} s: the interval is {where}")
        if self.outcome == "inconclusive":
            text += f" after the time budget; counted as {'pass' if self.passed else 'fail'}"
        return text

    def to_dict(self, *, with_rounds: bool = False) -> dict:
        out = asdict(self)
        out["round_ms"] = [list(r) for r in self.round_ms] if with_rounds else None
        out["message"] = self.message()
        if not with_rounds:
            out.pop("round_ms")
        return out


def litert_invoke(name: str, content: bytes, example: np.ndarray, threads: int) -> Invoke:
    """One LiteRT interpreter with `example` set as its input; returns its invoke()."""
    from gate.litert import make_interpreter, quantize_input

    interp = make_interpreter(content, threads=threads, where=f"{name} model")
    detail = interp.get_input_details()[0]
    shape = tuple(int(d) for d in detail["shape"])
    batch = example.reshape(shape) if example.size == math.prod(shape) else example[:1]
    interp.set_tensor(detail["index"], quantize_input(batch, detail))
    return interp.invoke


def decide(ci_low: float, ci_high: float, max_ratio: float) -> Outcome:
    if ci_high < max_ratio:
        return "pass"
    if ci_low > max_ratio:
        return "fail"
    return "inconclusive"


class _Rounds:
    """The instances of both models and the timed rounds run on them."""

    def __init__(self, invokes: list[list[Invoke]], per_round: int, rng: np.random.Generator, timer):
        self.slots = [(m, i, f) for m, fs in enumerate(invokes) for i, f in enumerate(fs)]
        self.instances = len(invokes[0])
        self.per_round, self.rng, self.timer = per_round, rng, timer
        self.cells: list[np.ndarray] = []   # [2, instances] ns per round
        self.ns = 0                         # time spent in rounds

    def run(self, count: int) -> None:
        timer, k = self.timer, self.per_round
        start = timer()
        for _ in range(count):
            cell = np.empty((2, self.instances))
            times = [0] * k
            for j in self.rng.permutation(len(self.slots)):
                m, i, invoke = self.slots[j]
                for n in range(k):
                    t0 = timer()
                    invoke()
                    times[n] = timer() - t0
                cell[m, i] = float(np.median(times))
            self.cells.append(cell)
        self.ns += timer() - start


def _warm(invokes: list[list[Invoke]], warmup: int, timer) -> int:
    """Untimed-for-the-result warmup, interleaved; returns the median ns of the last invokes."""
    last = []
    for n in range(warmup):
        for fs in invokes:
            for f in fs:
                t0 = timer()
                f()
                if n >= warmup // 2:
                    last.append(timer() - t0)
    return int(np.median(last)) if last else 0


def compare_latency(baseline: bytes, candidate: bytes, example: np.ndarray, *, max_ratio: float,
                    threads: int = 1, instances: int = 5, warmup: int = 10, rounds: int = 20,
                    invokes_per_round: int | None = None, confidence: float = 0.95,
                    time_budget_s: float = 30.0, inconclusive: Literal["pass", "fail"] = "fail",
                    seed: int = 0, resamples: int = 2000, timer: Callable[[], int] = time.perf_counter_ns,
                    make_invoke: InvokeFactory = litert_invoke) -> LatencyVerdict:
    """Time `baseline` and `candidate` interleaved and judge candidate/baseline <= max_ratio.

    `example` is one real input. `invokes_per_round=None` picks max(3, ~1 ms worth) from
    the warmup. `timer` returns nanoseconds; it also measures the time budget.
    """
    if instances < 1 or rounds < 2 or max_ratio <= 0 or not 0 < confidence < 1:
        raise ValueError("need instances >= 1, rounds >= 2, max_ratio > 0 and 0 < confidence < 1")
    if inconclusive not in ("pass", "fail"):
        raise ValueError(f"inconclusive must be 'pass' or 'fail', got {inconclusive!r}")
    example = np.asarray(example)
    start = timer()
    invokes: list[list[Invoke]] = [[], []]
    for _ in range(instances):  # alternate, so neither model gets all the early addresses
        for m, content in enumerate((baseline, candidate)):
            invokes[m].append(make_invoke(MODELS[m], content, example, threads))
    typical = _warm(invokes, max(warmup, 2), timer)
    per_round = invokes_per_round or max(3, min(1000, -(-BURST_NS // max(typical, 1))))
    timed = _Rounds(invokes, per_round, np.random.default_rng(seed), timer)
    budget_ns = time_budget_s * 1e9
    target, looks = rounds, 0
    while True:
        timed.run(target - len(timed.cells))
        cells = np.array(timed.cells)
        ratio, low, high = ratio_ci(cells, confidence=confidence, resamples=resamples, seed=seed + looks)
        looks += 1
        outcome = decide(low, high, max_ratio)
        if outcome != "inconclusive":
            break
        per = timed.ns / len(timed.cells)
        extra = min(len(timed.cells), int((budget_ns - (timer() - start)) / max(per, 1)))
        if extra < 1:
            break
        target = len(timed.cells) + extra
    figures = np.median(cells, axis=2) / 1e6
    seconds = (timer() - start) / 1e9
    settings = {"threads": threads, "instances": instances, "warmup": warmup, "rounds_first_look": rounds,
                "invokes_per_round": per_round, "confidence": confidence, "time_budget_s": time_budget_s,
                "inconclusive_counts_as": inconclusive, "seed": seed, "resamples": resamples,
                "method": "instances interleaved in random order per round; ratio = median of per-round "
                          "candidate/baseline medians; CI = bootstrap over instances and rounds",
                "interpreter": _interpreter_name(make_invoke)}
    return LatencyVerdict(outcome, outcome == "pass" or (outcome == "inconclusive" and inconclusive == "pass"),
                          ratio, low, high, max_ratio, confidence, len(cells), looks, seconds,
                          float(np.median(figures[:, 0])), float(np.median(figures[:, 1])), settings,
                          tuple((float(b), float(c)) for b, c in figures))


def _interpreter_name(make_invoke: InvokeFactory) -> str:
    if make_invoke is not litert_invoke:
        return getattr(make_invoke, "__qualname__", type(make_invoke).__name__)
    from gate.litert import litert_version

    return f"ai_edge_litert.interpreter.Interpreter {litert_version()}"
