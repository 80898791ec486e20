"""Report -> markdown (Jinja, sandboxed): report.md, the job summary and the PR comment are
one template, report.md.j2. A repo may bring its own comment template; it runs in an
immutable sandbox with limits and falls back to the default when it fails."""
from __future__ import annotations

import re
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources

from jinja2 import StrictUndefined
from jinja2.sandbox import ImmutableSandboxedEnvironment, SandboxedEnvironment

from gate.config.metrics import parse_metric
from gate.report import layers
from gate.report.combined import NO_REPORT, demote_headings, is_combined
from gate.report.paths import relative_paths
from gate import units
from gate.verdict.check import format_value

DEFAULT_TEMPLATE = "report.md.j2"
COMBINED_TEMPLATE = "combined.md.j2"
ICON = {"pass": "✅", "fail": "❌", "error": "⛔"}

_MD_SPECIAL = re.compile(r"([\\`*_\[\]|~])")


def md(value: object) -> str:
    """Escape text from the repo (names, paths, messages) for a Markdown table cell:
    no HTML, no links, no code spans, no table breaks, no @mention pings."""
    text = "" if value is None else str(value)
    text = text.replace("\r", " ").replace("\n", " ")
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    text = _MD_SPECIAL.sub(r"\\\1", text)
    if text[:1] in ("#", "-", "+", "="):
        text = "\\" + text  # no heading, list or quote when the value starts a line
    # A zero-width space stops @mention pings and #123 / owner/repo#123 cross-references.
    return text.replace("@", "@\u200b").replace("#", "#\u200b")


def num(value: object, digits: int = 4) -> str:
    if value is None:
        return "–"
    v = float(value)
    if v != 0 and abs(v) < 10 ** -digits:
        return f"{v:.2e}"
    return f"{v:,.{digits}f}".rstrip("0").rstrip(".") if abs(v) < 1000 else f"{v:,.0f}"


kib = units.kib
pct = units.percent


def points(value: object) -> str:
    return units.points(value, signed=True)


def points_drop(value: object) -> str:
    """An accuracy drop (a fraction, + is a loss) in points."""
    return units.points(value)



def signed_pct(value: object) -> str:
    return units.change(value)


def count(value: object) -> str:
    try:
        return units.count(value)
    except (TypeError, ValueError):
        return md(value)


def check_value(value: object, check: dict) -> str:
    """A check's value in its unit: accuracy as %, drops as points, sizes, ms, ratios."""
    return format_value(check["unit"], value)


def metric_value(name: object, value: object) -> str:
    """A metric's value in its unit (gate.config.metrics): fractions as %, errors as numbers, dB."""
    try:
        unit = parse_metric(str(name)).info.unit
    except ValueError:
        unit = "value"
    try:
        return format_value(unit, None if value is None else float(value))
    except (TypeError, ValueError):
        return "–"


def _evaluation_metrics(artifact: object) -> dict:
    if not isinstance(artifact, dict):
        return {}
    ev = artifact.get("evaluation") if "evaluation" in artifact else artifact
    metrics = ev.get("metrics") if isinstance(ev, dict) else None
    return metrics if isinstance(metrics, dict) else {}


def shows_legacy_accuracy(report: dict) -> bool:
    """The `accuracy topk` rows: a single-output classifier (with several outputs the
    metrics rows name each output)."""
    outputs = (report.get("model") or {}).get("outputs") or []
    return len(outputs) <= 1 and bool((report.get("original") or {}).get("accuracy"))


