"""`gate tune`: search policies, cheapest first, for the smallest (or fastest) one that
passes every threshold of gate.yml. Parent side, no TensorFlow: each trial is a `gate
check` (gate.tune.trial), the per-layer sensitivity a worker task (gate.run.worker.sensitivity).

The order and the early stops (docs/tune.md):
- families in order: post-training, selective fallback, QAT, then pruning, clustering and
  structured pruning, each strongest first with a per-layer table from the sensitivity;
- a candidate whose optimistic size cannot beat the best passing size is skipped (size
  objective); a family stops at its first pass (its weaker settings are larger);
- a family's trial failing accuracy by far (FAR) jumps to the family's weakest setting;
- compression families build on the cheapest quantization that passed accuracy; when none
  did, they are skipped (a cheaper family already fails accuracy);
- before each trial: the time left against its estimated cost (measured from earlier
  trials: a post-training trial's seconds plus seconds per fine-tuning epoch).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Literal

import gate.tune.space as space
from gate.tune.space import Candidate
from gate.tune.trial import RunTrial, Trial

Objective = Literal["size", "latency"]
FAR = 10.0             # a failure "by far": an accuracy drop of FAR x the limit (and at least FAR_MIN)
FAR_MIN = 0.10
EPOCH_PRIOR = 0.5      # before any fine-tuning trial: an epoch costs this many post-training trials (measured 0.3-1.3)


@dataclass
class Skip:
    name: str
    family: str
    reason: str

    def to_dict(self) -> dict:
        return {"name": self.name, "family": self.family, "reason": self.reason}


@dataclass
class Search:
    """The state of one search; `run` fills it."""

    objective: Objective
    budget_s: float
    run_trial: RunTrial
    measure_sensitivity: Callable[[], dict] | None = None    # None: no per-layer tables
    is_tflite: bool = False
    has_keep_float: bool = False
    max_drop: float | None = None          # thresholds.accuracy.max_drop, for "by far"
    progress: Callable[[str], None] = lambda _line: None
    clock: Callable[[], float] = time.monotonic
    trials: list[Trial] = field(default_factory=list)
    skipped: list[Skip] = field(default_factory=list)
    sensitivity: dict | None = None
    start: float = 0.0
    ptq_seconds: list[float] = field(default_factory=list)
    epoch_seconds: list[float] = field(default_factory=list)

    # ------------------------------------------------------------------ bookkeeping
    def elapsed(self) -> float:
        return self.clock() - self.start

    def by_name(self, name: str | None) -> Trial | None:
        return next((t for t in self.trials if t.name == name), None)

    def best(self) -> Trial | None:
        passing = [t for t in self.trials if t.passed]
        if not passing:
            return None
        return min(passing, key=self.key)

    def key(self, t: Trial) -> tuple:
        size = t.bytes_gzip if t.bytes_gzip is not None else float("inf")
        lat = t.latency_ms if t.latency_ms is not None else float("inf")
        return (size, lat) if self.objective == "size" else (lat, size)

    def estimate(self, c: Candidate) -> float:
        base = sum(self.ptq_seconds) / len(self.ptq_seconds) if self.ptq_seconds else 0.0
        per_epoch = (sum(self.epoch_seconds) / len(self.epoch_seconds) if self.epoch_seconds
                     else EPOCH_PRIOR * base)
        return base + c.epochs * per_epoch

    def far(self, t: Trial) -> bool:
        if t.accuracy_drop is None or self.max_drop is None or not t.accuracy_failed:
            return False
        return t.accuracy_drop >= max(FAR * self.max_drop, FAR_MIN)

    def skip(self, c: Candidate, reason: str) -> None:
        self.skipped.append(Skip(c.name, c.family, reason))
        self.progress(f"  skip  {c.name:<22} {reason}")

    # ------------------------------------------------------------------ one candidate
    def cannot_win(self, c: Candidate) -> str | None:
        """Why `c` cannot beat the best passing trial on size (None: it might)."""
        best = self.best()
        if best is None or self.objective != "size" or best.bytes_gzip is None:
            return None
        route = self.by_name(c.route) if c.route else None
        basis = route.bytes_gzip if route is not None else best.reference_gzip
        if basis is None:
            return None
        optimistic = basis * c.size_factor
        if optimistic >= best.bytes_gzip:
            return (f"cannot beat {best.name} ({best.bytes_gzip:,} B gzip): at best ~{optimistic:,.0f} B "
                    f"({c.size_factor:.2f} x {c.route or 'the float reference'})")
        return None

    def try_one(self, c: Candidate, *, force: bool = False) -> Trial | None:
        """`force`: run it even when it cannot win on size (a route later families build on)."""
        reason = None if force else self.cannot_win(c)
        if reason:
            self.skip(c, reason)
            return None
        left = self.budget_s - self.elapsed()
        cost = self.estimate(c)
        if self.trials and cost > left:
            self.skip(c, f"estimated {cost / 60:.1f} min, {max(left, 0) / 60:.1f} min of the budget left")
            return None
        t = self.run_trial(len(self.trials) + 1, c.name, c.family, c.policy)
        self.trials.append(t)
        cost = t.seconds if not t.cached else t.cost_seconds      # a cache hit: what it cost when measured
        if cost is not None:
            if c.epochs == 0:
                self.ptq_seconds.append(cost)
            elif self.ptq_seconds:
                self.epoch_seconds.append(max(cost - self.estimate(Candidate("", "", {})), 0.0) / c.epochs)
        self.progress(line(t, self))
        return t

    # ------------------------------------------------------------------ the order
    def run(self) -> Trial | None:
        if not self.start:          # set by the caller when it ran the configured policy first
            self.start = self.clock()
        for c in space.ptq(self.is_tflite):
            self.try_one(c, force=self.route_needed(c.name))
        if self.is_tflite:
            return self.best()
        int8 = self.by_name("int8")
        failed = {t.name for t in self.trials if t.accuracy_failed}
        fallbacks = space.fallback(self.has_keep_float, failed)
        if self.has_keep_float and not fallbacks:
            self.skipped.append(Skip("keep_float", "fallback", "no post-training mode failed accuracy: nothing "
                                                               "to keep float"))
        done: dict[str, str] = {}          # base mode -> why its further fallbacks are skipped
        for c in fallbacks:
            if c.route in done:
                self.skip(c, done[c.route])
                continue
            t = self.try_one(c)
            if t is not None and t.passed:
                done[c.route] = f"a smaller keep_float of {c.route} passed"
            elif t is not None and t.kept_float == 0:
                done[c.route] = f"keep_float kept no op of {c.route} (nothing ranked): more would change nothing"
        qat_needed = int8 is None or int8.accuracy_failed
        for c in space.qat():
            if not qat_needed:
                self.skip(c, "int8 post-training already passes accuracy")
            else:                   # the int8 route of the compression families: run even if it cannot win
                self.try_one(c, force=True)
        passed_accuracy = {t.name for t in self.trials if not t.accuracy_failed and t.status != "error"}
        route = space.route_from(passed_accuracy)
        families = [("prune", space.prune, "prune", space.PRUNE_STRONGER),
                    ("cluster", space.cluster, "cluster", space.CLUSTER_STRONGER),
                    ("structured", space.structured, "structured_prune", space.STRUCTURED_STRONGER)]
        if route is None:
            for name, *_rest in families:
                self.skip(Candidate(name, name, {}), "no post-training or QAT route passed accuracy: a cheaper "
                                                     "family already fails, stronger compression cannot pass")
            return self.best()
        untabled = [c for _n, make, _k, _s in families for c in make(route, {})]
        cheapest = min(untabled, key=self.estimate)
        left = self.budget_s - self.elapsed()
        if self.estimate(cheapest) > left:     # no family trial would fit: no sensitivity either
            for c in untabled:
                self.skip(c, f"estimated {self.estimate(c) / 60:.1f} min, {max(left, 0) / 60:.1f} min of the "
                             "budget left")
            return self.best()
        self.progress(f"  compression families convert as {route.name}"
                      + (" after a preserving QAT" if route.preserve_qat else ""))
        for _name, make, kind, stronger in families:
            tables = self.tables(kind, make)

            def midpoint(passed: float, failed: float, make=make, kind=kind) -> Candidate | None:
                if kind == "cluster":          # counts: 8 / 16 / 32 are the measured ones
                    return None
                m = round((passed + failed) / 2, 3)
                return make(route, self.tables(kind, make, (m,)), (m,))[0]

            self.family(make(route, tables), make(route, tables, stronger), midpoint)
        return self.best()

    def route_needed(self, name: str) -> bool:
        """int8 is the route compression families build on; dynamic range when int8 failed
        accuracy, float16 when dynamic range did too: measured even when they cannot win."""
        if self.is_tflite:
            return False
        failed = {t.name for t in self.trials if t.accuracy_failed or t.status == "error"}
        chain = ["int8", "dynamic-range", "float16"]
        if name not in chain:
            return False
        return all(prev in failed for prev in chain[:chain.index(name)])

    def family(self, candidates: list[Candidate], stronger: list[Candidate] = (),
               midpoint: Callable[[float, float], Candidate | None] | None = None) -> None:
        """Strongest first, stop at the first pass; when the strongest passes, escalate
        through `stronger` while each passes. Then one step of bisection: the strength
        halfway between the weakest failure above the pass and the pass, unless that failure
        was by far."""
        i, above = 0, None                 # above: (candidate, trial) of the nearest failure stronger than a pass
        while i < len(candidates):
            c = candidates[i]
            t = self.try_one(c)
            if t is not None and t.passed:
                for w in candidates[i + 1:]:
                    self.skipped.append(Skip(w.name, w.family, f"weaker than {t.name}, which passed: larger"))
                if i == 0:
                    for up in stronger:
                        u = self.try_one(up)
                        if u is None:
                            break
                        if not u.passed:
                            above = (up, u)
                            break
                        c, t = up, u
                if above is not None and midpoint is not None and not self.far(above[1]):
                    m = midpoint(c.strength, above[0].strength)
                    if m is not None and self.by_name(m.name) is None:
                        if per_layer(m) and per_layer(m) in (per_layer(c), per_layer(above[0])):
                            same = c.name if per_layer(m) == per_layer(c) else above[0].name
                            self.skip(m, f"the same per-layer table as {same}")
                        else:
                            self.try_one(m)
                return
            if t is not None and not t.passed and not self.far(t):
                u = self.uniform(c)
                if u is not None:
                    ut = self.try_one(u)
                    if ut is not None and ut.passed:
                        for w in candidates[i + 1:]:
                            self.skipped.append(Skip(w.name, w.family, f"weaker than {ut.name}, which passed: larger"))
                        return
            if t is not None:
                above = (c, t)
            if t is not None and self.far(t) and i < len(candidates) - 2:
                for w in candidates[i + 1:-1]:
                    self.skip(w, f"{t.name} failed accuracy by far ({100 * t.accuracy_drop:.1f} pts): "
                                 "tried the weakest setting next")
                i = len(candidates) - 1
                continue
            i += 1

    def uniform(self, c: Candidate) -> Candidate | None:
        """The same step at the same strength without its per-layer table (the way the
        presets apply it): tried when the tabled candidate failed, not by far."""
        table = per_layer(c)
        if not table:
            return None
        steps = [dict(s) for s in c.policy["steps"]]
        kind, spec = next(iter(steps[0].items()))
        steps[0] = {kind: {k: v for k, v in spec.items() if k != "per_layer"}}
        return Candidate(f"{c.name}-uniform", c.family, {**c.policy, "steps": steps}, c.epochs, c.size_factor,
                         c.route, c.strength)

    def tables(self, kind: str, make: Callable, targets: tuple | None = None) -> dict:
        """Per-layer tables for each strength of a family, from the sensitivity (measured
        once, at the first family that needs it)."""
        if self.measure_sensitivity is None:
            return {}
        if self.sensitivity is None:
            t0 = self.clock()
            self.progress("  measuring per-layer sensitivity (no fine-tuning, one layer at a time)")
            self.sensitivity = self.measure_sensitivity()
            self.progress(f"  sensitivity measured in {self.clock() - t0:.0f} s")
        from gate.tune.tables import tables_for

        return tables_for(self.sensitivity, kind, targets)


def per_layer(c: Candidate) -> dict | None:
    steps = c.policy.get("steps") or []
    return next(iter(steps[0].values())).get("per_layer") if steps else None


def line(t: Trial, s: Search) -> str:
    """One progress line per trial."""
    verdict = {"pass": "PASS", "fail": "fail", "error": "ERROR"}.get(t.status, t.status)
    size = f"{t.bytes_gzip / 1024:8.1f} KiB gz" if t.bytes_gzip else "       - KiB gz"
    ratio = f"{t.compression:5.2f}x" if t.compression else "    -"
    drop = f"{100 * t.accuracy_drop:+6.2f} pts" if t.accuracy_drop is not None else "      - pts"
    lat = f"lat {t.latency_ratio:4.2f}x" if t.latency_ratio else "lat    -"
    why = "" if t.passed else "  " + (t.failed[0][:110] if t.failed else "")
    return (f"[{t.index:2d}] {verdict:5s} {t.name:<22} {size} {ratio} {drop} {lat} "
            f"{t.seconds:6.1f} s{' (cache)' if t.cached else ''}  [{s.elapsed() / 60:4.1f}/{s.budget_s / 60:.0f} min]"
            + why)
