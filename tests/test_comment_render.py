"""The comment/report markdown: hostile repo text is neutralised, the change column, the
stages table, the Mermaid charts, and a repo's own template in the sandbox."""
from __future__ import annotations

import re

import pytest
from action_runner import saved_report

from gate.report.render import change, md, render_comment, render_markdown

HOSTILE = "@org/team <img src=x> ` | [x](http://evil) #1 owner/repo#2"


def hostile_report() -> dict:
    r = saved_report("fail")
    r["policy"].update(name=HOSTILE, description=HOSTILE, chain=["int8", HOSTILE])
    r["model"].update(path=HOSTILE, format=HOSTILE, layers=HOSTILE, params=HOSTILE)
    r["benchmark"]["settings"].update(cpu=HOSTILE, runs=HOSTILE, interpreter=HOSTILE)
    r["checks"][0].update(name=HOSTILE, metric=HOSTILE)
    r["candidate"]["quantization"] = HOSTILE
    r["notes"] = [HOSTILE, "# heading\n- list"]
    r["summary"] = HOSTILE
    r["stages"] = [{"name": "original", "kind": "original", "params": 1234, "accuracy": {"top1": 0.9},
                    "weights": {"sparsity": 0.0}, "layers": {HOSTILE: {}}},
                   {"name": HOSTILE, "kind": "prune", "params": HOSTILE, "accuracy": {"top1": 0.85},
                    "weights": {"sparsity": 0.5}, "bytes_raw": 2048, "notes": [HOSTILE]}]
    return r


def table_rows(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("|")]


def unescaped_pipes(line: str) -> int:
    return len(re.findall(r"(?<!\\)\|", line))


def test_hostile_repo_text_is_neutralised():
    text = render_markdown(hostile_report())
    assert "@org" not in text and "@\u200borg" in text                  # no @mention ping
    assert "#1" not in text and "repo#2" not in text                   # no cross-references
    prose = re.sub(r"(?<!\\)`[^`]*`", "", text)  # code spans show HTML and links literally
    assert "<img" not in prose and "&lt;img src=x&gt;" in prose       # no raw HTML
    assert "[x](http://evil)" not in prose and "\\[x\\](http://evil)" in prose   # no link
    assert "\n# heading" not in text and "\n- list" not in text
    for rows in (table_rows(text),):
        header_cells = {unescaped_pipes(r) for r in rows if r.startswith("| Check")}
        checks = [r for r in rows if "fail" in r or "pass" in r]
        assert checks and {unescaped_pipes(r) for r in checks} == header_cells  # no broken table
    mermaid = re.findall(r"```mermaid\n(.*?)```", text, re.DOTALL)
    assert len(mermaid) == 2 and all("evil" not in block and "@" not in block for block in mermaid)


def test_code_spans_cannot_be_closed_early():
    text = render_markdown(hostile_report())
    row = next(r for r in table_rows(text) if "FAIL" in r.upper() and "org" in r)
    assert len(re.findall(r"(?<!\\)`", row)) == 2  # the check name's own span, its backtick replaced


@pytest.mark.parametrize("value", ["@org/team", "<img src=x>", "`", "|", "[x](http://evil)"])
def test_md_filter(value):
    out = md(value)
    assert "@o" not in out and "<" not in out and "](" not in out or "\\]" in out
    assert re.search(r"(?<!\\)[`|]", out) is None


def test_change_column():
    size = {"name": "size_kb.max", "unit": "KiB", "value": 79.0, "reference": 283.5}
    acc = {"name": "accuracy.min", "unit": "", "value": 0.97, "reference": 0.98}
    drop = {"name": "accuracy.max_drop", "unit": "", "value": 0.01, "reference": None}
    assert (change(size), change(acc), change(drop)) == ("-72.1 %", "-1.00 pts", "–")
    text = render_markdown(saved_report())
    assert "| Check | Reference | Candidate | Change | Interval | Limit | Status |" in text and "| -72.1 % |" in text


