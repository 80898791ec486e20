"""`gate report comment`: post the sticky PR comment from another workflow's artifact.

Pull requests from forks run with a read-only token, so their workflow uploads
gate-report/ (report.json + pr.json) and a trusted `workflow_run` workflow comments.
Everything in the artifact is untrusted: the report is validated, the PR number must be
an integer, and nothing is posted unless the PR's current head is the commit the
workflow_run says it built (a forged pr.json or a stale report is refused).
"""
from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from gate.action.entry import post_comment
from gate.errors import EXIT_PASS, BadInputError
from gate.github.actions import annotation
from gate.github.client import GitHubClient, GitHubError
from gate.github.event import valid_repo_name
from gate.report.load import read_report
from gate.report.render import render_comment

PR_FILE_MAX_BYTES = 4096
_SHA = re.compile(r"^[0-9a-f]{40}$")


@dataclass(frozen=True)
class Target:
    """The pull request a comment goes to, and the commit its report must be for."""

    repo: str
    pr: int
    head_sha: str

    @classmethod
    def parse(cls, repo: str, pr: int | None, pr_file: Path | None, head_sha: str) -> Target:
        if not valid_repo_name(repo):
            raise BadInputError(f"expected OWNER/NAME, got {repo!r}", field="--repo")
        head_sha = head_sha.strip().lower()
        if not _SHA.match(head_sha):
            raise BadInputError(f"expected a 40-hex commit SHA, got {head_sha[:80]!r}", field="--head-sha")
        if (pr is None) == (pr_file is None):
            raise BadInputError("give exactly one of --pr and --pr-file", field="--pr")
        if pr_file is not None:
            pr = read_pr_file(pr_file, head_sha)
        return cls(repo, pr, head_sha)


def read_pr_file(path: Path, head_sha: str) -> int:
    """The PR number from pr.json ({"pr": int, "head_sha": str}), checked against head_sha."""
    if path.stat().st_size > PR_FILE_MAX_BYTES:
        raise BadInputError(f"larger than {PR_FILE_MAX_BYTES} bytes", file=str(path))
    try:
        data = json.loads(path.read_bytes())
    except ValueError as exc:
        raise BadInputError(f"not valid JSON: {exc}", file=str(path)) from None
    pr = data.get("pr") if isinstance(data, dict) else None
    if isinstance(pr, bool) or not isinstance(pr, int) or pr <= 0:
        raise BadInputError(f"expected a positive integer, got {json.dumps(pr)[:40]}", file=str(path), field="pr")
    sha = data.get("head_sha")
    if not isinstance(sha, str) or sha.lower() != head_sha:
        raise BadInputError(f"the artifact is for commit {str(sha)[:40]!r}, not {head_sha}",
                            file=str(path), field="head_sha",
                            hint="pass --head-sha from the trusted event (github.event.workflow_run.head_sha)")
    return pr


def check_head(client: GitHubClient, target: Target) -> None:
    """Refuse unless the PR's head commit is still target.head_sha."""
    try:
        pull = client.get_json(f"/repos/{target.repo}/pulls/{target.pr}")
    except GitHubError as exc:
        if exc.status == 404:
            raise BadInputError(f"no pull request #{target.pr} in {target.repo}", field="pr") from None
        raise
    head = ((pull or {}).get("head") or {}).get("sha") if isinstance(pull, dict) else None
    if not isinstance(head, str) or head.lower() != target.head_sha:
        raise BadInputError(
            f"refusing to comment: PR #{target.pr}'s head is {str(head)[:40]}, the report is for {target.head_sha}",
            field="--head-sha", hint="the PR got new commits (their run will comment) or the artifact is forged")


def comment_from_artifact(report_json: Path, target: Target, *, token: str, env: Mapping[str, str],
                          marker: str, mode: str, template: Path | None) -> int:
    """Validate, verify the head, render and post. Returns the exit code; GitHub refusing
    the comment is GitHubError's code (3), with a warning."""
    say = print
    report = read_report(report_json)
    if not token:
        raise BadInputError("no token: the token variable is empty", field="--token-env")
    client = GitHubClient.from_env(env, token)
    check_head(client, target)
    body, warning = render_comment(report, template.read_text(encoding="utf-8") if template else None)
    if warning:
        say(annotation("warning", warning, title="model-gate"))
    result, why_not = post_comment(client, target.repo, target.pr, report, body, marker, mode)
    if result.warning:
        say(annotation("warning", result.warning, title="model-gate: PR comment"))
        return GitHubError("").exit_code
    say(f"PR #{target.pr} comment {result.action}" + (f": {why_not}" if why_not else f" {result.url or ''}"))
    return EXIT_PASS
