"""The threshold registry: one row per threshold of gate.yml. A row is the one place that
writes a threshold's name (its path under `thresholds:`, which is also where its limit is
read), its unit and its limit kind (`<=` a maximum, `>=` a minimum), and whether it needs
the base branch's candidate. Its judge measures (a `Found`: the figure, its reference, the
statistics' outcome) and the row makes the `Check` — statistical judges call the helpers
in gate.verdict.stats (paired accuracy) and gate.verdict.abtest (latency A/B).

    gate.yml ─ yamlio (lines) ─ schema.Thresholds ─ GateConfig (threshold_lines)
        └─ judge(): Row.limit → Row.judge(Evidence) → Found → Row.check → Check (+ line) → report.json
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from gate.config.metrics import parse_metric
from gate.config.schema import MetricLimit, Thresholds
from gate.verdict.check import Check, Direction
from gate.verdict.evidence import Evidence, Side
from gate.verdict.found import ROUNDING_SLACK, Found

UNCHANGED = "unchanged against the base (same model, data and policy hashes): not measured again"
Limit = Callable[[Thresholds], "float | None"]
Judge = Callable[[Evidence, float, Thresholds], "Found | str"]   # a str says why it could not be judged


class NotApplicable(str):
    """A judge's answer when its limit cannot apply to this model (passes, says why)."""


@dataclass(frozen=True)
class Row:
    name: str              # the threshold's path under `thresholds:` in gate.yml
    unit: str              # the unit of the value and the limit (gate.verdict.check.UNIT_FORMATS)
    judge: Judge
    direction: Direction = "<="          # the limit kind: "<=" a maximum, ">=" a minimum
    needs_base: bool = False
    read_limit: Limit | None = None      # None: the number at `name`'s path under thresholds

    def limit(self, t: Thresholds) -> float | None:
        """The configured limit (None when that part of gate.yml is not set)."""
        if self.read_limit is not None:
            return self.read_limit(t)
        node = t
        for part in self.name.split("."):
            node = getattr(node, part, None)
            if node is None:
                return None
        return float(node)

    def check(self, found: Found, limit: float) -> Check:
        return Check(name=self.name, metric=found.metric, value=found.value, limit=limit, direction=self.direction,
                     unit=self.unit, passed=found.holds(limit, self.direction), reference=found.reference, detail=found.detail,
                     outcome=found.outcome, ci_low=found.ci_low, ci_high=found.ci_high)


# -- rows ---------------------------------------------------------------------------------

def _size_kb(ev: Evidence, limit: float, t: Thresholds) -> Found:
    measure = t.size_kb.measure.value
    return Found(f"candidate size ({measure})", ev.candidate.sizes.get(measure) / 1024,
                 reference=ev.reference.sizes.get(measure) / 1024)


def _compression(ev: Evidence, limit: float, t: Thresholds) -> Found | str:
    if not ev.float_reference:
        return NotApplicable(f"the reference is {ev.reference_label}: there is no float .tflite to compare "
                             "sizes with")
    measure = t.compression.measure.value
    ratio = ev.reference.sizes.get(measure) / ev.candidate.sizes.get(measure)
    return Found(f"compression vs float TFLite ({measure})", ratio, reference=1.0,
                 detail="reference float32 .tflite bytes / candidate bytes")


def _accuracy_label(t: Thresholds) -> str:
    k = t.accuracy.top_k
    return "accuracy" if k == 1 else f"top-{k} accuracy"


def _no_accuracy(ev: Evidence, k: int) -> str | None:
    if k in ev.candidate.accuracy:
        return None
    kinds = ", ".join(f"{n} ({task.kind})" for n, task in ev.tasks.items()) or "none"
    return (f"no top-{k} accuracy: the model needs exactly one classifier output with class ids in the eval data "
            f"(outputs: {kinds}); judge other outputs with thresholds.metrics (e.g. mae, score/accuracy)")


def _accuracy_min(ev: Evidence, limit: float, t: Thresholds) -> Found | str:
    k = t.accuracy.top_k
    if _no_accuracy(ev, k):
        return _no_accuracy(ev, k)
    return Found(_accuracy_label(t), ev.candidate.accuracy[k], reference=ev.original.accuracy[k])


