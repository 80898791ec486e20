"""The Action with `models:`: a matrix leg (`model` input) and the merge mode that turns
the legs' downloaded reports into one verdict and the one sticky comment (fake GitHub;
saved reports stand in for the TF pipeline)."""
from __future__ import annotations

import json

import pytest
from action_runner import make_runner, saved_report
from github_fake import fake_github_fixture  # noqa: F401

from gate.report.write import write_report


@pytest.fixture
def runner(tmp_path, fake_github, monkeypatch):
    return make_runner(tmp_path, fake_github, monkeypatch)


def upload(runner, name: str, status: str = "pass") -> None:
    """What a leg's artifact looks like once downloaded: gate-reports/gate-report-NAME/NAME/report.json."""
    report = saved_report(status)
    report["name"] = name
    write_report(report, runner.workspace / "gate-reports" / f"gate-report-{name}" / name)


def test_a_matrix_leg_runs_its_model(runner):
    assert runner.run(runner.env(model="detector", comment="never")) == 0
    assert runner.models == ["detector"]


def test_merge_mode_comments_once_and_updates_in_place(runner):
    upload(runner, "detector")
    upload(runner, "classifier", "fail")
    expect = json.dumps(["detector", "classifier", "ranker"])
    code = runner.run(runner.env(mode="merge", expect=expect))
    assert code == 3 and runner.calls == []          # nothing measured; the missing leg is an error
    out = runner.outputs()
    assert out["verdict"] == "error" and out["summary"] == \
        "3 models: 1 pass, 1 fail, 1 error (ranker: error; classifier: fail)"
    (first,) = runner.comments()
    assert "| ranker | ⛔ error |" in first["body"] and "| classifier | ❌ fail |" in first["body"]
    assert any("ranker" in line and line.startswith("::error") for line in runner.lines)

    upload(runner, "ranker")                         # the re-run leg uploaded this time
    assert runner.run(runner.env(mode="merge", expect=expect)) == 1
    (second,) = runner.comments()
    assert second["id"] == first["id"] and "| ranker | ✅ pass |" in second["body"]
    combined = json.loads((runner.workspace / "gate-report" / "report.json").read_text())
    assert [r["name"] for r in combined["rows"]] == ["detector", "classifier", "ranker"]


def test_merge_mode_with_nothing_to_gate_says_so(runner):
    assert runner.run(runner.env(mode="merge", expect="[]")) == 0
    (posted,) = runner.comments()
    assert "nothing needed gating" in posted["body"]


def test_merge_mode_refuses_legs_of_different_gates(runner):
    upload(runner, "detector")
    report = saved_report("pass")
    report.update(name="classifier", versions={**report["versions"], "model-gate": "0.0.1"})
    write_report(report, runner.workspace / "gate-reports" / "gate-report-classifier" / "classifier")
    assert runner.run(runner.env(mode="merge")) == 2
    assert "different gate versions" in runner.summary() and runner.comments() == []


def test_an_unknown_mode_exits_2(runner):
    assert runner.run(runner.env(mode="both")) == 2
    assert "expected one of check, plan, merge" in runner.summary()


def pr_event(base: str, head: str) -> str:
    return json.dumps({"action": "synchronize", "number": 2,
                       "pull_request": {"number": 2, "head": {"sha": head, "ref": "touch", "repo": {"fork": False}},
                                        "base": {"sha": base, "ref": "main"}},
                       "repository": {"full_name": "Codertocat/Hello-World"}})


def test_plan_mode_lists_the_models_a_pull_request_touched(runner):
    import shutil

    from test_fleet import EXAMPLES, NAMES, commit, git, make_repo

    repo = make_repo(runner.workspace / "repo")
    base = git(repo, "rev-parse", "HEAD").strip()
    push = runner.env(event_name="push", event="push.json", mode="plan", **{"working-directory": "repo"})
    assert runner.run(push) == 0
    assert json.loads(runner.outputs()["models"]) == NAMES          # a push gates every model
    git(repo, "checkout", "-qb", "touch")
    shutil.copy(EXAMPLES / "regression" / "eval.npz", repo / "tfl" / "eval.npz")
    commit(repo, "new tfl data")
    head = git(repo, "rev-parse", "HEAD").strip()
    env = runner.env(event=pr_event(base, head), mode="plan", **{"working-directory": "repo"})
    assert runner.run(env) == 0, runner.lines
    assert runner.outputs()["models"] == '["tfl"]' and "tfl: differs: eval" in runner.lines
    assert "Models to gate: tfl." in runner.summary() and runner.calls == []
