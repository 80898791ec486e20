"""How every figure is written, in one place: the terminal, report.md, the job summary, the
PR comment and the checks' messages all format through these (no TF, no rich, no Jinja).

- a fraction (accuracy 0.9833) is a percentage: `98.33 %`;
- a difference of two percentages (an accuracy drop, a margin to an accuracy limit) is in
  percentage points: `1.50 pts` — never `%`;
- a relative change (size vs base) is a signed percentage: `+7.0 %`;
- a ratio (compression, latency vs reference) is a multiple: `3.68×` — never `+268.1 %`;
- sizes are KiB and counts are integers, both with `,` for thousands: `1,283.5 KiB`, `12,345`.
"""
from __future__ import annotations

POINTS = "pts"      # percentage points: the unit of a difference between two percentages
TIMES = "×"


def _float(value: object) -> float | None:
    return None if value is None else float(value)


def percent(fraction: object) -> str:
    """0.9833 -> `98.33 %`."""
    v = _float(fraction)
    return "–" if v is None else f"{100 * v:.2f} %"


def points(difference: object, *, signed: bool = False) -> str:
    """A difference of two fractions in percentage points: 0.015 -> `1.50 pts` (`+1.50 pts`)."""
    v = _float(difference)
    if v is None:
        return "–"
    return f"{100 * v:+.2f} {POINTS}" if signed else f"{100 * v:.2f} {POINTS}"


def change(relative: object, digits: int = 1) -> str:
    """A relative change: 0.07 -> `+7.0 %`."""
    v = _float(relative)
    return "–" if v is None else f"{100 * v:+.{digits}f} %"


def ratio(value: object) -> str:
    """A multiple: 3.684 -> `3.68×`."""
    v = _float(value)
    return "–" if v is None else f"{v:,.2f}{TIMES}"


def count(value: object) -> str:
    """An integer count with thousands: 12345 -> `12,345`."""
    v = _float(value)
    return "–" if v is None else f"{v:,.0f}"


def kib(n_bytes: object) -> str:
    """Bytes as KiB with thousands: 1314304 -> `1,283.5 KiB`."""
    v = _float(n_bytes)
    return "–" if v is None else f"{v / 1024:,.1f} KiB"


def ms(value: object) -> str:
    v = _float(value)
    return "–" if v is None else f"{v:,.4g} ms"


def seconds(value: object) -> str:
    v = _float(value)
    return "–" if v is None else f"{v:,.1f} s"


# A check's unit (gate.verdict.check.Check.unit) -> how its value, limit and interval are written.
UNIT_FORMATS = {
    "pts": points,                                     # an accuracy drop: 0.01 -> 1.00 pts
    "%": lambda v: change(v, 2),                       # a relative change: 0.02 -> +2.00 %
    "": percent,                                       # a fraction: 0.98 -> 98.00 %
    "x": ratio,                                        # a ratio: 3.68×
    "ms": ms,
    "count": count,
    "KiB": lambda v: f"{float(v):,.1f} KiB",           # checks hold sizes already in KiB
    "value": lambda v: f"{float(v):.5g}",              # a metric's own value (mae 45.2, cosine 0.9998)
    "dB": lambda v: f"{float(v):,.2f} dB",
}

# The unit of a distance between two values of a unit (a check's margin): between two
# percentages, or two relative changes, it is points.
MARGIN_UNIT = {"": "pts", "%": "pts"}


def format_value(unit: str, value: object) -> str:
    """A check's figure in its unit (other units: `12.3 unit`)."""
    if value is None:
        return "–"
    fmt = UNIT_FORMATS.get(unit)
    return fmt(float(value)) if fmt else f"{float(value):,.1f} {unit}"


def interval(unit: str, low: object, high: object) -> str:
    """An interval in a check's unit, the unit written once: `0.00–0.83 pts`, `0.78–0.79×`
    (`+1.00 % to +2.00 %` for signed changes)."""
    a, b = format_value(unit, low), format_value(unit, high)
    for suffix in (f" {POINTS}", " %", TIMES, " ms", " KiB", " dB"):
        if a.endswith(suffix) and b.endswith(suffix) and not a.startswith(("+", "-")):
            return f"{a.removesuffix(suffix)}–{b}"
    return f"{a} to {b}"


def format_margin(unit: str, margin: float) -> str:
    """How far a value is from its limit: `1.50 pts` for a percentage, a plain `0.18` between
    two ratios (`by 0.18×` would read as a multiple)."""
    if unit == "x":
        return f"{abs(float(margin)):,.2f}"
    return format_value(MARGIN_UNIT.get(unit, unit), abs(margin))


def check_change(unit: str, reference: object, value: object) -> str:
    """Candidate against reference for a check's row: points between two fractions, a
    multiple for ratios, a signed relative change for sizes, times and counts."""
    if reference is None or value is None:
        return "–"
    ref, val = float(reference), float(value)
    if unit == "":
        return points(val - ref, signed=True)
    if unit in ("pts", "%"):
        return "–"          # the value is already a change
    if unit == "x":
        return ratio(val / ref) if ref else "–"
    return change(val / ref - 1) if ref else "–"