def _drop(metric: str, before: Side, after: Side, ev: Evidence, limit: float, t: Thresholds) -> Found | str:
    """Accuracy drop from `before` to `after`: paired per example (McNemar, bootstrap
    interval) when both were scored on the same examples and top-1 is judged, else the
    point estimate."""
    from gate.verdict.stats import accuracy_drop, correctness

    acc = t.accuracy
    if _no_accuracy(ev, acc.top_k):
        return _no_accuracy(ev, acc.top_k)
    if acc.top_k not in before.accuracy:
        return f"the base candidate has no top-{acc.top_k} accuracy (its model has no classifier output)"
    if acc.top_k == 1 and before.predictions is not None and after.predictions is not None:
        cmp = accuracy_drop(correctness(before.predictions, ev.labels), correctness(after.predictions, ev.labels),
                            max_drop=limit, mode=acc.mode, confidence=acc.confidence)
        return Found(metric, cmp.drop, passed=cmp.passed, detail=cmp.explanation, outcome=acc.mode,
                     ci_low=cmp.ci_low, ci_high=cmp.ci_high)
    k = acc.top_k
    drop = before.accuracy[k] - after.accuracy[k]
    why = (f"point estimate on top-{k} (per-example statistics are top-1)" if k != 1
           else "point estimate: not scored on the same examples")
    return Found(metric, drop, detail=f"{why}; before {before.accuracy[k]:.4f}, after {after.accuracy[k]:.4f}")


def _accuracy_max_drop(ev: Evidence, limit: float, t: Thresholds) -> Found | str:
    return _drop(f"{_accuracy_label(t)} drop vs original", ev.original, ev.candidate, ev, limit, t)


def _latency_p50(ev: Evidence, limit: float, t: Thresholds) -> Found:
    return Found("candidate p50 latency", ev.candidate.latency.p50_ms, reference=ev.reference.latency.p50_ms)


def _latency_p99(ev: Evidence, limit: float, t: Thresholds) -> Found:
    return Found("candidate p99 latency", ev.candidate.latency.p99_ms, reference=ev.reference.latency.p99_ms)


def _ab(metric: str, baseline: bytes, ev: Evidence, max_ratio: float, t: Thresholds, *,
        as_change: bool) -> Found | str:
    """Latency ratio candidate/baseline by the interleaved A/B test (gate.verdict.abtest), on
    the benchmark target; `as_change`: shown as the change (ratio - 1, a regression limit's
    unit). A run that crashed on the device leaves the check not judged."""
    from gate.errors import TargetCrash

    lat, bench = t.latency, ev.bench
    try:
        v = ev.compare_latency(baseline, ev.candidate.content, ev.example, max_ratio=max_ratio,
                               threads=bench.threads, warmup=max(bench.warmup, 2), confidence=lat.confidence,
                               time_budget_s=lat.time_budget_s, inconclusive=lat.inconclusive)
    except TargetCrash as crash:
        return f"the A/B runs crashed on the device: {crash.message}"
    if v.outcome == "not_judged":
        return v.message()      # cut short by the time budget: not judged, never a pass it did not measure
    shift = 1.0 if as_change else 0.0
    return Found(metric, v.ratio - shift, passed=v.passed, reference=1.0 - shift, detail=v.message() + _on(ev),
                 outcome=v.outcome, ci_low=v.ci_low - shift, ci_high=v.ci_high - shift)


def _on(ev: Evidence) -> str:
    """Where a device-measured figure came from, for the check's detail."""
    return f"; measured on {ev.measured_on}" if ev.measured_on else ""


def _latency_ratio(ev: Evidence, limit: float, t: Thresholds) -> Found | str:
    against = "float TFLite" if ev.float_reference else ev.reference_label
    return _ab(f"latency vs {against}", ev.reference.content, ev, limit, t, as_change=False)


def _size_increase(ev: Evidence, limit: float, t: Thresholds) -> Found:
    measure = t.size.measure.value
    mine, theirs = ev.candidate.sizes.get(measure), ev.base.sizes.get(measure)
    growth = (mine - theirs) / theirs if theirs else 0.0
    return Found(f"size change vs base ({measure})", growth, reference=0.0,
                 detail=f"{mine:,} vs {theirs:,} bytes ({measure})")


def _accuracy_vs_base(ev: Evidence, limit: float, t: Thresholds) -> Found | str:
    metric = "accuracy drop vs base"
    if ev.base_unchanged:
        return Found(metric, 0.0, passed=True, detail=UNCHANGED, outcome="unchanged", ci_low=0.0, ci_high=0.0)
    return _drop(metric, ev.base, ev.candidate, ev, limit, t)