def metric_rows(report: dict) -> list[list[str]]:
    """[name, original, reference, candidate] cells for every reported metric, formatted,
    not escaped (callers escape for their medium). Skips what the accuracy rows show."""
    orig, ref, cand = (_evaluation_metrics(report.get(k)) for k in ("original", "reference", "candidate"))
    legacy = shows_legacy_accuracy(report)
    rows = []
    for name in dict.fromkeys([*orig, *cand, *ref]):
        metric = str(name).rsplit("/", 1)[-1]
        if legacy and "/" not in str(name) and (metric == "accuracy" or metric.startswith("top_")):
            continue
        rows.append([str(name), metric_value(name, orig.get(name)) if name in orig else "–",
                     metric_value(name, ref.get(name)), metric_value(name, cand.get(name))])
    return rows


def unavailable_metrics(report: dict) -> dict[str, str]:
    cand = (report.get("candidate") or {}).get("evaluation") or {}
    missing = cand.get("unavailable") if isinstance(cand, dict) else None
    return {str(k): str(v) for k, v in missing.items()} if isinstance(missing, dict) else {}


def reference_label(report: dict) -> str:
    ref = report.get("reference") or {}
    label = ref.get("label") if isinstance(ref, dict) else None
    return str(label) if label else "float32"


def time_split(timings: object, shown: int = 4) -> str:
    """Where the run's time went, from report.json's `timings_s`: "38.1 s: optimize 22.0 s
    (58 %), convert_candidate 5.1 s (13 %), ..., 6 more stages 3.0 s (8 %)"; "" if none."""
    if not isinstance(timings, dict):
        return ""
    items = sorted(((str(k), float(v)) for k, v in timings.items() if isinstance(v, (int, float)) and v >= 0),
                   key=lambda kv: -kv[1])
    total = sum(v for _, v in items)
    if not items or total <= 0:
        return ""
    parts = [f"{k} {v:.1f} s ({100 * v / total:.0f} %)" for k, v in items[:shown]]
    rest = items[shown:]
    if rest:
        left = sum(v for _, v in rest)
        parts.append(f"{len(rest)} more stage{'s' if len(rest) > 1 else ''} {left:.1f} s ({100 * left / total:.0f} %)")
    return f"{total:.1f} s: " + ", ".join(parts)


def environment(kind: type[SandboxedEnvironment] = SandboxedEnvironment) -> SandboxedEnvironment:
    env = kind(trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True,
                               undefined=StrictUndefined, autoescape=False)
    env.filters.update(md=md, num=num, kib=kib, count=count, ratio=units.ratio, pct=pct, points=points,
                       signed_pct=signed_pct,
                       check_value=check_value, code=code, change=change,
                       chart_number=chart_number, chart_top=chart_top, stage_table=stage_table,
                       check_status=check_status, metric_rows=metric_rows, unavailable_metrics=unavailable_metrics,
                       reference_label=reference_label, shows_legacy_accuracy=shows_legacy_accuracy,
                       time_split=time_split, points_drop=points_drop, measured_on=measured_on,
                       delegation_cell=delegation_cell, worst_by_error=layers.worst_by_error,
                       worst_by_size=layers.worst_by_size, layer_label=layers.layer_label,
                       layer_advice=layers.advice, layer_coverage=layers.coverage)
    return env


def measured_on(report: dict) -> str:
    """Where the latency figures were measured: the target's name, or the runner's CPU
    (reports from before targets existed say it in the benchmark settings)."""
    target = report.get("target") or {}
    if isinstance(target, dict) and target.get("name"):
        return str(target["name"])
    settings = (report.get("benchmark") or {}).get("settings") or {}
    return f"runner CPU ({settings.get('cpu', 'unknown')})"


def delegation_cell(d: object) -> str:
    """One model's delegation: accelerated share, partitions, ops left on the CPU."""
    if not isinstance(d, dict):
        return "–"
    if "unavailable" in d:
        return "not measured: " + md(d["unavailable"])
    if d.get("delegate") == "none":
        return md(f"{d.get('total_ops')} ops on the CPU")
    cpu = d.get("cpu_ops") or []
    if d.get("accelerated_ops") is None:
        return md(f"not fully accelerated on {d.get('accelerator') or d.get('delegate')} ({d.get('total_ops')} ops)")
    text = f"{d.get('accelerated_ops')}/{d.get('total_ops')} ops on {d.get('accelerator') or d.get('delegate')}, " \
           f"{d.get('partitions')} partition(s)"
    if cpu:
        text += "; CPU: " + ", ".join(str(op).split(" [")[0] for op in cpu[:6]) + (" ..." if len(cpu) > 6 else "")
    return md(text)


