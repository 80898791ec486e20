"""action.yml, the Dockerfile and the example workflows: valid against GitHub's published
schemas (vendored by check-jsonschema) and consistent with what `gate action` does."""
from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement

from gate.action.entry import COMMENT_MODES, FAIL_ON, Inputs

ROOT = Path(__file__).resolve().parent.parent
ACTION = yaml.safe_load((ROOT / "action.yml").read_text())
WORKFLOWS = sorted((ROOT / "examples" / "workflows").glob("*.yml"))


def check_jsonschema(schema: str, *files: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "check_jsonschema", "--builtin-schema", schema,
                           *map(str, files)], check=False, capture_output=True, text=True)


def test_action_yml_matches_githubs_schema():
    result = check_jsonschema("vendor.github-actions", ROOT / "action.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert ACTION["runs"] == {"using": "docker", "image": "Dockerfile"}


def test_example_workflows_match_githubs_schema():
    assert {p.name for p in WORKFLOWS} >= {"model-gate.yml", "fork-safe-gate.yml",
                                           "fork-safe-comment.yml", "release.yml"}
    result = check_jsonschema("vendor.github-workflows", *WORKFLOWS)
    assert result.returncode == 0, result.stdout + result.stderr


def test_action_inputs_are_the_ones_gate_action_reads():
    fields = {f.name.replace("_", "-"): f.default for f in dataclasses.fields(Inputs)}
    assert set(ACTION["inputs"]) == set(fields)
    for name, spec in ACTION["inputs"].items():
        if name != "github-token":
            assert str(spec["default"]) == fields[name], name
    assert ACTION["inputs"]["github-token"]["default"] == "${{ github.token }}"
    for name, allowed in (("comment", COMMENT_MODES), ("fail-on", FAIL_ON)):
        assert all(mode in ACTION["inputs"][name]["description"] for mode in allowed)


def test_action_outputs_are_the_ones_gate_action_writes(tmp_path, monkeypatch):
    from action_runner import make_runner
    from github_fake import FakeGitHub

    fake = FakeGitHub().start()
    try:
        runner = make_runner(tmp_path, fake, monkeypatch)
        runner.run(runner.env())
    finally:
        fake.stop()
    assert set(runner.outputs()) == set(ACTION["outputs"])


def test_dockerfile_builds_as_the_runner_expects():
    text = (ROOT / "Dockerfile").read_text()
    lines = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert lines[:2] == ["ARG BASE_IMAGE=python:3.11-slim", "FROM ${BASE_IMAGE}"]
    assert 'ENTRYPOINT ["/opt/gate/bin/gate", "action"]' in lines
    assert "safe" in text and "directory" in text
    # The dependency layer comes before the source is copied.
    assert text.index("requirements/action.txt") < text.index("COPY gate/")
    ignored = (ROOT / ".dockerignore").read_text().splitlines()
    assert ignored[1] == "*" and "!requirements/action.txt" in ignored


def test_the_image_lock_satisfies_pyproject():
    import tomllib

    pins = {}
    for line in (ROOT / "requirements" / "action.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            name, version = line.split("==")
            pins[name.lower().replace("_", "-")] = version
    for dep in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]:
        req = Requirement(dep)
        name = req.name.lower().replace("_", "-")
        assert name in pins, f"requirements/action.txt has no pin for {name}"
        assert req.specifier.contains(pins[name]), f"{name}=={pins[name]} is not {req.specifier}"


@pytest.mark.parametrize("workflow", ["fork-safe-gate.yml", "fork-safe-comment.yml"])
def test_fork_setup_never_runs_pr_code_with_a_write_token(workflow):
    data = yaml.safe_load((ROOT / "examples" / "workflows" / workflow).read_text())
    triggers = data[True]  # YAML 1.1 reads `on:` as True
    assert "pull_request_target" not in triggers
    for job in data["jobs"].values():
        writes = {k for k, v in job.get("permissions", {}).items() if v == "write"}
        uses = [s.get("uses", "") for s in job["steps"]]
        if "workflow_run" in triggers:
            assert writes == {"pull-requests"} and not any("checkout" in u for u in uses)
        else:
            assert writes == set()


# -- the workflows users copy: README, docs/action.md, examples/workflows -------------------

SPECIAL_WITH = {"entrypoint", "args"}          # docker actions: override runs.entrypoint / args


def yaml_blocks(markdown: Path) -> list[str]:
    import re

    return re.findall(r"```yaml\n(.*?)```", markdown.read_text(), flags=re.S)


def gate_steps(workflow: dict) -> list[dict]:
    return [step for job in (workflow.get("jobs") or {}).values() for step in job.get("steps", [])
            if "/model-gate@" in str(step.get("uses", ""))]


def documented_workflows() -> list[tuple[str, dict]]:
    out = [(p.name, yaml.safe_load(p.read_text())) for p in WORKFLOWS]
    for doc in (ROOT / "README.md", ROOT / "docs" / "action.md"):
        for i, block in enumerate(yaml_blocks(doc)):
            data = yaml.safe_load(block)
            if isinstance(data, dict) and gate_steps(data):
                out.append((f"{doc.name}#{i}", data))
    return out


@pytest.mark.parametrize("name,workflow", documented_workflows(), ids=lambda v: v if isinstance(v, str) else "")
def test_copied_workflows_use_only_declared_inputs_and_one_placeholder(name, workflow):
    steps = gate_steps(workflow)
    assert steps, name
    for step in steps:
        unknown = set(step.get("with") or {}) - set(ACTION["inputs"]) - SPECIAL_WITH
        assert not unknown, f"{name}: model-gate has no input {sorted(unknown)} (action.yml)"
        assert step["uses"] == "OWNER/model-gate@v0.1.0", f"{name}: {step['uses']}"


def test_the_readme_workflow_is_a_valid_workflow_that_zizmor_accepts(tmp_path):
    [block] = [b for b in yaml_blocks(ROOT / "README.md") if "model-gate@" in b]
    assert block.count("OWNER/") == 1 and "<" not in block and "your-org" not in block
    workflow = tmp_path / ".github" / "workflows" / "model-gate.yml"
    workflow.parent.mkdir(parents=True)
    workflow.write_text(block)
    result = check_jsonschema("vendor.github-workflows", workflow)
    assert result.returncode == 0, result.stdout + result.stderr
    zizmor = run_zizmor(workflow)
    assert zizmor.returncode == 0, zizmor.stdout + zizmor.stderr


def run_zizmor(*files: Path) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).with_name("zizmor")
    return subprocess.run([str(exe), "--offline", "--config", str(ROOT / "tests" / "fixtures" / "zizmor.yml"),
                           *map(str, files)], capture_output=True, text=True, check=False)


def test_example_and_release_workflows_pass_zizmor():
    files = [*WORKFLOWS, *sorted((ROOT / ".github" / "workflows").glob("*.yml"))]
    result = run_zizmor(*files)
    assert result.returncode == 0, result.stdout + result.stderr
