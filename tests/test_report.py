"""report.json against its JSON Schema, markdown rendering, escaping, atomic writes."""
from __future__ import annotations

import json

import jsonschema
import pytest

from gate.report.model import SCHEMA_VERSION, Report, json_schema
from gate.report.render import md, render_markdown


def test_report_json_matches_the_published_schema(passing_run):
    _, report = passing_run
    jsonschema.Draft202012Validator.check_schema(json_schema())
    jsonschema.validate(report, json_schema())
    assert report["schema_version"] == SCHEMA_VERSION
    assert Report.model_validate(report).status == "pass"


def test_schema_refuses_a_report_with_a_wrong_field(passing_run):
    _, report = passing_run
    broken = {**report, "status": "great"}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, json_schema())


def test_markdown_has_verdict_checks_and_measurements(passing_run):
    _, report = passing_run
    text = render_markdown(report)
    assert text.startswith("## ✅ model-gate: pass — policy int8")
    assert "| Check | Reference | Candidate | Change | Interval | Limit | Status |" in text
    assert text.count("✅ pass") == len(report["checks"])
    assert "Reference (float32 TFLite)" in text and "Candidate (int8)" in text
    assert "<details><summary>Details</summary>" in text and "tensorflow 2.21" in text


def test_error_report_markdown(tmp_path):
    from gate.errors import ConfigError
    from gate.report.build import finish

    err = ConfigError("unknown key", file="gate.yml", field="thresholds.foo", line=7, hint="check it")
    report = finish({}, status="error", exit_code=2, summary=err.render(), error=err)
    text = render_markdown(report)
    assert text.startswith("## ⛔ model-gate: error")
    assert "`gate.yml` line 7, field `thresholds.foo`: unknown key" in text and "Hint: check it" in text


@pytest.mark.parametrize("hostile,forbidden", [
    ("@org/team", "@org"),
    ("<img src=x onerror=alert(1)>", "<img"),
    ("a | b", " | b"),
    ("`code`", "`code`"),
    ("[x](http://evil)", "[x](http://evil)"),
    ("line\nbreak", "\n"),
])
def test_md_filter_neutralises_repo_text(hostile, forbidden):
    assert forbidden not in md(hostile)


def test_hostile_policy_name_is_escaped_in_the_report(passing_run):
    _, report = passing_run
    evil = json.loads(json.dumps(report))
    evil["policy"]["name"] = "<script>@admin|`x`"
    evil["policy"]["description"] = "[click](http://evil)"
    text = render_markdown(evil)
    assert "<script>" not in text and "@admin" not in text and "[click](http://evil)" not in text


def test_writes_are_atomic(tmp_path, monkeypatch, passing_run):
    import gate.report.write as w

    _, report = passing_run
    w.write_report(report, tmp_path)
    before = (tmp_path / "report.json").read_text()

    with pytest.raises(TypeError):        # a report that cannot be serialized: fails before any write
        w.write_report({**report, "summary": object()}, tmp_path)
    # Nothing was replaced: the previous pair is intact, no temp files are left.
    assert (tmp_path / "report.json").read_text() == before
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_a_markdown_rendering_failure_still_writes_both_reports(tmp_path, monkeypatch):
    """Seen in the zoo: a template the running code could not render (a filter missing)
    raised out of write_report and no report.json was written. Now report.json is written
    and report.md says it could not be rendered."""
    import json

    import gate.report.write as write

    def broken(report):
        raise RuntimeError("No filter named 'x'")

    monkeypatch.setattr(write, "render_markdown", broken)
    report = {"status": "pass", "summary": "5 check(s) passed."}
    json_path, md_path = write.write_report(report, tmp_path)
    assert json.loads(json_path.read_text()) == report
    text = md_path.read_text()
    assert "5 check(s) passed." in text and "could not be rendered: RuntimeError" in text
