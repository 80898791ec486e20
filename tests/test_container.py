"""The action as the Actions runner runs it: the image built from the Dockerfile (on a
python:3.11-slim-like base without git), a workspace that is a real git checkout, and a
real pull_request event naming its base and head commits. A PR that switches the policy
from int8 to float16 under `size: {max_increase: "2%"}` fails the step; a README-only PR
is unchanged.

Runs scripts/run-action (the repository's own): with Docker where a daemon answers (CI's
runners), else with buildah on a local Debian base (--local-base; buildah and debootstrap
installed with apt-get when missing). Skipped where neither can work. Marked slow and
container; the image build is cached by the engine between runs.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
RUN_ACTION = ROOT / "scripts" / "run-action"
EVENT = Path(__file__).parent / "fixtures" / "events" / "pull_request.opened.json"
GIT_ENV = {"GIT_AUTHOR_NAME": "dev", "GIT_AUTHOR_EMAIL": "dev@example.com", "GIT_COMMITTER_NAME": "dev",
           "GIT_COMMITTER_EMAIL": "dev@example.com", "PATH": os.environ.get("PATH", "/usr/bin:/bin")}


def docker_daemon() -> bool:
    if shutil.which("docker") is None:
        return False
    try:
        return subprocess.run(["docker", "info"], capture_output=True, check=False, timeout=30).returncode == 0
    except subprocess.TimeoutExpired:
        return False


def engine_args() -> list[str] | None:
    """How this machine runs the action: Docker's daemon, else buildah (installable)."""
    if docker_daemon():
        return ["--engine", "docker"]
    if shutil.which("buildah") is not None or shutil.which("apt-get") is not None:
        return ["--engine", "buildah", "--local-base", "--install-tools"]
    return None


ENGINE = engine_args()
pytestmark = [pytest.mark.slow, pytest.mark.container,
              pytest.mark.skipif(ENGINE is None, reason="no Docker daemon, no buildah and no apt-get to install it")]


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True,
                          env={**GIT_ENV, "HOME": str(repo)}).stdout.strip()


def config(policy: str) -> str:
    return yaml.safe_dump({"model": "model.keras", "data": {"train": "train.npz", "eval": "eval.npz"},
                           "policy": policy, "thresholds": {"size": {"max_increase": "2%"}},
                           "benchmark": {"warmup": 5, "runs": 50}}, sort_keys=False)


@pytest.fixture(scope="module")
def checkout(tmp_path_factory) -> tuple[Path, dict]:
    """main (int8), pr-float16 (policy float16), pr-docs (README only), as commits."""
    repo = tmp_path_factory.mktemp("container") / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    for name in ("model.keras", "train.npz", "eval.npz"):
        shutil.copy(ROOT / "examples" / "digits" / name, repo / name)
    (repo / "gate.yml").write_text(config("int8"))
    (repo / "README.md").write_text("a model\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "main: int8")
    shas = {"main": git(repo, "rev-parse", "HEAD")}
    for branch, change in (("pr-float16", lambda: (repo / "gate.yml").write_text(config("float16"))),
                           ("pr-docs", lambda: (repo / "README.md").write_text("a model, documented\n"))):
        git(repo, "checkout", "-q", "-b", branch, "main")
        change()
        git(repo, "commit", "-q", "-am", branch)
        shas[branch] = git(repo, "rev-parse", "HEAD")
    return repo, shas


def run_action(repo: Path, shas: dict, branch: str, tmp_path: Path, *, build: bool) -> tuple[int, str]:
    git(repo, "checkout", "-q", branch)
    event = json.loads(EVENT.read_text())
    event["pull_request"]["base"].update(sha=shas["main"], ref="main")
    event["pull_request"]["head"].update(sha=shas[branch], ref=branch)
    path = tmp_path / f"event-{branch}.json"
    path.write_text(json.dumps(event))
    cmd = [sys.executable, str(RUN_ACTION), *ENGINE, "--event", str(path), "--workspace", str(repo),
           "--input", "comment=never", *([] if build else ["--no-build"])]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=3600)
    return proc.returncode, proc.stdout + proc.stderr


def test_a_pr_that_grows_the_model_fails_in_the_container(checkout, tmp_path):
    repo, shas = checkout
    code, out = run_action(repo, shas, "pr-float16", tmp_path, build=True)
    assert code == 1, out[-4000:]
    assert "verdict=fail" in out and "size.max_increase FAILED" in out, out[-4000:]
    assert f"merge-base of {shas['pr-float16'][:12]}" in out or shas["main"][:12] in out


def test_a_readme_only_pr_is_unchanged_in_the_container(checkout, tmp_path):
    repo, shas = checkout
    code, out = run_action(repo, shas, "pr-docs", tmp_path, build=False)
    assert code == 0, out[-4000:]
    assert "verdict=pass" in out and "Unchanged against the base branch" in out, out[-4000:]
