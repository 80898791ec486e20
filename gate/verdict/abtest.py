"""Latency A/B test you can gate on: is the candidate at most `max_ratio` times slower?

Design (`compare_latency`)
--------------------------
Baseline and candidate `.tflite` bytes are timed in one process, interleaved:

- ``instances`` interpreters per model (default 5), created in pairs (which model first
  is drawn per pair). Where an instance's buffers land in memory shifts its speed by a
  few percent (here mostly within 1 %, up to 6-7 % for an odd one), a fixed effect that
  more runs of the same instance never remove.
- Every instance gets ``warmup`` untimed invokes, same threads for all.
- A *round* visits every instance of both models once, in a fresh random order (seeded
  ``numpy`` generator), and times ``invokes_per_round`` back-to-back invokes of it with
  ``timer``. A cell = the fastest of those invokes; a model's round figure = the median
  of its instances' cells. Another process can only ever add time to an invoke: on
  saved timings of MobileNetV2-0.35 A/A runs, the SD of 20-round ratios was 0.026 with
  median-of-3 cells and 0.012 with fastest-of-3 under heavy load (0.0066 vs 0.0049
  quiet), while the ratios of real variants moved by under 0.5 %. The first invoke after
  another model ran is slower (cold caches: 12.0 vs 10.2 µs on the digits CNN, 2.10 vs
  1.80 ms on MobileNet) and so never the fastest of >= 3 — on small models. A model whose
  weights the other instances evict needs more: a float EfficientNetB0 was warm again
  only at the sixth invoke of a visit (2.5 -> 1.0 ms), so fastest-of-3 cells put its
  float/int8 ratio at 0.30 instead of 0.47. Each visit therefore starts with
  ``settle_invokes`` untimed invokes, measured once per run (`gate.measure.timing`, the
  same rule `gate.measure.bench` uses), so the table's ratio and this one agree. The flip side: a model whose
  own invokes jitter (thread wake-ups with threads > 1) is judged by its good runs;
  `gate.measure.bench`'s p50/p99 stay the place for tails.
- The estimate is the median over rounds of the per-round ratio candidate/baseline. Its
  CI (`gate.verdict.stats.ratio_ci`) is a paired bootstrap over rounds plus a term for the
  instances' placement, estimated from their spread.
  Pairing within a round is the point: on this 2-core machine shared with other jobs,
  MobileNet round figures ranged 1.7-8.6 ms (CV 47 %); over blocks of 20 rounds of an
  A/A run, the ratio of the two models' overall medians spread 0.887-1.044, the median
  of per-round ratios 0.967-1.016. The reported p50s are the medians of the round figures.
- Decision for ``max_ratio``: pass if the CI's upper bound is under it, fail if its lower
  bound is over it, otherwise inconclusive - then ``instances`` more instances per model
  are added (up to ``max_instances``: placement error only shrinks with more
  placements), the rounds are doubled (capped by what fits in ``time_budget_s``) and
  the CI is recomputed, until it decides or the budget is spent. ``inconclusive`` says
  what a final inconclusive counts as (``passed``). Each look uses the same
  ``confidence``; looks are spaced geometrically so there are few of them, but a
  candidate whose true ratio sits right at the limit is misjudged somewhat more often
  than 1 - confidence suggests.

Results (benchmarks/latency_noise.py, README section "latency_noise.py")
-----------------------------------------------------------------------
At max_ratio 1.025 on the digits CNN and MobileNetV2-0.35, quiet and with two
memory-streaming neighbours on this 2-core VM: real ~5 % and ~10 % slower variants
failed 20/20 each, A/A never failed (1 of 20 inconclusive on loaded MobileNet), A/A
ratios 0.980-1.012, verdicts 0.2-4 s quiet and up to 28.7 s loaded (budget 30 s). The
seed's median-of-50 and LiteRT's tool gave A/A ratios of 0.26-3.6 on loaded MobileNet.

Timing API: evidence
--------------------
`ai_edge_litert.interpreter.Interpreter.invoke()` (XNNPACK, like the CompiledModel CPU
path). Measured here (ai-edge-litert 2.3.0, 1 thread, median per call, 10 calls back to
back / one call between other models):

===================================  ===============  ===============  ===========
call                                 1-op model       digits CNN       MobileNetV2
===================================  ===============  ===============  ===========
Interpreter.invoke()                 0.53 / 0.83 µs   10.2 / 11.8 µs   - / 1.86 ms
Interpreter._interpreter.Invoke()    0.33 / 0.50 µs   10.0 / 11.1 µs   - / 1.84 ms
CompiledModel.run_by_index()         2.04 / 2.26 µs   12.0 / 13.4 µs   - / 1.87 ms
CompiledModel._model.RunByIndex()    1.47 / 1.63 µs   11.1 / 11.4 µs   - / 1.76 ms
===================================  ===============  ===============  ===========

(The 1-op model is a single FULLY_CONNECTED 1->1: its time is the call overhead.) The
CompiledModel path costs 1.5 µs more per call than `invoke()` (0.6 µs in its Python
wrapper, 1.1 µs in the native run): 15 % of the digits CNN, a fixed overhead that pulls
every ratio towards 1. On MobileNet all four are within the noise (1.76-1.87 ms): the
same XNNPACK kernels. LiteRT's `benchmark_litert_model` tool runs the
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
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Callable, Literal

import numpy as np

from gate.measure.timing import settle_invokes
from gate.verdict.stats import placement_spread, ratio_ci

LatencyOutcome = Literal["pass", "fail", "inconclusive"]
Invoke = Callable[[], object]
InvokeFactory = Callable[[str, bytes, np.ndarray, int], Invoke]
MODELS = ("baseline", "candidate")
BURST_NS = 1_000_000  # automatic invokes_per_round: at least this long per instance visit
MIN_ROUNDS = 5        # fewer rounds inside the time budget: not judged (no interval worth the name)
BUDGET_SHARE = 0.95   # of time_budget_s for setup and rounds; the rest for the statistics


@dataclass(frozen=True)
class LatencyVerdict:
    outcome: str            # "pass" | "fail" | "inconclusive" (the statistics) | "not_judged" (the time
                            # budget ran out before MIN_ROUNDS rounds: no figures, never a pass)
    passed: bool            # the decision; an inconclusive outcome counts as the caller said
    ratio: float            # median per-round candidate/baseline latency
    ci_low: float
    ci_high: float
    max_ratio: float
    confidence: float
    rounds: int
    looks: int              # how many times the CI was computed
    seconds: float          # benchmarking wall time: instances, warmup, rounds, statistics
    baseline_p50_ms: float  # median over rounds of the round figures (median over instances of
    candidate_p50_ms: float  # each instance's fastest of invokes_per_round)
    placement_sd: float     # spread of the instances' fixed offsets (log scale, ~ fraction)
    settings: dict
    round_ms: tuple[tuple[float, float], ...] = field(default=(), repr=False)  # (baseline, candidate)

    def message(self) -> str:
        if self.outcome == "not_judged":
            return (f"cut short by latency.time_budget_s {self.settings.get('time_budget_s'):g} s after "
                    f"{self.seconds:.1f} s: {self.rounds} of the {MIN_ROUNDS} rounds needed were timed "
                    f"({self.settings.get('instances_used')} instance(s) per model); raise time_budget_s to judge it")
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
        rounds = out.pop("round_ms")
        if with_rounds:
            out["round_ms"] = [list(r) for r in rounds]
        out["message"] = self.message()
        return out


def litert_invoke(name: str, content: bytes, example: Mapping[str, np.ndarray] | np.ndarray, threads: int) -> Invoke:
    """One LiteRT interpreter with `example` set as its input; returns its invoke()."""
    from gate.measure.litert import interpreter_with_input

    return interpreter_with_input(content, example, threads=threads, where=f"{name} model").invoke


def decide(ci_low: float, ci_high: float, max_ratio: float) -> LatencyOutcome:
    if ci_high < max_ratio:
        return "pass"
    if ci_low > max_ratio:
        return "fail"
    return "inconclusive"


class _Bench:
    """The interpreter instances of both models and the timed rounds run over them."""

    def __init__(self, contents: tuple[bytes, bytes], example: np.ndarray, threads: int, warmup: int,
                 make_invoke: InvokeFactory, rng: np.random.Generator, timer: Callable[[], int]):
        self.contents, self.example, self.threads, self.warmup = contents, example, threads, warmup
        self.make_invoke, self.rng, self.timer = make_invoke, rng, timer
        self.invokes: list[list[Invoke]] = [[], []]
        self.rows: list[np.ndarray] = []    # per round: [2, instances then] fastest ns per instance
        self.per_round = 3
        self.settle = 0                     # untimed invokes at the start of every visit (warm again)
        self.typical_ns = 0                 # median warmup invoke
        self.setup_ns = self.round_ns = self.visits = 0

    def add_instances(self, count: int, deadline_ns: float = math.inf) -> None:
        """`count` more instances per model, created in pairs (order drawn per pair) and warmed;
        past `deadline_ns` no further pair is made (the first always is) and warming stops."""
        start = self.timer()
        new: list[Invoke] = []
        for n in range(count):
            if (n or self.invokes[0]) and self.timer() > deadline_ns:
                break
            for m in self.rng.permutation(2):
                invoke = self.make_invoke(MODELS[m], self.contents[m], self.example, self.threads)
                self.invokes[m].append(invoke)
                new.append(invoke)
        last = []
        for n in range(self.warmup):
            if self.timer() > deadline_ns:
                break
            for invoke in new:
                t0 = self.timer()
                invoke()
                if n >= self.warmup // 2:
                    last.append(self.timer() - t0)
        self.typical_ns = int(np.median(last)) if last else self.typical_ns
        self.setup_ns += self.timer() - start

    def time_rounds(self, rounds: int, deadline_ns: float = math.inf) -> None:
        """`rounds` more rounds, stopping once the timer passes `deadline_ns` (a round cut
        there is dropped: every round visits every instance)."""
        timer, k = self.timer, self.per_round
        slots = [(m, i, f) for m, fs in enumerate(self.invokes) for i, f in enumerate(fs)]
        times = [0] * k
        start, before = timer(), len(self.rows)
        for _ in range(rounds):
            if timer() > deadline_ns:
                break
            row = np.empty((2, len(self.invokes[0])))
            complete = True
            for j in self.rng.permutation(len(slots)):
                if timer() > deadline_ns:
                    complete = False
                    break
                m, i, invoke = slots[j]
                for _ in range(self.settle):
                    invoke()
                for n in range(k):
                    t0 = timer()
                    invoke()
                    times[n] = timer() - t0
                row[m, i] = float(min(times))
            if not complete:
                break
            self.rows.append(row)
        self.round_ns += timer() - start
        self.visits += (len(self.rows) - before) * len(slots)

    def cells(self) -> np.ndarray:
        """[rounds, 2, instances] ns; NaN where an instance did not exist yet."""
        out = np.full((len(self.rows), 2, len(self.invokes[0])), np.nan)
        for r, row in enumerate(self.rows):
            out[r, :, :row.shape[1]] = row
        return out


def compare_latency(baseline: bytes, candidate: bytes, example: Mapping[str, np.ndarray] | np.ndarray, *,
                    max_ratio: float,
                    threads: int = 1, instances: int = 5, max_instances: int = 15, warmup: int = 10,
                    rounds: int = 20, invokes_per_round: int | None = None, confidence: float = 0.95,
                    time_budget_s: float = 30.0, inconclusive: Literal["pass", "fail"] = "fail",
                    seed: int = 0, resamples: int = 2000, timer: Callable[[], int] = time.perf_counter_ns,
                    make_invoke: InvokeFactory = litert_invoke) -> LatencyVerdict:
    """Time `baseline` and `candidate` interleaved and judge candidate/baseline <= max_ratio.

    `example` is one real input (an array, or one array per input name). `invokes_per_round=None` picks max(3, ~1 ms worth) from
    the warmup. While inconclusive, each further look adds `instances` more instances per
    model (up to `max_instances`; each holds its own packed weights and arena) and doubles
    the rounds, within `time_budget_s`. The budget bounds everything: making and warming
    the instances, the warm-up probe and every round stop at the deadline; with fewer than
    MIN_ROUNDS rounds by then the verdict is `not_judged` (no ratio, never a pass). `timer`
    returns nanoseconds and also measures the budget.
    """
    if not (1 <= instances <= max_instances) or rounds < 2 or max_ratio <= 0 or not 0 < confidence < 1:
        raise ValueError("need 1 <= instances <= max_instances, rounds >= 2, max_ratio > 0, 0 < confidence < 1")
    if inconclusive not in ("pass", "fail"):
        raise ValueError(f"inconclusive must be 'pass' or 'fail', got {inconclusive!r}")
    start = timer()
    budget_end = start + BUDGET_SHARE * time_budget_s * 1e9
    example = dict(example) if isinstance(example, Mapping) else np.asarray(example)
    bench = _Bench((baseline, candidate), example, threads, max(warmup, 2), make_invoke,
                   np.random.default_rng(seed), timer)
    bench.add_instances(instances, budget_end)
    bench.per_round = invokes_per_round or max(3, min(1000, -(-BURST_NS // max(bench.typical_ns, 1))))
    probe_start = timer()
    bench.settle = settle_invokes(bench.invokes, timer, deadline_ns=budget_end)
    bench.setup_ns += timer() - probe_start
    bench.time_rounds(rounds, budget_end)
    settings = {"threads": threads, "instances": instances, "max_instances": max_instances, "warmup": warmup,
                "rounds_first_look": rounds, "invokes_per_round": bench.per_round, "settle_invokes": bench.settle,
                "confidence": confidence, "time_budget_s": time_budget_s,
                "inconclusive_counts_as": inconclusive, "seed": seed, "resamples": resamples,
                "method": "instances interleaved in random order per round; a visit runs settle_invokes untimed "
                          "invokes (warm again after the other instances), then cell = fastest of the instance's "
                          "timed invokes; round figure = median over instances; ratio = median of per-round "
                          "candidate/baseline; CI = bootstrap over rounds + instance placement term",
                "interpreter": _interpreter_name(make_invoke)}
    if len(bench.rows) < MIN_ROUNDS:
        nan = float("nan")
        return LatencyVerdict("not_judged", False, nan, nan, nan, max_ratio, confidence, len(bench.rows), 0,
                              (timer() - start) / 1e9, nan, nan, nan,
                              {**settings, "instances_used": len(bench.invokes[0])})
    looks = 0
    while True:
        cells = bench.cells()
        t0 = timer()
        ratio, low, high = ratio_ci(cells, confidence=confidence, resamples=resamples, seed=seed + looks)
        stats_ns = timer() - t0
        looks += 1
        outcome = decide(low, high, max_ratio)
        # Keep 5 % and the next look's statistics (about twice this one's) inside the budget.
        deadline = budget_end - 2 * stats_ns
        left = deadline - timer()
        if outcome != "inconclusive" or left <= 0:
            break
        have = len(bench.invokes[0])
        grow = min(instances, max_instances - have)
        if grow and bench.setup_ns / have * grow < left / 2:
            before = timer()
            bench.add_instances(grow, deadline)
            left -= timer() - before
        visit_ns = bench.round_ns / max(bench.visits, 1)
        extra = min(len(bench.rows), int(left / max(visit_ns * 2 * len(bench.invokes[0]), 1)))
        if extra < 1:
            break
        bench.time_rounds(extra, deadline)
        if len(bench.rows) == len(cells):   # the deadline came first: no new data to look at
            break
    figures = np.nanmedian(cells, axis=2) / 1e6
    seconds = (timer() - start) / 1e9
    settings = {**settings, "instances_used": int(cells.shape[2])}
    return LatencyVerdict(outcome, outcome == "pass" or (outcome == "inconclusive" and inconclusive == "pass"),
                          ratio, low, high, max_ratio, confidence, len(cells), looks, seconds,
                          float(np.median(figures[:, 0])), float(np.median(figures[:, 1])),
                          placement_spread(cells), settings,
                          tuple((float(b), float(c)) for b, c in figures))


def _interpreter_name(make_invoke: InvokeFactory) -> str:
    if make_invoke is not litert_invoke:
        return getattr(make_invoke, "__qualname__", type(make_invoke).__name__)
    from gate.measure.litert import litert_version

    return f"ai_edge_litert.interpreter.Interpreter {litert_version()}"


def compare_sampled(sampler, *, max_ratio: float, rounds: int, confidence: float = 0.95,
                    time_budget_s: float = 30.0, inconclusive: Literal["pass", "fail"] = "fail", seed: int = 0,
                    resamples: int = 2000, timer: Callable[[], int] = time.perf_counter_ns) -> LatencyVerdict:
    """The same judgement as `compare_latency` on rounds timed elsewhere (a device): the
    `sampler` (gate.measure.targets.Sampler) returns cells[round, model, instance] in ns,
    interleaved on the target. First look: `rounds` rounds; while inconclusive, the rounds
    are doubled within `time_budget_s` (a round's cost is measured on the first look), the
    CI recomputed with the same `ratio_ci` and `decide`."""
    if rounds < 2 or max_ratio <= 0 or not 0 < confidence < 1:
        raise ValueError("need rounds >= 2, max_ratio > 0, 0 < confidence < 1")
    start = timer()
    cells = np.asarray(sampler.rounds(rounds), dtype=np.float64)
    round_ns = (timer() - start) / max(len(cells), 1)
    looks = 0
    while True:
        ratio, low, high = ratio_ci(cells, confidence=confidence, resamples=resamples, seed=seed + looks)
        looks += 1
        outcome = decide(low, high, max_ratio)
        left = start + 0.95 * time_budget_s * 1e9 - timer()
        extra = min(len(cells), int(left / max(round_ns, 1)))
        if outcome != "inconclusive" or extra < 1:
            break
        cells = np.concatenate([cells, np.asarray(sampler.rounds(extra), dtype=np.float64)])
    figures = np.nanmedian(cells, axis=2) / 1e6
    settings = {**sampler.settings, "rounds": int(len(cells)), "confidence": confidence,
                "time_budget_s": time_budget_s, "inconclusive_counts_as": inconclusive, "seed": seed,
                "resamples": resamples}
    return LatencyVerdict(outcome, outcome == "pass" or (outcome == "inconclusive" and inconclusive == "pass"),
                          ratio, low, high, max_ratio, confidence, len(cells), looks, (timer() - start) / 1e9,
                          float(np.median(figures[:, 0])), float(np.median(figures[:, 1])),
                          placement_spread(cells), settings, tuple((float(b), float(c)) for b, c in figures))


def target_comparer(target, *, rounds: int, runs: int):
    """A `compare_latency`-shaped function that times on `target` (gate.measure.targets):
    local targets time in this process, others through their sampler (`rounds` in the first
    look, `runs` timed runs per model visit where the target's tool takes a count)."""
    def compare(baseline: bytes, candidate: bytes, example, *, max_ratio: float, threads: int = 1, warmup: int = 10,
                confidence: float = 0.95, time_budget_s: float = 30.0,
                inconclusive: Literal["pass", "fail"] = "fail", **_local) -> LatencyVerdict:
        sampler = target.sampler(baseline, candidate, example, threads=threads, warmup=warmup, runs=runs)
        if sampler is None:
            return compare_latency(baseline, candidate, example, max_ratio=max_ratio, threads=threads, warmup=warmup,
                                   confidence=confidence, time_budget_s=time_budget_s, inconclusive=inconclusive)
        return compare_sampled(sampler, max_ratio=max_ratio, rounds=rounds, confidence=confidence,
                               time_budget_s=time_budget_s, inconclusive=inconclusive)
    compare.where = target.where
    return compare
