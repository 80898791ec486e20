"""`gate action` end to end against the local fake GitHub, with the real event payloads.

Saved reports stand in for the TF pipeline (gate.action.entry.produce_report is replaced);
one test runs the real pipeline on the tiny model."""
from __future__ import annotations

import json

import pytest
from action_runner import PR_HEAD, PR_NUMBER, PR_REPO, make_runner, saved_report
from github_fake import FakeGitHub, fake_github_fixture  # noqa: F401

from gate.report.render import md

PR_EVENTS = ["pull_request.opened.json", "pull_request.opened.with-null-body.json",
             "pull_request.opened.with-organization.json", "pull_request.reopened.json",
             "pull_request.synchronize.json"]
COMMENTS = rf"/repos/{PR_REPO}/issues/{PR_NUMBER}/comments"


@pytest.fixture
def runner(tmp_path, fake_github, monkeypatch):
    return make_runner(tmp_path, fake_github, monkeypatch)


def errors(lines: list[str]) -> list[str]:
    return [line for line in lines if line.startswith("::error")]


def warnings(lines: list[str]) -> list[str]:
    return [line for line in lines if line.startswith("::warning")]


@pytest.mark.parametrize("event", PR_EVENTS)
def test_pr_event_reports_everywhere(runner, event):
    assert runner.run(runner.env(event)) == 0
    out = runner.outputs()
    assert out["verdict"] == "pass" and out["summary"] == "5 check(s) passed."
    assert (out["report-json"], out["report-markdown"]) == ("gate-report/report.json", "gate-report/report.md")
    assert out["size-bytes"] == "80896" and out["compression"] == "3.6795"
    assert out["accuracy"] == "0.983333" and out["latency-p50-ms"] == "0.004006"
    (comment,) = runner.comments()
    assert out["comment-url"] == comment["html_url"]
    assert comment["body"].startswith("<!-- model-gate:gate.yml -->\n## ✅ model-gate: pass")
    assert "## ✅ model-gate: pass" in runner.summary() and "PR comment: created." in runner.summary()
    pr = json.loads((runner.workspace / "gate-report" / "pr.json").read_text())
    assert pr == {"pr": PR_NUMBER, "head_sha": PR_HEAD}
    assert errors(runner.lines) == [] and warnings(runner.lines) == []


def test_second_run_updates_the_same_comment(runner):
    second = saved_report("fail")
    runner.reports.append(second)
    runner.run(runner.env("pull_request.opened.json"))
    assert runner.run(runner.env("pull_request.synchronize.json")) == 1
    (comment,) = runner.comments()
    assert "## ❌ model-gate: fail" in comment["body"]
    assert len(runner.fake.calls("POST")) == 1 and len(runner.fake.calls("PATCH")) == 1
    assert "PR comment: updated." in runner.summary()


def test_two_configs_on_one_pr_keep_two_comments(runner):
    (runner.workspace / "b").mkdir()
    runner.run(runner.env())
    runner.run(runner.env(working_directory="b"))
    runner.run(runner.env(working_directory="b"))
    assert [c["body"].split("\n")[0] for c in runner.comments()] == [
        "<!-- model-gate:gate.yml -->", "<!-- model-gate:b/gate.yml -->"]
    assert runner.calls[1] == (runner.calls[1][0], runner.calls[1][0].parent / "gate-report")


@pytest.mark.parametrize("event,name", [("push.json", "push"), ("release.published.json", "release"),
                                        ('{"ref": "refs/heads/main", "inputs": {}}', "workflow_dispatch")])
def test_non_pr_events_report_without_commenting(runner, event, name):
    assert runner.run(runner.env(event, event_name=name)) == 0
    assert runner.fake.requests == [] and runner.outputs()["verdict"] == "pass"
    assert f"this run is not for a pull request ({md(name)})" in runner.summary()
    assert not (runner.workspace / "gate-report" / "pr.json").exists()


@pytest.mark.parametrize("status,fail_on,code", [
    ("pass", "fail", 0), ("fail", "fail", 1), ("error", "fail", 2),
    ("pass", "error", 0), ("fail", "error", 0), ("error", "error", 2),
    ("pass", "never", 0), ("fail", "never", 0), ("error", "never", 0)])
def test_exit_code_follows_fail_on(runner, status, fail_on, code):
    runner.reports[:] = [saved_report(status)]
    assert runner.run(runner.env(fail_on=fail_on)) == code
    assert runner.outputs()["verdict"] == status and runner.comments()


