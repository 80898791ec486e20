"""Measurements + thresholds -> checks -> verdict. Pure data, no TF.

Each threshold in gate.yml is one row of CHECKS: how to read the measured value (and
the reference it is compared with) and in which direction the limit holds.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Callable

from gate.config.schema import Thresholds


@dataclass(frozen=True)
class Sizes:
    raw: int
    gzip: int

    def get(self, measure: str) -> int:
        return self.raw if measure == "raw" else self.gzip


@dataclass(frozen=True)
class Measured:
    """What the judge needs of one measured .tflite."""

    sizes: Sizes
    p50_ms: float
    p99_ms: float
    accuracy: dict[int, float]


@dataclass(frozen=True)
class Measurements:
    original_accuracy: dict[int, float]   # the Keras model as committed (or the .tflite itself)
    reference: Measured                   # the unoptimized model as float32 TFLite
    candidate: Measured                   # what ships
    stats: dict = field(default_factory=dict)   # check name -> gate.verdict.compare.Stat (statistical verdicts)
    proxies: dict = field(default_factory=dict)  # candidate's gate.measure.proxies figures
    base_proxies: dict | None = None             # the base candidate's, when measured


@dataclass(frozen=True)
class Check:
    name: str            # the threshold's path in gate.yml, e.g. "accuracy.max_drop"
    metric: str          # human label
    value: float
    limit: float
    direction: str       # "<=" or ">="
    unit: str
    passed: bool
    reference: float | None = None
    detail: str = ""
    outcome: str = "point"      # point | pass | fail | inconclusive | unchanged (statistical checks)
    ci_low: float | None = None
    ci_high: float | None = None

    @property
    def margin(self) -> float:
        """How far inside (+) or outside (-) the limit the value is, in the check's unit."""
        return self.limit - self.value if self.direction == "<=" else self.value - self.limit

    def message(self) -> str:
        status = "passed" if self.passed else "FAILED"
        fmt = lambda v: format_value(self.name, self.unit, v)  # noqa: E731
        interval = f", interval {fmt(self.ci_low)} to {fmt(self.ci_high)}" if self.ci_low is not None else ""
        text = (f"{self.name} {status}: {self.metric} {fmt(self.value)}{interval} "
                f"(limit {self.direction} {fmt(self.limit)})")
        if self.outcome == "inconclusive":
            text += ", inconclusive: " + ("counted as pass" if self.passed else "counted as fail")
        if self.passed:
            return text
        side = "over" if self.direction == "<=" else "under"
        return f"{text}, {side} the limit by {fmt(abs(self.margin))}"

    def to_dict(self) -> dict:
        return {**asdict(self), "margin": self.margin, "message": self.message()}


def format_value(name: str, unit: str, value: float | None) -> str:
    """A check's figure in its unit: accuracy in %, accuracy drops in points, KiB, ms, x."""
    if value is None:
        return "–"
    v = float(value)
    if name in ("accuracy.max_drop", "accuracy.max_drop_vs_base"):
        return f"{100 * v:.2f} pts"
    if unit == "%":
        return f"{100 * v:+.2f} %"
    if unit == "":
        return f"{100 * v:.2f} %"
    if unit == "x":
        return f"{v:.2f}x"
    if unit == "ms":
        return f"{v:.4g} ms"
    if unit == "count":
        return f"{v:,.0f}"
    return f"{v:,.1f} {unit}"


Row = Callable[[Thresholds, Measurements], "list[Check]"]


def _size(t: Thresholds, m: Measurements) -> list[Check]:
    lim = t.size_kb
    if lim is None:
        return []
    unit = lim.measure.value
    value = m.candidate.sizes.get(unit) / 1024
    return [Check("size_kb.max", f"candidate size ({unit})", value, lim.max, "<=", "KiB",
                  value <= lim.max, m.reference.sizes.get(unit) / 1024)]


def _compression(t: Thresholds, m: Measurements) -> list[Check]:
    lim = t.compression
    if lim is None:
        return []
    unit = lim.measure.value
    ratio = m.reference.sizes.get(unit) / m.candidate.sizes.get(unit)
    return [Check("compression.min", f"compression vs float TFLite ({unit})", ratio, lim.min, ">=", "x",
                  ratio >= lim.min, 1.0, "reference float32 .tflite bytes / candidate bytes")]


def _accuracy(t: Thresholds, m: Measurements) -> list[Check]:
    lim = t.accuracy
    if lim is None:
        return []
    k = lim.top_k
    label = "accuracy" if k == 1 else f"top-{k} accuracy"
    cand, orig = m.candidate.accuracy[k], m.original_accuracy[k]
    out = []
    if lim.min is not None:
        out.append(Check("accuracy.min", label, cand, lim.min, ">=", "", cand >= lim.min, orig))
    if lim.max_drop is not None and "accuracy.max_drop" in m.stats:
        out.append(_from_stat("accuracy.max_drop", f"{label} drop vs original", lim.max_drop, "",
                              m.stats["accuracy.max_drop"], None))
    elif lim.max_drop is not None:
        drop = orig - cand
        out.append(Check("accuracy.max_drop", f"{label} drop vs original", drop, lim.max_drop, "<=", "",
                         drop <= lim.max_drop + 1e-12, None, f"original {orig:.4f}, candidate {cand:.4f}"))
    return out