def _template_text(name: str) -> str:
    return (resources.files("gate.report") / "templates" / name).read_text(encoding="utf-8")


def render_markdown(report: dict, template: str | None = None) -> str:
    if is_combined(report) and template is None:
        return render_combined(report)
    env = environment()
    tpl = env.from_string(template if template is not None else _template_text(DEFAULT_TEMPLATE))
    return tpl.render(r=relative_paths(report), ICON=ICON)


def render_combined(report: dict) -> str:
    """The combined report: the summary table, then each model's report folded (a model
    whose report cannot be rendered gets its summary line)."""
    sections = {}
    for row in report.get("rows") or []:
        name = row["name"]
        model = (report.get("reports") or {}).get(name)
        if model is None:
            sections[name] = md(NO_REPORT) + "\n"
            continue
        try:
            sections[name] = demote_headings(render_markdown(model))
        except Exception:  # noqa: BLE001 - one odd report must not cost the others
            sections[name] = demote_headings(minimal_markdown(model))
    tpl = environment().from_string(_template_text(COMBINED_TEMPLATE))
    return tpl.render(r=report, ICON=ICON, sections=sections)


# -- filters for the comment's extra parts -------------------------------------------------

def code(value: object, table: bool = False) -> str:
    """Repo text as an inline code span that cannot end early, break a table or a line."""
    text = ("" if value is None else str(value)).replace("\r", " ").replace("\n", " ").replace("`", "'")
    text = text.replace("@", "@\u200b").replace("#", "#\u200b")  # belt and braces: spans never ping
    return f"`{text.replace('|', chr(92) + '|') if table else text}`"


def check_status(check: dict) -> str:
    """pass / fail, and for statistical checks the outcome when it is not plain."""
    outcome = check.get("outcome") or "point"
    mark = "✅ pass" if check.get("passed") else "❌ fail"
    if outcome == "inconclusive":
        return f"⚠️ inconclusive, counted as {'pass' if check.get('passed') else 'fail'}"
    if outcome == "unchanged":
        return "✅ unchanged"
    if outcome == "not_judged":
        return f"⚠️ not judged, counted as {'pass' if check.get('passed') else 'fail'}"
    if outcome == "not_applicable":
        return "➖ not applicable"
    return mark


def change(check: dict) -> str:
    """Candidate vs reference for a check (gate.units.check_change): points between two
    percentages, a multiple for ratios, a relative % for sizes, times and counts."""
    return units.check_change(str(check.get("unit")), check.get("reference"), check.get("value"))


def chart_number(value: object) -> str:
    """A number Mermaid parses: plain decimal, no exponent, no thousands separator."""
    text = f"{float(value):.4g}"
    return f"{float(value):.10f}".rstrip("0").rstrip(".") if "e" in text else text


def chart_top(values: list) -> str:
    """The y-axis top: 15 % above the largest bar, so bars start at 0 and fit."""
    return chart_number(max([float(v) for v in values] + [0.0]) * 1.15 or 1)


STAGE_COLUMNS = (  # header, path into a stage of report.json's `stages`, format
    ("Stage", ("name",), md), ("Kind", ("kind",), md), ("Params", ("params",), count),
    ("Sparsity", ("weights", "sparsity"), pct),
    ("Unique values / channel", ("weights", "max_unique_per_channel"), count),
    ("Accuracy (top1)", ("accuracy", "top1"), pct),
    ("Metrics", ("metrics",), lambda m: ", ".join(f"{md(k)} {metric_value(k, v)}" for k, v in m.items())),
    ("Size, raw", ("bytes_raw",), kib), ("Size, gzip", ("bytes_gzip",), kib),
    ("Seconds", ("seconds",), num),
)


