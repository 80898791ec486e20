"""How figures, paths and lines read wherever a report is shown (terminal, report.md, PR
comment): accuracy changes in points, ratios as ×, one thousands format, paths relative to
the repository, and an 80-column terminal that cuts no name and no word."""
from __future__ import annotations

import io
import re

from action_runner import saved_report
from rich.console import Console

from gate import units
from gate.report.paths import relative_paths, repo_roots
from gate.report.render import render_comment, render_markdown
from gate.report.terminal import print_report
from gate.verdict.check import Check


def test_a_margin_between_two_percentages_is_in_points():
    c = Check(name="accuracy.min", metric="accuracy", value=0.9833, limit=0.995, direction=">=", unit="",
              passed=False)
    assert c.message == ("accuracy.min FAILED: accuracy 98.33 % (limit >= 99.50 %), "
                         "under the limit by 1.17 pts")
    grew = Check(name="size.max_increase", metric="size change vs base", value=0.07, limit=0.05, direction="<=",
                 unit="%", passed=False)
    assert grew.message.endswith("(limit <= +5.00 %), over the limit by 2.00 pts")
    ratio = Check(name="compression.min", metric="compression", value=2.0, limit=3.0, direction=">=", unit="x",
                  passed=False)
    assert ratio.message.endswith("2.00× (limit >= 3.00×), under the limit by 1.00")


def test_ratios_are_multiples_never_a_percent_change():
    report = saved_report()
    comp = next(c for c in report["checks"] if c["name"] == "compression.min")
    row = next(line for line in render_markdown(report).splitlines() if "compression.min" in line)
    cells = [cell.strip() for cell in row.split("|")]
    assert cells[4] == units.ratio(comp["value"] / comp["reference"])      # the change column
    assert "%" not in row and cells[3] == f"{comp['value']:.2f}×"
    assert units.check_change("", 0.98, 0.97) == "-1.00 pts"
    assert units.check_change("KiB", 100.0, 50.0) == "-50.0 %"


def test_counts_and_sizes_have_one_thousands_format_everywhere():
    report = saved_report()
    report["model"]["params"] = 71754
    report["stages"] = [{"name": "original", "kind": "original", "params": 71754, "seconds": 1234.5,
                         "bytes_raw": 290324, "bytes_gzip": 266767, "accuracy": {"top1": 0.98}, "weights": {}}]
    text = render_markdown(report)
    assert "| Parameters" in text and "71,754" in text and "71754" not in text
    assert "283.5 KiB" in text
    out = _terminal(report, 80)
    assert "71,754" in out and "283.5" in out and "290,324" not in out     # KiB on the terminal too
    assert "1,234.5" in out


def _terminal(report: dict, width: int) -> str:
    buf = io.StringIO()
    print_report(report, Console(file=buf, highlight=False, width=width, color_system=None), quiet=False)
    return buf.getvalue()


LONG_NAMES = ("accuracy.max_drop_vs_base", "proxies.nonzero_parameters.max_increase", "latency.max_regression")


def test_an_80_column_terminal_cuts_no_check_name_stage_second_or_word():
    report = saved_report("fail")
    template = report["checks"][-1]
    for name in LONG_NAMES:
        report["checks"].append({**template, "name": name, "outcome": "not_judged", "passed": False,
                                 "value": None, "ci_low": None, "ci_high": None})
    report["stages"] = [{"name": "pruned_and_clustered", "kind": "prune", "params": 1_234_567, "seconds": 1234.5,
                         "bytes_raw": 12_345_678, "bytes_gzip": 2_345_678, "accuracy": {"top1": 0.9},
                         "weights": {"sparsity": 0.8, "max_unique_per_channel": 16}}]
    report["summary"] = "1 of 8 check(s) failed: " + report["checks"][0]["message"] + " " + "word " * 40
    out = _terminal(report, 80)
    lines = out.splitlines()
    assert max(len(line) for line in lines) <= 80
    assert "…" not in out
    for c in report["checks"]:
        assert any(c["name"] in line for line in lines), c["name"]
    assert any("pruned_and_clustered" in line and "1,234.5" in line for line in lines)
    words = set(out.split())
    assert {w for w in report["summary"].split()} <= words      # wrapped between words, none split


def test_report_md_and_comment_paths_are_relative_to_the_repo(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GITHUB_WORKSPACE", "/github/workspace")
    report = saved_report("error")
    report["error"].update(message="model not found: /github/workspace/examples/m.keras", file=str(tmp_path /
                                                                                                   "gate.yml"))
    report["notes"] = [f"read {tmp_path}/data/eval.npz", "from /home/runner/work/app/app/models/a.keras"]
    for text in (render_markdown(report), render_comment(report)[0],
                 render_comment(report, "{{ r.error.message }} {{ r.notes | join(' ') }}")[0]):
        assert "/github/workspace" not in text and str(tmp_path) not in text and "/home/runner" not in text
        assert "examples/m.keras" in text and "eval.npz" in text and "models/a.keras" in text
    assert relative_paths("/elsewhere/github/workspace/x", repo_roots({}, "/nowhere")) == \
        "/elsewhere/github/workspace/x"
    assert re.search(r"`gate\.yml`", render_markdown(report))


def test_the_readme_sample_is_what_gate_check_prints_at_80_columns():
    """README.md's sample is pasted from a real `gate check` (its report.json is
    tests/fixtures/reports/readme.json): rendered again, the terminal part must match."""
    import json
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    report = json.loads((root / "tests" / "fixtures" / "reports" / "readme.json").read_text())
    readme = (root / "README.md").read_text(encoding="utf-8")
    block = readme.split("## What a run looks like", 1)[1].split("```\n", 2)[1]
    shown = [line for line in block.splitlines() if not line.startswith(("· ", "report: "))]
    printed = [line.rstrip() for line in _terminal(report, 80).splitlines()]
    assert shown == printed