def test_failed_checks_and_errors_are_annotated(runner):
    runner.reports[:] = [saved_report("fail")]
    (runner.workspace / "gate.yml").write_text("model: m.keras\nthresholds:\n  size_kb:\n    max: 50\n")
    runner.run(runner.env())
    (line,) = errors(runner.lines)
    assert line.startswith("::error file=gate.yml,line=4,title=model-gate%3A size_kb.max::size_kb.max FAILED")
    runner.reports[:] = [saved_report("error")]
    runner.run(runner.env())
    (line,) = errors(runner.lines)
    assert line == ("::error file=gate.yml,line=3,title=model-gate%3A config error::"
                    "unknown preset 'int9'%0Ahint: gate policy list")


def test_bad_input_is_an_annotated_error_before_anything_runs(runner):
    assert runner.run(runner.env(comment="sometimes")) == 2
    (line,) = errors(runner.lines)
    assert "field 'comment': expected one of always, on-change, on-failure, never, got 'sometimes'" in line
    assert "could not run" in runner.summary() and runner.calls == [] and runner.fake.requests == []
    assert runner.run(runner.env(working_directory="nowhere")) == 2


@pytest.mark.parametrize("fault", ["fork", "rate_limit", "server_error", "too_long"])
def test_comment_trouble_never_changes_the_verdict(runner, fault):
    runner.reports[:] = [saved_report("fail")]
    fake: FakeGitHub = runner.fake
    if fault == "fork":
        fake.fail("POST", COMMENTS, "fork")
    elif fault == "rate_limit":
        fake.fail("POST", COMMENTS, "secondary_rate_limit", retry_after=7)
    elif fault == "server_error":
        fake.fail("POST", COMMENTS, "server_error")
    else:
        fake.body_limit = 1500
    assert runner.run(runner.env()) == 1
    assert runner.outputs()["verdict"] == "fail" and "## ❌ model-gate: fail" in runner.summary()
    comments = runner.comments()
    if fault == "fork":
        assert comments == [] and "PR comment: not posted" in runner.summary()
        (line,) = warnings(runner.lines)
        assert "Resource not accessible by integration" in line
    else:
        assert len(comments) == 1 and warnings(runner.lines) == []
    if fault == "rate_limit":
        assert 7.0 in runner.sleeps
    if fault == "too_long":
        assert len(comments[0]["body"]) <= 1500 and "cut to fit" in comments[0]["body"]


def test_fork_pr_warning_points_at_the_two_workflow_setup(runner):
    from action_runner import EVENTS

    data = json.loads((EVENTS / "pull_request.opened.json").read_text())
    data["pull_request"]["head"]["repo"].update(full_name="someone/Hello-World", fork=True)
    runner.fake.fail("POST", COMMENTS, "fork")
    assert runner.run(runner.env(json.dumps(data))) == 0
    (line,) = warnings(runner.lines)
    assert "workflow_run" in line and "gate report comment" in line


def test_on_change_and_on_failure(runner):
    passing, failing = saved_report("pass"), saved_report("fail")
    env = runner.env(comment="on-change")
    runner.reports[:] = [passing]
    runner.run(env)
    assert runner.comments() == []  # green and no comment yet: stay quiet
    runner.reports[:] = [failing]
    runner.run(env)
    runner.run(env)  # same result again: not rewritten
    assert len(runner.comments()) == 1 and runner.fake.calls("PATCH") == []
    assert "has not changed" in runner.summary()
    runner.reports[:] = [passing]
    runner.run(runner.env(comment="on-failure"))
    (comment,) = runner.comments()
    assert "model-gate: pass" in comment["body"]  # an existing comment turns green


def test_comment_never_posts_nothing(runner):
    runner.run(runner.env(comment="never"))
    assert runner.fake.requests == [] and "`comment: never`" in runner.summary()


def test_repo_comment_template_and_a_hostile_one(runner):
    (runner.workspace / "ok.j2").write_text("Gate says {{ r.status | upper }}.\n\n{{ default }}")
    runner.run(runner.env(comment_template="ok.j2"))
    assert runner.comments()[0]["body"].split("\n")[1] == "Gate says PASS."
    (runner.workspace / "evil.j2").write_text("{{ ''.__class__.__mro__[1].__subclasses__() }}")
    runner.run(runner.env(comment_template="evil.j2"))
    body = runner.comments()[0]["body"]
    assert "## ✅ model-gate: pass" in body and "subclasses" not in body
    (line,) = warnings(runner.lines)
    assert "comment-template failed" in line and "the default comment was used" in line