def test_stages_table_only_when_present():
    assert "### Stages" not in render_markdown(saved_report())
    text = render_markdown(hostile_report())
    assert "| Stage | Kind | Params | Sparsity | Accuracy (top1) | Size, raw |" in text
    assert "| original | original | 1,234 | 0.00 % | 90.00 % | – |" in text
    assert "| prune | @\u200borg/team &lt;img" in text and "| 50.00 % | 85.00 % | 2.0 KiB |" in text


def test_mermaid_charts_of_size_and_latency():
    text = render_markdown(saved_report())
    assert 'title "Size, KiB (.tflite)"' in text and "bar [283.5, 79]" in text
    assert 'y-axis "ms" 0 --> 0.01206' in text and "bar [0.01049, 0.004006]" in text
    assert "xychart-beta" not in render_markdown(saved_report("error"))


@pytest.mark.parametrize("template", [
    "{{ ''.__class__.__mro__ }}",
    "{{ r.__class__.__init__.__globals__ }}",
    "{% set _ = r.checks.append(1) %}x",        # the report is immutable
    "{{ 1 / 0 }}",
    "{% include 'secrets.txt' %}",
    "{% for i in range(100000) %}{% for j in range(100000) %}xxxxxxxx{% endfor %}{% endfor %}",
    "{{ r.nope }}",
    "{% if %}",
])
def test_failing_or_malicious_template_falls_back_to_the_default(template):
    report = saved_report()
    body, warning = render_comment(report, template)
    assert body == render_markdown(report) and report == saved_report()
    assert warning.startswith("comment-template failed (") and "default comment was used" in warning


def test_user_template_sees_report_filters_and_default():
    body, warning = render_comment(saved_report(), "{{ ICON[r.status] }} {{ r.summary | md }} {{ r.checks | length }}"
                                                   "{{ default[:2] }}")
    assert (body, warning) == ("✅ 5 check(s) passed. 5##", None)


def test_a_report_the_default_template_cannot_render_gets_a_minimal_comment():
    report = saved_report()
    report["model"]["file_bytes"] = "<b>not a number</b>"
    body, warning = render_comment(report)
    assert body.startswith("## ✅ model-gate: pass") and "<b>" not in body and "could not be rendered" in warning


def test_a_template_that_loops_without_output_is_stopped(monkeypatch):
    from gate.report import render

    monkeypatch.setattr(render, "USER_RENDER_SECONDS", 0.2)
    slow = "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}"
    body, warning = render_comment(saved_report(), slow)
    assert body.startswith("## ✅") and "took longer than 0.2 s" in warning


def test_inconclusive_and_interval_are_shown():
    import json
    from pathlib import Path

    from gate.report.render import render_markdown

    report = json.loads((Path(__file__).parent / "fixtures" / "reports" / "pass.json").read_text())
    check = dict(report["checks"][0])
    check.update(name="latency.max_regression", metric="latency vs base", unit="x", value=1.04, limit=1.05,
                 reference=1.0, outcome="inconclusive", ci_low=1.01, ci_high=1.08, passed=True)
    report["checks"] = [check]
    text = render_markdown(report)
    assert "1.01× to 1.08×" in text and "⚠️ inconclusive, counted as pass" in text


def test_time_split_names_the_biggest_stages_and_sums_the_rest():
    from gate.report.render import time_split

    timings = {"load": 1.0, "optimize": 20.0, "convert_candidate": 5.0, "benchmark": 3.0, "proxies": 0.5,
               "judge": 0.5}
    line = time_split(timings)
    assert line.startswith("30.0 s: optimize 20.0 s (67 %), convert_candidate 5.0 s (17 %)")
    assert line.endswith("2 more stages 1.0 s (3 %)")
    assert time_split({}) == "" and time_split(None) == "" and time_split({"x": "bad"}) == ""
    report = saved_report("pass.json")
    report["timings_s"] = timings
    assert "- Time: 30.0 s: optimize 20.0 s (67 %)" in render_markdown(report)
