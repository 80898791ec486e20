"""Comparing against the base branch in a real git repository: merge-base, a PR that
grows the model, an unchanged PR, a base without a model, a baseline report."""
from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import run_check

from gate.run.parent.baseline import resolve_ref
from gate.run.parent.gitrepo import Repo

ENV = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t",
       "PATH": "/usr/bin:/bin"}


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(cwd), *args], check=True, capture_output=True, text=True,
                          env={**ENV, "HOME": str(cwd)}).stdout.strip()


def commit_all(repo: Path, msg: str) -> str:
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", msg)
    return git(repo, "rev-parse", "HEAD")


THRESHOLDS = {"size": {"max_increase": "2%"}, "accuracy": {"max_drop_vs_base": 0.5, "max_drop": 0.5},
              "latency": {"max_regression": "300%"}}


def base_repo(tmp_path: Path, tiny, config: dict) -> tuple[Path, str]:
    """A git repository whose main branch has the tiny model, its data and `config` as
    gate.yml, checked out on a new branch `feature`; returns (root, main's sha)."""
    root = tmp_path / "repo"
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    for name in ("train.npz", "eval.npz"):
        shutil.copy(getattr(tiny, name.split(".")[0]), root / name)
    shutil.copy(tiny.keras, root / "model.keras")
    (root / "gate.yml").write_text(yaml.safe_dump(config))
    base = commit_all(root, "base")
    git(root, "checkout", "-q", "-b", "feature")
    return root, base


@pytest.fixture()
def repo(tmp_path, tiny):
    return base_repo(tmp_path, tiny, {
        "model": "model.keras", "data": {"train": "train.npz", "eval": "eval.npz"}, "policy": "dynamic-range",
        "thresholds": THRESHOLDS, "benchmark": {"warmup": 2, "runs": 10}})


def wider_model(path: Path, tiny) -> None:
    from conftest import build_tiny_model

    from gate.measure.tfenv import keras

    k = keras()
    k.utils.set_random_seed(1)
    model = k.Sequential([k.layers.Input((8, 8, 1)), k.layers.Conv2D(9, 3, activation="relu", name="conv"),
                          k.layers.Flatten(), k.layers.Dense(10, activation="softmax", name="classifier")])
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(tiny.x_train, tiny.y_train, epochs=8, verbose=0)
    model.save(path)
    assert build_tiny_model  # same architecture family as the base (8 filters -> 9: ~12 % more weights)


def test_merge_base_is_the_fork_point(repo):
    root, base = repo
    (root / "notes.txt").write_text("x")
    commit_all(root, "feature work")
    git(root, "checkout", "-q", "main")
    (root / "other.txt").write_text("y")
    commit_all(root, "main moved on")
    git(root, "checkout", "-q", "feature")
    ref = resolve_ref(Repo(root), {}, "main")
    assert ref.sha == base and "merge-base" in ref.label


def test_pr_that_grows_the_model_fails_size_max_increase(repo, tiny, tmp_path):
    root, base = repo
    wider_model(root / "model.keras", tiny)
    commit_all(root, "wider conv")
    result, report = run_check(tmp_path, root / "gate.yml", "--baseline", "main")
    checks = {c["name"]: c for c in report["checks"]}
    assert report["baseline"]["sha"] == base and report["baseline"]["unchanged"] is False
    assert result.exit_code == 1, result.output
    assert not checks["size.max_increase"]["passed"] and checks["size.max_increase"]["value"] > 0.05
    assert checks["accuracy.max_drop_vs_base"]["passed"]
    assert checks["latency.max_regression"]["outcome"] in ("pass", "inconclusive")
    assert checks["latency.max_regression"]["ci_low"] is not None
    assert any(k.startswith("base_") for k in report["timings_s"])   # the base was measured in this run
    assert report["baseline"]["candidate"]["paired"] is True


def test_unchanged_pr_is_reported_without_a_second_optimization(repo, tmp_path):
    root, _ = repo
    (root / "README.md").write_text("docs only")
    commit_all(root, "docs")
    result, report = run_check(tmp_path, root / "gate.yml", "--baseline", "main")
    assert result.exit_code == 0, result.output
    assert report["baseline"]["unchanged"] is True
    assert "Unchanged against the base branch" in report["summary"]
    assert not any(k.startswith("base_") for k in report["timings_s"])
    assert {c["name"]: c["outcome"] for c in report["checks"]}["latency.max_regression"] == "unchanged"


def test_base_without_a_model_judges_absolute_thresholds_only(tmp_path, tiny):
    root = tmp_path / "repo"
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    (root / "README.md").write_text("new project")
    commit_all(root, "init")
    git(root, "checkout", "-q", "-b", "feature")
    shutil.copy(tiny.keras, root / "model.keras")
    shutil.copy(tiny.eval, root / "eval.npz")
    (root / "gate.yml").write_text(yaml.safe_dump({"model": "model.keras", "data": {"eval": "eval.npz"},
                                                   "policy": "float32", "thresholds": THRESHOLDS}))
    commit_all(root, "add model")
    result, report = run_check(tmp_path, root / "gate.yml", "--baseline", "main")
    assert result.exit_code == 0, result.output
    assert report["baseline"]["has_model"] is False
    assert any("the base has no gate.yml" in n for n in report["notes"])
    regression = [c for c in report["checks"] if c["name"] in ("size.max_increase", "latency.max_regression")]
    assert [c["outcome"] for c in regression] == ["not_applicable", "not_applicable"]
    assert all(c["passed"] for c in regression) and "this pull request adds the model" in regression[0]["detail"]
    assert "not applicable" in report["summary"]