def stage_table(stages: object) -> dict:
    """report.json's `stages` (original, each optimization step, converted) as table cells,
    escaped; a column appears when some stage has its figure."""
    rows = [s for s in stages if isinstance(s, dict)] if isinstance(stages, list) else []

    def at(stage: dict, path: tuple[str, ...]) -> object:
        for key in path:
            stage = stage.get(key) if isinstance(stage, dict) else None
        return stage

    def cell(value: object, fmt) -> str:
        if value is None:
            return "–"
        try:
            return fmt(value)
        except (TypeError, ValueError):
            return md(value)

    columns = [c for c in STAGE_COLUMNS if any(at(s, c[1]) is not None for s in rows)]
    return {"header": [c[0] for c in columns],
            "rows": [[cell(at(s, path), fmt) for _, path, fmt in columns] for s in rows]}


# -- the PR comment: the default template, or the repo's own, sandboxed -------------------

USER_TEMPLATE_MAX_BYTES = 64 * 1024
USER_OUTPUT_MAX_CHARS = 256 * 1024
USER_RENDER_SECONDS = 5.0


class TemplateFailure(Exception):
    """A user template could not be rendered (error, sandbox violation, too big, too slow)."""


@contextmanager
def _time_limit(seconds: float) -> Iterator[None]:
    """SIGALRM deadline on the main thread (elsewhere: no limit, the output cap still holds)."""
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "setitimer"):
        yield
        return

    def expired(*_: object) -> None:
        raise TemplateFailure(f"took longer than {seconds:g} s")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def render_user_template(report: dict, text: str, default: str) -> str:
    """Render a repo's template in an immutable sandbox with size and time limits.

    It sees `r` (report.json), `ICON` and `default` (the default rendering). Raises
    TemplateFailure for anything that goes wrong, sandbox violations included."""
    if len(text.encode("utf-8")) > USER_TEMPLATE_MAX_BYTES:
        raise TemplateFailure(f"template is larger than {USER_TEMPLATE_MAX_BYTES} bytes")
    env = environment(ImmutableSandboxedEnvironment)
    out: list[str] = []
    size = 0
    try:
        with _time_limit(USER_RENDER_SECONDS):
            tpl = env.from_string(text)
            for chunk in tpl.generate(r=report, ICON=ICON, default=default):
                size += len(chunk)
                if size > USER_OUTPUT_MAX_CHARS:
                    raise TemplateFailure(f"output is longer than {USER_OUTPUT_MAX_CHARS} characters")
                out.append(chunk)
    except TemplateFailure:
        raise
    except Exception as exc:  # noqa: BLE001 - any failure of untrusted code means "fall back"
        raise TemplateFailure(f"{type(exc).__name__}: {str(exc)[:200]}") from None
    return "".join(out)


def minimal_markdown(report: dict) -> str:
    """Last resort when even the default template fails on a (hostile) report."""
    report = relative_paths(report) if isinstance(report, dict) else {}
    status = str(report.get("status"))
    return f"## {ICON.get(status, '')} model-gate: {md(status)}\n\n{md(report.get('summary'))}\n"


def render_comment(report: dict, template: str | None = None) -> tuple[str, str | None]:
    """The PR comment / job summary markdown and a warning when a fallback was used."""
    try:
        default = render_markdown(report)
    except Exception as exc:  # noqa: BLE001 - a report from an artifact may be odd
        return minimal_markdown(report), f"the report could not be rendered in full ({type(exc).__name__})"
    if not template:
        return default, None
    try:
        return render_user_template(relative_paths(report), template, default), None
    except TemplateFailure as exc:
        return default, f"comment-template failed ({exc}); the default comment was used"