def _latency_vs_base(ev: Evidence, limit: float, t: Thresholds) -> Found | str:
    """Judged as a change, the unit the limit is written in ("5%" -> 0.05): the A/B test
    decides on the ratio against 1 + limit."""
    metric = "latency change vs base"
    if ev.base_unchanged:
        return Found(metric, 0.0, passed=True, reference=0.0, detail=UNCHANGED, outcome="unchanged",
                     ci_low=0.0, ci_high=0.0)
    if ev.base.content is None:
        return "the base candidate's .tflite is not available (a baseline report without its candidate.tflite)"
    return _ab(metric, ev.base.content, ev, 1 + limit, t, as_change=True)


def _delegation_of(side: Side | None, ev: Evidence, who: str):
    """The target's delegation profile of one model (gate.measure.targets.delegation.Delegation),
    or why there is none."""
    if side is None or side.content is None:
        return f"the {who}'s .tflite is not available"
    if ev.delegation is None:
        return "delegation is measured on the benchmark target, and this run has none"
    return ev.delegation(who, side.content)


def _cpu_ops(d) -> str:
    return ("; left on the CPU: " + ", ".join(d.cpu_ops[:20]) + (" ..." if len(d.cpu_ops) > 20 else "")
            if d.cpu_ops else "")


def _delegation_full(ev: Evidence, limit: float, t: Thresholds) -> Found | str:
    d = _delegation_of(ev.candidate, ev, "candidate")
    if isinstance(d, str):
        return d
    if d.share is None:     # an ssh board not fully accelerated: certainly not full, the share unknown
        return Found(f"ops on {d.accelerator or d.delegate} (full delegation)", None, passed=False,
                     detail=d.summary() + _on(ev))
    return Found(f"ops on {d.accelerator or d.delegate} (full delegation)", d.share, passed=d.full,
                 detail=d.summary() + (" (more than one partition)" if d.share == 1 and not d.full else "")
                 + _cpu_ops(d) + _on(ev))


def _delegation_share(ev: Evidence, limit: float, t: Thresholds) -> Found | str:
    d = _delegation_of(ev.candidate, ev, "candidate")
    if isinstance(d, str):
        return d
    if d.share is None:
        return d.summary() + ": the share needs an op profile (benchmark.target.adb)"
    return Found(f"share of ops on {d.accelerator or d.delegate}", d.share, detail=d.summary() + _cpu_ops(d) + _on(ev))


def _delegation_vs_base(ev: Evidence, limit: float, t: Thresholds) -> Found | str:
    mine = _delegation_of(ev.candidate, ev, "candidate")
    if isinstance(mine, str):
        return mine
    theirs = _delegation_of(ev.base, ev, "base")
    if isinstance(theirs, str):
        return theirs
    if mine.share is None or theirs.share is None:
        return "the accelerated share is unknown (litert-benchmark says only whether a model is fully accelerated)"
    return Found("accelerated share drop vs base", theirs.share - mine.share, reference=0.0,
                 detail=f"base: {theirs.summary()}; candidate: {mine.summary()}" + _cpu_ops(mine) + _on(ev))


# name in report/gate.yml -> (proxies dict key, label)
PROXY_FIELDS = {"parameters": ("parameters", "parameters"),
                "nonzero_parameters": ("nonzero_parameters", "non-zero parameters"),
                "unique_values": ("unique_values", "unique weight values"),
                "macs": ("macs", "MACs"),
                "peak_memory_bytes": ("peak_delta_bytes", "peak memory (bytes)")}


def _proxy_rows(name: str, key: str, label: str) -> tuple[Row, Row]:
    def absolute(ev: Evidence, limit: float, t: Thresholds) -> Found | str:
        value = (ev.candidate.proxies or {}).get(key)
        if value is None:
            return f"the candidate's {label} could not be measured"
        base = (ev.base.proxies or {}).get(key) if ev.base else None
        return Found(f"candidate {label}", float(value), reference=None if base is None else float(base))

    def growth(ev: Evidence, limit: float, t: Thresholds) -> Found | str:
        value, base = (ev.candidate.proxies or {}).get(key), (ev.base.proxies or {}).get(key)
        if value is None or not base:
            return f"the {label} of the candidate or the base could not be measured"
        return Found(f"{label} change vs base", (value - base) / base, reference=0.0, detail=f"{value:,} vs {base:,}")

    return (Row(f"proxies.{name}.max", "count", absolute),
            Row(f"proxies.{name}.max_increase", "%", growth, needs_base=True))


