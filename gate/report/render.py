"""Report -> markdown (Jinja, the same template the PR comment uses) and terminal text."""
from __future__ import annotations

import re
from importlib import resources

from jinja2 import StrictUndefined

from gate.judge import format_value
from jinja2.sandbox import SandboxedEnvironment

DEFAULT_TEMPLATE = "report.md.j2"

_MD_SPECIAL = re.compile(r"([\\`*_\[\]|~])")


def md(value: object) -> str:
    """Escape text from the repo (names, paths, messages) for a Markdown table cell:
    no HTML, no links, no code spans, no table breaks, no @mention pings."""
    text = "" if value is None else str(value)
    text = text.replace("\r", " ").replace("\n", " ")
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    text = _MD_SPECIAL.sub(r"\\\1", text)
    return text.replace("@", "@\u200b")   # a zero-width space stops the mention


def num(value: object, digits: int = 4) -> str:
    if value is None:
        return "–"
    v = float(value)
    if v != 0 and abs(v) < 10 ** -digits:
        return f"{v:.2e}"
    return f"{v:,.{digits}f}".rstrip("0").rstrip(".") if abs(v) < 1000 else f"{v:,.0f}"


def kib(n: object) -> str:
    return "–" if n is None else f"{int(n) / 1024:,.1f} KiB"


def pct(value: object) -> str:
    return "–" if value is None else f"{100 * float(value):.2f} %"


def points(value: object) -> str:
    return "–" if value is None else f"{100 * float(value):+.2f} pts"


def signed_pct(value: object) -> str:
    return "–" if value is None else f"{100 * float(value):+.1f} %"


def check_value(value: object, check: dict) -> str:
    """A check's value in its unit: accuracy as %, drops as points, sizes, ms, ratios."""
    return format_value(check["name"], check["unit"], value)


def environment() -> SandboxedEnvironment:
    env = SandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True,
                               undefined=StrictUndefined, autoescape=False)
    env.filters.update(md=md, num=num, kib=kib, pct=pct, points=points, signed_pct=signed_pct,
                       check_value=check_value)
    return env


def _template_text(name: str) -> str:
    return (resources.files("gate.report") / "templates" / name).read_text(encoding="utf-8")


def render_markdown(report: dict, template: str | None = None) -> str:
    env = environment()
    tpl = env.from_string(template if template is not None else _template_text(DEFAULT_TEMPLATE))
    return tpl.render(r=report, ICON={"pass": "✅", "fail": "❌", "error": "⛔"})
