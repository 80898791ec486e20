"""`gate report comment`: the trusted workflow_run half of the fork setup. The artifact
is untrusted: the report is validated, the PR number is an integer, and nothing is
posted unless the PR's current head is the commit the workflow_run built."""
from __future__ import annotations

import json

import pytest
from action_runner import saved_report
from click.testing import CliRunner
from github_fake import FAKE_TOKEN, FakeGitHub, fake_github_fixture  # noqa: F401

from gate.cli import main

REPO, PR = "octo-org/octo-repo", 2
HEAD = "3484a3fb816e0859fd6e1cea078d76385ff50625"  # workflow_run.completed.json's head_sha


@pytest.fixture
def artifact(tmp_path, fake_github: FakeGitHub):
    fake_github.pulls[(REPO, PR)] = HEAD
    (tmp_path / "report.json").write_text(json.dumps(saved_report("fail")))
    (tmp_path / "pr.json").write_text(json.dumps({"pr": PR, "head_sha": HEAD}))
    return tmp_path


def comment(fake: FakeGitHub, artifact, *args: str, head: str = HEAD, env: dict | None = None):
    argv = ["report", "comment", str(artifact / "report.json"), "--repo", REPO, "--head-sha", head, *args]
    return CliRunner().invoke(main, argv, env={"GITHUB_TOKEN": FAKE_TOKEN, "GITHUB_API_URL": fake.url,
                                               **(env or {})})


def test_posts_then_updates_from_pr_json(fake_github, artifact):
    first = comment(fake_github, artifact, "--pr-file", str(artifact / "pr.json"))
    assert first.exit_code == 0, first.output
    second = comment(fake_github, artifact, "--pr", str(PR), "--mode", "on-change")
    assert second.exit_code == 0 and "has not changed" in second.output
    (posted,) = fake_github.issue_comments(REPO, PR)
    assert posted["body"].startswith("<!-- model-gate:gate.yml -->\n## ❌ model-gate: fail")
    assert fake_github.calls("GET")[0].path == f"/repos/{REPO}/pulls/{PR}"


def test_token_from_another_variable(fake_github, artifact):
    result = comment(fake_github, artifact, "--pr", "2", "--token-env", "GATE_TOKEN",
                     env={"GITHUB_TOKEN": "", "GATE_TOKEN": FAKE_TOKEN})
    assert result.exit_code == 0, result.output
    assert comment(fake_github, artifact, "--pr", "2", env={"GITHUB_TOKEN": ""}).exit_code == 2


def test_refuses_when_the_pr_has_moved_on(fake_github, artifact):
    fake_github.pulls[(REPO, PR)] = "f" * 40
    result = comment(fake_github, artifact, "--pr-file", str(artifact / "pr.json"))
    assert result.exit_code == 2
    assert f"refusing to comment: PR #{PR}'s head is {'f' * 40}, the report is for {HEAD}" in result.stderr
    assert fake_github.calls("POST") == [] and fake_github.calls("PATCH") == []


@pytest.mark.parametrize("pr_json,message", [
    ({"pr": "2", "head_sha": HEAD}, "field 'pr': expected a positive integer, got \"2\""),
    ({"pr": 2.0, "head_sha": HEAD}, "expected a positive integer"),
    ({"pr": True, "head_sha": HEAD}, "expected a positive integer"),
    ({"pr": -1, "head_sha": HEAD}, "expected a positive integer"),
    ({"pr": 2, "head_sha": "a" * 40}, "the artifact is for commit"),
    ([2], "expected a positive integer"),
])
def test_a_forged_pr_json_is_refused(fake_github, artifact, pr_json, message):
    (artifact / "pr.json").write_text(json.dumps(pr_json))
    result = comment(fake_github, artifact, "--pr-file", str(artifact / "pr.json"))
    assert result.exit_code == 2 and message in result.stderr
    assert fake_github.requests == []


def test_another_prs_number_is_refused(fake_github, artifact):
    fake_github.pulls[(REPO, 3)] = "b" * 40
    assert comment(fake_github, artifact, "--pr", "3").exit_code == 2
    assert comment(fake_github, artifact, "--pr", "4").exit_code == 2  # no such PR
    assert fake_github.calls("POST") == []


def test_an_invalid_report_is_refused(fake_github, artifact):
    report = saved_report()
    report["status"] = "<img src=x>"
    (artifact / "report.json").write_text(json.dumps(report))
    result = comment(fake_github, artifact, "--pr", "2")
    assert result.exit_code == 2 and "not a valid model-gate report" in result.stderr
    assert fake_github.requests == []


@pytest.mark.parametrize("args,message", [
    (["--pr", "2", "--repo", "../x"], "expected OWNER/NAME"),
    (["--pr", "2", "--head-sha", "HEAD"], "expected a 40-hex commit SHA"),
    ([], "give exactly one of --pr and --pr-file"),
    (["--pr", "0"], "0 is not in the range x>=1"),
])
def test_bad_arguments(fake_github, artifact, args, message):
    result = comment(fake_github, artifact, *args)
    assert result.exit_code == 2 and message in result.output + result.stderr


def test_github_refusing_the_comment_exits_3_with_a_warning(fake_github, artifact):
    fake_github.fail("POST", rf"/repos/{REPO}/issues/{PR}/comments", "fork")
    result = comment(fake_github, artifact, "--pr", "2")
    assert result.exit_code == 3 and result.stdout.startswith("::warning title=model-gate%3A PR comment::")