REGRESSION_ONLY = {"size": {"max_increase": "2%"}, "latency": {"max_regression": "5%"}}


def plain_dir_config(tmp_path, tiny, **extra) -> Path:
    """A gate.yml outside any git repository."""
    d = tmp_path / "plain"
    d.mkdir()
    shutil.copy(tiny.keras, d / "model.keras")
    shutil.copy(tiny.eval, d / "eval.npz")
    (d / "gate.yml").write_text(yaml.safe_dump({"model": "model.keras", "data": {"eval": "eval.npz"},
                                                "policy": "float32", **extra}))
    return d / "gate.yml"


def test_regression_limits_without_a_readable_base_are_not_judged_and_fail(tmp_path, tiny):
    result, report = run_check(tmp_path, plain_dir_config(tmp_path, tiny, thresholds=REGRESSION_ONLY))
    assert result.exit_code == 1, result.output
    assert report["status"] == "fail"
    assert [(c["name"], c["outcome"], c["passed"]) for c in report["checks"]] == [
        ("size.max_increase", "not_judged", False), ("latency.max_regression", "not_judged", False)]
    assert "not inside a git repository" in report["checks"][0]["detail"]
    assert "NOT JUDGED" in report["summary"] and "NOT JUDGED" in result.output
    assert "not judged, counted as fail" in (tmp_path / "out" / "report.md").read_text()


def test_not_judged_pass_switch_passes_and_says_so(tmp_path, tiny):
    cfg = plain_dir_config(tmp_path, tiny, thresholds={**REGRESSION_ONLY, "not_judged": "pass"})
    result, report = run_check(tmp_path, cfg)
    assert result.exit_code == 0, result.output
    assert report["summary"].startswith("Nothing was judged: size.max_increase NOT JUDGED")
    assert "counted as pass (thresholds.not_judged: pass)" in report["summary"]


def test_no_baseline_flag_makes_regression_limits_not_applicable(tmp_path, tiny):
    result, report = run_check(tmp_path, plain_dir_config(tmp_path, tiny, thresholds=REGRESSION_ONLY),
                               "--no-baseline")
    assert result.exit_code == 0, result.output
    assert {c["outcome"] for c in report["checks"]} == {"not_applicable"}
    assert report["summary"].startswith("Nothing was judged") and "--no-baseline" in report["summary"]


def test_no_thresholds_is_not_a_bare_pass(tmp_path, tiny):
    result, report = run_check(tmp_path, plain_dir_config(tmp_path, tiny))
    assert result.exit_code == 0 and report["checks"] == []
    assert report["summary"] == "No thresholds configured: nothing was judged (set thresholds in gate.yml)."


def test_unknown_baseline_ref_is_exit_2(repo, tmp_path):
    root, _ = repo
    result, report = run_check(tmp_path, root / "gate.yml", "--baseline", "no-such-branch")
    assert result.exit_code == 2 and "no-such-branch" in report["error"]["message"]


def test_baseline_report_with_its_candidate(tmp_path, tiny, passing_run):
    from conftest import write_config

    first = tmp_path / "first"
    first.mkdir()
    cfg = write_config(first, tiny, policy="dynamic-range", thresholds={})
    run_check(first, cfg)
    second = tmp_path / "second"
    second.mkdir()
    cfg2 = write_config(second, tiny, policy="int8", thresholds=THRESHOLDS)
    result, report = run_check(second, cfg2, "--baseline-report", str(first / "out" / "report.json"))
    names = {c["name"] for c in report["checks"]}
    assert {"size.max_increase", "accuracy.max_drop_vs_base", "latency.max_regression"} <= names
    assert report["baseline"]["candidate"]["paired"] is True
    assert json.dumps(report)  # plain JSON, no NaN
    assert np.isfinite([c["value"] for c in report["checks"]]).all()


def test_regression_metric_against_the_base_is_paired(tmp_path):
    """A regression model: the PR changes the policy (int8 -> float16); its MAE is compared
    with the base candidate's per example (paired bootstrap), on the PR's eval examples."""
    examples = Path(__file__).resolve().parent.parent / "examples" / "regression"
    root = tmp_path / "repo"
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    for name in ("model.keras", "train.npz", "eval.npz"):
        shutil.copy(examples / name, root / name)
    config = {"model": "model.keras", "data": {"train": "train.npz", "eval": "eval.npz"}, "policy": "int8",
              "thresholds": {"metrics": {"mae": {"max_increase_vs_base": "2%"}}},
              "benchmark": {"warmup": 2, "runs": 10}}
    (root / "gate.yml").write_text(yaml.safe_dump(config))
    commit_all(root, "base")
    git(root, "checkout", "-q", "-b", "feature")
    config["policy"] = "float16"
    (root / "gate.yml").write_text(yaml.safe_dump(config))
    commit_all(root, "float16")
    result, report = run_check(tmp_path, root / "gate.yml", "--baseline", "main")
    assert result.exit_code == 0, result.output
    [check] = report["checks"]
    assert check["name"] == "metrics.mae.max_increase_vs_base" and check["ci_low"] is not None
    assert "paired bootstrap over 111 examples" in check["detail"]
    assert report["baseline"]["candidate"]["metrics"]["mae"] > 0
    assert "metrics.mae.max_increase_vs_base" in report["baseline"]["comparison"]
