"""A GitHub Actions runner in miniature for the action tests: a workspace, an event file,
the file commands, INPUT_* variables, and saved reports instead of the TF pipeline."""
from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from pathlib import Path

from github_fake import FAKE_TOKEN, FakeGitHub
from test_github_actions import parse_output_file

from gate.report.model import Report
from gate.report.write import write_report

FIXTURES = Path(__file__).parent / "fixtures"
EVENTS = FIXTURES / "events"
PR_REPO, PR_NUMBER = "Codertocat/Hello-World", 2
PR_HEAD = "ec26c3e57ca3a959ca5aad62de7213c562f8c821"


def saved_report(status: str = "pass") -> dict:
    """A real report (the digits example), turned into a fail or error report on request."""
    report = json.loads((FIXTURES / "reports" / "pass.json").read_text())
    if status == "fail":
        check = report["checks"][0]
        check.update(passed=False, limit=50.0, margin=50.0 - check["value"], line=4,
                     message=f"size_kb.max FAILED: candidate size (raw) {check['value']:.1f} KiB "
                             f"(limit <= 50.0 KiB), over the limit by {check['value'] - 50:.1f} KiB")
        report.update(status="fail", exit_code=1, summary=f"1 of 5 check(s) failed: {check['message']}")
    elif status == "error":
        report = {k: report[k] for k in ("created_at", "versions", "environment")}
        report.update(status="error", exit_code=2, summary="gate.yml:3, field 'policy': unknown preset",
                      error={"kind": "config", "message": "unknown preset 'int9'", "file": "gate.yml",
                             "field": "policy", "line": 3, "hint": "gate policy list", "exit_code": 2},
                      schema_version=1, tool="model-gate", checks=[], notes=[], timings_s={})
    return Report.model_validate(report).model_dump(mode="json")


@dataclass
class Runner:
    """One workspace; `env(...)` gives the variables of one step run in it."""

    root: Path
    fake: FakeGitHub
    reports: list[dict] = field(default_factory=list)  # what produce_report returns, in order
    models: list[str] = field(default_factory=list)   # the `model` input each call got
    calls: list[tuple[Path, Path]] = field(default_factory=list)
    cache_dirs: list[Path | None] = field(default_factory=list)
    sleeps: list[float] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)

    @property
    def workspace(self) -> Path:
        return self.root / "workspace"

    def env(self, event: str = "pull_request.opened.json", event_name: str = "pull_request",
            **inputs: str) -> dict[str, str]:
        files = self.root / "files"
        files.mkdir(exist_ok=True)
        for name in ("output", "summary"):
            (files / name).write_text("")
        event_path = files / "event.json"
        event_path.write_text((EVENTS / event).read_text() if event.endswith(".json") else event)
        env = {"GITHUB_ACTIONS": "true", "CI": "true", "GITHUB_EVENT_NAME": event_name,
               "GITHUB_EVENT_PATH": str(event_path), "GITHUB_OUTPUT": str(files / "output"),
               "GITHUB_STEP_SUMMARY": str(files / "summary"), "GITHUB_WORKSPACE": str(self.workspace),
               "GITHUB_API_URL": self.fake.url, "GITHUB_REPOSITORY": PR_REPO,
               "INPUT_GITHUB-TOKEN": self.fake.token, "INPUT_CONFIG": "gate.yml",
               "INPUT_WORKING-DIRECTORY": ".", "INPUT_OUTPUT-DIR": "gate-report",
               "INPUT_COMMENT": "always", "INPUT_FAIL-ON": "fail", "INPUT_COMMENT-TEMPLATE": ""}
        env.update({f"INPUT_{k.upper().replace('_', '-')}": v for k, v in inputs.items()})
        return env

    def produce_report(self, config: Path, out_dir: Path, cache_dir: Path | None = None, model: str = "") -> dict:
        self.calls.append((config, out_dir))
        self.models.append(model)
        self.cache_dirs.append(cache_dir)
        report = copy.deepcopy(self.reports.pop(0) if len(self.reports) > 1 else self.reports[0])
        write_report(report, out_dir)
        return report

    def run(self, env: dict[str, str]) -> int:
        from gate.action.entry import run_action

        self.lines.clear()
        return run_action(env, self.lines.append)

    def outputs(self) -> dict[str, str]:
        return parse_output_file((self.root / "files" / "output").read_text())

    def summary(self) -> str:
        return (self.root / "files" / "summary").read_text()

    def comments(self) -> list[dict]:
        return self.fake.issue_comments(PR_REPO, PR_NUMBER)


def make_runner(tmp_path: Path, fake: FakeGitHub, monkeypatch, status: str = "pass") -> Runner:
    import gate.action.entry
    from gate.github.client import GitHubClient

    runner = Runner(tmp_path, fake, [saved_report(status)])
    runner.workspace.mkdir()
    monkeypatch.chdir(runner.workspace)
    monkeypatch.setattr(gate.action.entry, "produce_report", runner.produce_report)
    monkeypatch.setattr(gate.action.entry, "github_client", lambda env, token: GitHubClient.from_env(
        env, token, sleep=runner.sleeps.append))
    return runner


__all__ = ["FAKE_TOKEN", "PR_HEAD", "PR_NUMBER", "PR_REPO", "Runner", "make_runner", "saved_report"]