ROWS: tuple[Row, ...] = (
    Row("size_kb.max", "KiB", _size_kb),
    Row("compression.min", "x", _compression, ">="),
    Row("accuracy.min", "", _accuracy_min, ">="),
    Row("accuracy.max_drop", "pts", _accuracy_max_drop),
    Row("latency_ms.p50_max", "ms", _latency_p50),
    Row("latency_ms.p99_max", "ms", _latency_p99),
    Row("latency.max_ratio", "x", _latency_ratio),
    Row("size.max_increase", "%", _size_increase, needs_base=True),
    Row("accuracy.max_drop_vs_base", "pts", _accuracy_vs_base, needs_base=True),
    Row("latency.max_regression", "%", _latency_vs_base, needs_base=True),
    *(row for name, (key, label) in PROXY_FIELDS.items() for row in _proxy_rows(name, key, label)),
    Row("delegation.full", "", _delegation_full, ">="),      # full: true reads as the limit 1.0 (100 %)
    Row("delegation.min_share", "", _delegation_share, ">="),
    Row("delegation.max_drop_vs_base", "pts", _delegation_vs_base, needs_base=True),
)
ROW_NAMES = tuple(row.name for row in ROWS)


# -- thresholds.metrics: rows generated per configured metric -------------------------------

_LIMIT_KINDS = ("min", "max", "max_drop", "max_increase", "max_drop_vs_base", "max_increase_vs_base")


def metric_rows(t: Thresholds) -> list[Row]:
    """One row per limit set under thresholds.metrics, named metrics.<metric>.<limit>
    (`metrics.mae.max`, `metrics.score/mae.max_increase_vs_base`)."""
    rows = []
    for key, spec in (t.metrics or {}).items():
        info = parse_metric(key).info
        for kind in _LIMIT_KINDS:
            if getattr(spec, kind) is None:
                continue
            unit = info.unit if kind in ("min", "max") else _change_unit(info)
            rows.append(Row(f"metrics.{key}.{kind}", unit, _metric_judge(key, kind, unit),
                            ">=" if kind == "min" else "<=", needs_base=kind.endswith("_vs_base"),
                            read_limit=_metric_limit(key, kind)))
    return rows


def _metric_limit(key: str, kind: str) -> Limit:
    def read(t: Thresholds) -> float | None:
        spec = (t.metrics or {}).get(key)
        value = None if spec is None else getattr(spec, kind)
        return None if value is None else float(value)
    return read


def _metric_judge(key: str, kind: str, unit: str) -> Judge:
    """`unit`: the row's (a change's unit for the change limits), for the detail's figures."""
    def judge(ev: Evidence, limit: float, t: Thresholds) -> Found | str:
        from gate.measure.scores import resolve

        spec: MetricLimit = t.metrics[key]
        name, output, metric, why = resolve(key, ev.tasks)
        if output is None:
            from gate.measure.qualify import every_output
            from gate.verdict.metric_outputs import judge_every_output

            outputs = every_output(key, ev.tasks)
            return judge_every_output(key, kind, unit, outputs, ev, limit, t, _metric_judge) if outputs else why
        info = metric.info
        after = ev.candidate.metrics.get(name)
        if after is None or after.value is None:
            return after.why if after is not None else f"{name} was not computed"
        label = name
        if kind in ("min", "max"):
            before = ev.original.metrics.get(name) if info.labels else ev.reference.metrics.get(name)
            return Found(label, after.value, reference=None if before is None else before.value,
                         detail=info.description)
        vs_base = kind.endswith("_vs_base")
        if vs_base:
            if ev.base_unchanged:
                return Found(f"{label} change vs base", 0.0, passed=True, detail=UNCHANGED, outcome="unchanged",
                             ci_low=0.0, ci_high=0.0)
            before = ev.base.metrics.get(name)
            if before is None or before.value is None:
                return f"the base candidate has no {name}" + (f" ({before.why})" if before is not None else "")
            against = "base candidate"
        else:
            before = ev.original.metrics.get(name)
            if before is None or before.value is None:
                return f"the original model has no {name}"
            against = "original"
        if info.relative and before.value == 0:
            return (f"the {against}'s {name} is 0: a relative {info.change_limit.removeprefix('max_')} is undefined "
                    f"(use metrics.{key}.max)")
        return _metric_change(label, against, info, before, after, unit, limit, spec)
    return judge