def _from_stat(name: str, metric: str, limit: float, unit: str, st, reference: float | None) -> Check:
    return Check(name, metric, st.value, limit, "<=", unit, st.passed, reference, st.detail, st.outcome,
                 st.low, st.high)


def _latency_ms(t: Thresholds, m: Measurements) -> list[Check]:
    lim = t.latency_ms
    if lim is None:
        return []
    out = []
    if lim.p50_max is not None:
        out.append(Check("latency_ms.p50_max", "candidate p50 latency", m.candidate.p50_ms, lim.p50_max, "<=",
                         "ms", m.candidate.p50_ms <= lim.p50_max, m.reference.p50_ms))
    if lim.p99_max is not None:
        out.append(Check("latency_ms.p99_max", "candidate p99 latency", m.candidate.p99_ms, lim.p99_max, "<=",
                         "ms", m.candidate.p99_ms <= lim.p99_max, m.reference.p99_ms))
    return out


def _latency_ratio(t: Thresholds, m: Measurements) -> list[Check]:
    lim = t.latency
    if lim is None or lim.max_ratio is None:
        return []
    if "latency.max_ratio" in m.stats:
        return [_from_stat("latency.max_ratio", "latency vs float TFLite", lim.max_ratio, "x",
                           m.stats["latency.max_ratio"], 1.0)]
    ratio = m.candidate.p50_ms / m.reference.p50_ms
    return [Check("latency.max_ratio", "p50 latency vs float TFLite", ratio, lim.max_ratio, "<=", "x",
                  ratio <= lim.max_ratio, 1.0, "candidate p50 / reference p50, same run, interleaved")]


def _versus_base(t: Thresholds, m: Measurements) -> list[Check]:
    """What the pull request does, against the base branch's candidate (when measured)."""
    rows = []
    if t.size is not None and "size.max_increase" in m.stats:
        rows.append(_from_stat("size.max_increase", f"size change vs base ({t.size.measure.value})",
                               t.size.max_increase, "%", m.stats["size.max_increase"], 0.0))
    if t.accuracy is not None and t.accuracy.max_drop_vs_base is not None and "accuracy.max_drop_vs_base" in m.stats:
        rows.append(_from_stat("accuracy.max_drop_vs_base", "accuracy drop vs base", t.accuracy.max_drop_vs_base,
                               "", m.stats["accuracy.max_drop_vs_base"], None))
    if t.latency is not None and t.latency.max_regression is not None and "latency.max_regression" in m.stats:
        rows.append(_from_stat("latency.max_regression", "latency vs base", 1 + t.latency.max_regression, "x",
                               m.stats["latency.max_regression"], 1.0))
    return rows


PROXY_FIELDS = {"parameters": ("parameters", "parameters"), "nonzero_parameters": ("nonzero_parameters",
                "non-zero parameters"), "unique_values": ("unique_values", "unique weight values"),
                "macs": ("macs", "MACs"), "peak_memory_bytes": ("peak_delta_bytes", "peak memory (bytes)")}


def _proxies(t: Thresholds, m: Measurements) -> list[Check]:
    """Deterministic proxies: absolute limits, and growth vs the base's candidate."""
    if t.proxies is None:
        return []
    rows = []
    for name, (key, label) in PROXY_FIELDS.items():
        lim = getattr(t.proxies, name)
        value = m.proxies.get(key)
        if lim is None or value is None:
            continue
        base = (m.base_proxies or {}).get(key)
        if lim.max is not None:
            rows.append(Check(f"proxies.{name}.max", f"candidate {label}", float(value), lim.max, "<=", "count",
                              value <= lim.max, None if base is None else float(base)))
        if lim.max_increase is not None and base:
            growth = (value - base) / base
            rows.append(Check(f"proxies.{name}.max_increase", f"{label} change vs base", growth, lim.max_increase,
                              "<=", "%", growth <= lim.max_increase + 1e-12, 0.0, f"{value:,} vs {base:,}"))
    return rows


CHECKS: tuple[Row, ...] = (_size, _compression, _accuracy, _latency_ms, _latency_ratio, _versus_base, _proxies)


def judge(thresholds: Thresholds, measurements: Measurements) -> list[Check]:
    return [check for row in CHECKS for check in row(thresholds, measurements)]


def verdict(checks: list[Check]) -> str:
    return "pass" if all(c.passed for c in checks) else "fail"
