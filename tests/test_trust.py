"""Trust comes from the base branch: a pull request cannot grant itself trust_model_code.
Real git repositories (a shallow clone included) and real event payloads."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from gate.config.load import load_config
from gate.run.parent.gitrepo import Repo
from gate.run.parent.trust import decide

FIXTURES = Path(__file__).parent / "fixtures" / "events"


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(cwd), *args], check=True, capture_output=True, text=True,
                          env={"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
                               "GIT_COMMITTER_EMAIL": "t@t", "HOME": str(cwd), "PATH": "/usr/bin:/bin"}
                          ).stdout.strip()


def make_repo(tmp_path: Path, base_trust: bool, pr_trust: bool) -> tuple[Path, str]:
    origin = tmp_path / "origin"
    origin.mkdir()
    git(origin, "init", "-q", "-b", "main")
    for name in ("m.keras", "eval.npz"):
        (origin / name).write_bytes(b"x")

    def commit(trust: bool, msg: str) -> str:
        cfg = "model: m.keras\ndata: {eval: eval.npz}\npolicy: float32\n"
        (origin / "gate.yml").write_text(f"# {msg}\n" + cfg + ("trust_model_code: true\n" if trust else ""))
        git(origin, "add", "-A")
        git(origin, "commit", "-q", "-m", msg)
        return git(origin, "rev-parse", "HEAD")

    base = commit(base_trust, "base")
    git(origin, "checkout", "-q", "-b", "pr")
    commit(pr_trust, "pr")
    git(origin, "commit", "-q", "--allow-empty", "-m", "more")
    return origin, base


def pr_env(tmp_path: Path, base_sha: str) -> dict:
    event = json.loads((FIXTURES / "pull_request.opened.json").read_text())
    event["pull_request"]["base"]["sha"] = base_sha
    path = tmp_path / "event.json"
    path.write_text(json.dumps(event))
    return {"GITHUB_EVENT_NAME": "pull_request", "GITHUB_EVENT_PATH": str(path)}


def test_pull_request_cannot_grant_itself_trust(tmp_path):
    origin, base = make_repo(tmp_path, base_trust=False, pr_trust=True)
    decision = decide(load_config(origin / "gate.yml"), pr_env(tmp_path, base))
    assert decision.trust_model_code is False
    assert "cannot grant itself trust" in decision.notes[0]


def test_trust_set_on_the_base_branch_is_honoured(tmp_path):
    origin, base = make_repo(tmp_path, base_trust=True, pr_trust=True)
    decision = decide(load_config(origin / "gate.yml"), pr_env(tmp_path, base))
    assert decision.trust_model_code is True and base[:12] in decision.source


def test_base_trust_does_not_apply_when_the_pr_does_not_ask(tmp_path):
    origin, base = make_repo(tmp_path, base_trust=True, pr_trust=False)
    assert decide(load_config(origin / "gate.yml"), pr_env(tmp_path, base)).trust_model_code is False


def test_outside_a_pull_request_the_working_tree_counts(tmp_path):
    origin, _ = make_repo(tmp_path, base_trust=False, pr_trust=True)
    decision = decide(load_config(origin / "gate.yml"), {"GITHUB_EVENT_NAME": "push"})
    assert decision.trust_model_code is True and decision.source.startswith("working tree")
    assert decide(load_config(origin / "gate.yml"), {}).trust_model_code is True


def test_shallow_clone_fetches_the_base_commit(tmp_path):
    origin, base = make_repo(tmp_path, base_trust=True, pr_trust=True)
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", "--depth=1", "--branch", "pr", f"file://{origin}", str(clone)],
                   check=True, capture_output=True)
    repo = Repo(clone)
    assert not repo.has_commit(base)
    decision = decide(load_config(clone / "gate.yml"), pr_env(tmp_path, base))
    assert decision.trust_model_code is True and repo.has_commit(base)


def test_unreachable_base_commit_means_no_trust(tmp_path):
    origin, _ = make_repo(tmp_path, base_trust=True, pr_trust=True)
    decision = decide(load_config(origin / "gate.yml"), pr_env(tmp_path, "f" * 40))
    assert decision.trust_model_code is False and "failed" in decision.notes[0]


@pytest.mark.parametrize("env", [{"GITHUB_EVENT_NAME": "pull_request"},
                                 {"GITHUB_EVENT_NAME": "pull_request", "GITHUB_EVENT_PATH": "/nonexistent"}])
def test_pull_request_without_event_file_means_no_trust(tmp_path, env):
    origin, _ = make_repo(tmp_path, base_trust=True, pr_trust=True)
    assert decide(load_config(origin / "gate.yml"), env).trust_model_code is False


def test_calibrate_is_refused_exactly_as_check_when_a_pr_grants_itself_trust(tmp_path, tiny, monkeypatch):
    """gate calibrate goes through the same trust decision and worker as gate check: a pull
    request that sets trust_model_code on a model with a Lambda layer gets the same refusal
    from both, and the Lambda never runs."""
    import shutil

    import hostile_models as hm
    import yaml
    from click.testing import CliRunner

    from gate.cli import main
    from gate.measure.tfenv import keras

    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    canary = tmp_path / "canary"
    hm.lambda_model(keras(), canary).save(repo / "m.keras")
    shutil.copy(tiny.eval, repo / "eval.npz")
    cfg = {"model": "m.keras", "data": {"eval": "eval.npz"}, "policy": "float32"}
    (repo / "gate.yml").write_text(yaml.safe_dump(cfg))
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "base")
    base = git(repo, "rev-parse", "HEAD")
    git(repo, "checkout", "-q", "-b", "pr")
    (repo / "gate.yml").write_text(yaml.safe_dump({**cfg, "trust_model_code": True}))
    git(repo, "commit", "-q", "-am", "pr: trust me")
    for key, value in pr_env(tmp_path, base).items():
        monkeypatch.setenv(key, value)

    runner = CliRunner()
    checked = runner.invoke(main, ["check", "-c", str(repo / "gate.yml"), "-o", str(tmp_path / "out"),
                                   "--no-baseline"])
    calibrated = runner.invoke(main, ["calibrate", "-c", str(repo / "gate.yml"), "-n", "2"])
    assert checked.exit_code == calibrated.exit_code == 2, (checked.output, calibrated.output)
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    refusal = report["error"]["message"]
    assert "layer 'evil' (class Lambda)" in refusal and "is not allowed" in refusal
    assert refusal in calibrated.output
    assert report["trust"]["trust_model_code"] is False and "cannot grant itself trust" in report["notes"][0]
    assert not canary.exists()