def test_the_token_is_masked_and_never_written(tmp_path, fake_github, monkeypatch, capsys):
    """Through the CLI as the container runs it, on the paths that mention GitHub's replies."""
    from click.testing import CliRunner

    from gate.cli import main

    token = "ghp_RECOGNIZABLEsecret0123456789abcdefXYZ"
    fake_github.token = token
    runner = make_runner(tmp_path, fake_github, monkeypatch, "fail")
    fake_github.fail("GET", COMMENTS, "server_error", times=10)
    result = CliRunner().invoke(main, ["action"], env=runner.env(comment="on-change"))
    assert result.exit_code == 1, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == f"::add-mask::{token}" and all(token not in line for line in lines[1:])
    assert token not in result.stderr and token not in capsys.readouterr().out
    written = [p.read_text() for p in (runner.workspace / "gate-report").iterdir()]
    assert len(written) == 3  # report.json, report.md, pr.json
    for text in written + [runner.summary(), (tmp_path / "files" / "output").read_text()]:
        assert token not in text
    assert "could not read the PR's comments" in result.stdout


@pytest.mark.slow
def test_real_pipeline_through_gate_action(tiny, tmp_path, fake_github, monkeypatch):
    from action_runner import Runner
    from click.testing import CliRunner
    from conftest import write_config

    from gate.cli import main

    runner = Runner(tmp_path, fake_github)
    runner.workspace.mkdir()
    monkeypatch.chdir(runner.workspace)
    write_config(runner.workspace, tiny)
    result = CliRunner().invoke(main, ["action"], env=runner.env())
    assert result.exit_code == 0, result.output
    out = runner.outputs()
    assert out["verdict"] == "pass" and int(out["size-bytes"]) > 0 and float(out["accuracy"]) > 0.5
    report = json.loads((runner.workspace / out["report-json"]).read_text())
    (comment,) = runner.comments()
    assert report["summary"] in comment["body"].replace("\\", "") and "xychart-beta" in comment["body"]


@pytest.mark.parametrize("mode,status,existing,why_not", [
    ("always", "pass", None, None),
    ("never", "fail", None, "comment: never"),
    ("on-failure", "pass", None, "the gate passed and there is no comment yet (on-failure)"),
    ("on-failure", "fail", None, None),
    ("on-failure", "pass", "<!-- model-gate-result: 0123456789abcdef -->", None),
    ("on-change", "pass", None, "the gate passed and there is no comment yet (on-change)"),
    ("on-change", "error", None, None),
    ("on-change", "pass", "<!-- model-gate-result: 0123456789abcdef -->",
     "the result has not changed since the comment was written (on-change)"),
    ("on-change", "pass", "<!-- model-gate-result: fedcba9876543210 -->", None),
    ("on-change", "pass", "an old comment without a digest", None),
])
def test_comment_decision(mode, status, existing, why_not):
    from gate.action.entry import comment_decision

    assert comment_decision(mode, status, existing, "0123456789abcdef") == why_not


def test_reports_are_handed_to_the_workspace_owner(runner):
    import os

    if os.geteuid() != 0:
        pytest.skip("only root can change owners")
    os.chown(runner.workspace, 1001, 1001)
    runner.run(runner.env())
    owners = {(p.stat().st_uid, p.stat().st_gid) for p in (runner.workspace / "gate-report").rglob("*")}
    assert owners == {(1001, 1001)}


def test_a_crash_while_commenting_is_only_a_warning(runner, monkeypatch):
    import gate.action.entry

    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(gate.action.entry, "post_comment", broken)
    runner.reports[:] = [saved_report("fail")]
    assert runner.run(runner.env()) == 1
    assert "PR comment: failed (RuntimeError)." in runner.summary() and runner.outputs()["verdict"] == "fail"


@pytest.mark.parametrize("fail_on,code", [("fail", 3), ("never", 0)])
def test_an_action_crash_still_writes_the_summary(runner, monkeypatch, fail_on, code):
    import gate.action.entry

    def crash(config, out_dir, cache_dir=None, model=""):
        raise OSError("disk full")

    monkeypatch.setattr(gate.action.entry, "produce_report", crash)
    assert runner.run(runner.env(fail_on=fail_on)) == code
    assert "internal error: OSError: disk full" in runner.summary() and errors(runner.lines)