def _change_unit(info) -> str:
    return "%" if info.relative else "pts" if info.unit == "" else info.unit


def _metric_change(label: str, against: str, info, before, after, unit: str, limit: float,
                   spec: MetricLimit) -> Found:
    from gate.verdict.stats import metric_change

    paired = info.paired and before.per_example is not None and after.per_example is not None
    cmp = metric_change(before.value, after.value, higher_is_better=info.higher_is_better, relative=info.relative,
                        before_examples=before.per_example if paired else None,
                        after_examples=after.per_example if paired else None, root=after.metric == "rmse",
                        confidence=spec.confidence)
    word = "drop" if info.higher_is_better else "increase"
    mode = spec.mode if cmp.paired else "point"
    judged = cmp.ci_high if mode == "ci" else cmp.change
    from gate.verdict.check import format_value

    fmt = lambda v: format_value(info.unit, v)  # noqa: E731
    how = (f"paired bootstrap over {cmp.examples} examples, {100 * spec.confidence:g} % interval "
           f"[{format_value(unit, cmp.ci_low)}, {format_value(unit, cmp.ci_high)}]" if cmp.paired
           else "point estimate (no per-example values" + ("" if info.paired else f" for {after.metric}") + ")")
    relative = " relative to the " + against + "'s value" if info.relative else ""
    detail = (f"{against} {fmt(before.value)}, candidate {fmt(after.value)}: {word} {format_value(unit, cmp.change)}"
              f"{relative}; {how}; {mode} mode judges " + ("the interval's upper end" if mode == "ci"
                                                           else "the measured change"))
    if spec.mode == "ci" and not cmp.paired:
        detail += " (ci mode needs per-example values: judged the point estimate)"
    return Found(f"{label} {word} vs {against}", cmp.change, passed=judged <= limit + ROUNDING_SLACK, detail=detail,
                 outcome=mode, ci_low=cmp.ci_low, ci_high=cmp.ci_high)


def rows_for(t: Thresholds) -> tuple[Row, ...]:
    """The registry's fixed rows and the rows of thresholds.metrics."""
    return ROWS + tuple(metric_rows(t))


def configured(t: Thresholds, *, needs_base: bool | None = None) -> list[str]:
    """The names of the rows gate.yml sets (optionally only those that need the base)."""
    return [r.name for r in rows_for(t) if r.limit(t) is not None
            and (needs_base is None or r.needs_base == needs_base)]


def judge(t: Thresholds, ev: Evidence, line_of: Callable[[str], int | None] = lambda _name: None) -> list[Check]:
    """Every configured threshold, in registry order, judged on the evidence; each check
    carries its threshold's line in gate.yml (GateConfig.threshold_line). A limit that
    cannot be judged is a check too (`not_judged`, failing unless thresholds.not_judged
    says pass), or `not_applicable` when the run has no base by design."""
    checks = []
    for row in rows_for(t):
        limit = row.limit(t)
        if limit is None:
            continue
        if row.needs_base and ev.base is None:
            kind, why = ev.no_base or ("unavailable", "no baseline to compare with")
            result = unjudged(row, limit, why, applicable=kind == "unavailable", t=t)
        else:
            found = row.judge(ev, limit, t)
            result = (unjudged(row, limit, found, applicable=not isinstance(found, NotApplicable), t=t)
                      if isinstance(found, str) else row.check(found, limit))
        checks.append(result.model_copy(update={"line": line_of(row.name)}))
    return checks


def unjudged(row: Row, limit: float, why: str, *, applicable: bool, t: Thresholds) -> Check:
    """A configured limit without a verdict: `not_judged` (counted as thresholds.not_judged
    says) when it should have been judged, `not_applicable` (passes) when it cannot apply."""
    return Check(name=row.name, metric=row.name, value=None, limit=limit, direction=row.direction, unit=row.unit,
                 detail=why,
                 outcome="not_judged" if applicable else "not_applicable",
                 passed=not applicable or t.not_judged == "pass")
