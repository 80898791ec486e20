"""Sticky pull request comment: one per gate config, updated in place on every run.

A hidden marker names the config; the comment is ours only if it also has our author,
so quoting the marker elsewhere cannot hijack it. Failures never raise: they come back
as action "skipped" with a warning, and the caller decides what that means.
"""
from __future__ import annotations

import itertools
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from gate.github.client import (
    GitHubClient,
    GitHubError,
    GitHubPermissionError,
    GitHubUnavailableError,
    GitHubValidationError,
)
from gate.github.event import valid_repo_name

MAX_BODY_CHARS = 65536  # GitHub's limit for an issue comment body
DEFAULT_AUTHOR = "github-actions[bot]"
TRUNCATION_NOTE = ("\n\n---\n> [!WARNING]\n> This report was cut to fit GitHub's "
                   "comment size limit. The full report is in the job summary and the "
                   "workflow's report artifact.\n")
_MARKER_ID_UNSAFE = re.compile(r"[^A-Za-z0-9._/@+-]")
_TOO_LONG = re.compile(r"too long.*?maximum is (\d+)", re.IGNORECASE)

log = logging.getLogger("gate.github")

Action = Literal["created", "updated", "unchanged", "skipped"]


@dataclass(frozen=True)
class CommentResult:
    action: Action
    id: int | None = None
    url: str | None = None
    warning: str | None = None


def marker_for(marker_id: str) -> str:
    """The hidden marker; the id is reduced to safe characters so it cannot end the comment."""
    safe = _MARKER_ID_UNSAFE.sub("_", marker_id.strip())[:200] or "default"
    return f"<!-- model-gate:{safe} -->"


def _close_open_blocks(text: str) -> str:
    """Closing ``` fence / </details> for blocks a cut left open."""
    closing = ""
    fences = sum(1 for line in text.split("\n") if line.lstrip().startswith("```"))
    if fences % 2:
        closing += "\n```"
    open_details = text.count("<details") - text.count("</details>")
    closing += "\n</details>" * max(open_details, 0)
    return closing


def fit_body(body: str, limit: int = MAX_BODY_CHARS) -> str:
    """Cut body on a line boundary, with a note, so it is at most limit characters.

    The first line (the marker) is kept.
    """
    if len(body) <= limit:
        return body
    budget = max(limit - len(TRUNCATION_NOTE), 0)
    head = ""
    for _ in range(3):  # closing tags eat budget; shrink until everything fits
        head = body[:budget]
        cut = head.rfind("\n")
        if cut > 0:
            head = head[:cut]
        head += _close_open_blocks(head)
        if len(head) + len(TRUNCATION_NOTE) <= limit:
            break
        budget -= len(head) + len(TRUNCATION_NOTE) - limit
    return (head + TRUNCATION_NOTE)[:limit]


def _same_body(a: str, b: str) -> bool:
    return a.replace("\r\n", "\n").strip() == b.replace("\r\n", "\n").strip()


def find_comment(client: GitHubClient, repo: str, pr_number: int, marker_id: str,
                 author_login: str = DEFAULT_AUTHOR) -> dict[str, Any] | None:
    """The oldest comment on the PR (all pages) with our marker AND our author, or None."""
    marker = marker_for(marker_id)
    for comment in client.paginate(f"/repos/{repo}/issues/{pr_number}/comments"):
        if not isinstance(comment, dict):
            continue
        user = comment.get("user") or {}
        login = user.get("login") if isinstance(user, dict) else None
        body = comment.get("body")
        if (isinstance(login, str) and login.lower() == author_login.lower()
                and isinstance(body, str) and marker in body
                and isinstance(comment.get("id"), int)):
            return comment
    return None


def _result(action: Action, comment: Any) -> CommentResult:
    comment = comment if isinstance(comment, dict) else {}
    cid, url = comment.get("id"), comment.get("html_url")
    return CommentResult(action, cid if isinstance(cid, int) else None,
                         url if isinstance(url, str) else None)


def _send(call: Callable[[str, Any], Any], path: str, text: str) -> Any:
    """POST/PATCH the body; if GitHub still says it is too long, cut further and resend."""
    for _ in range(3):
        try:
            return call(path, {"body": text})
        except GitHubValidationError as exc:
            match = _TOO_LONG.search(exc.message)
            if not match:
                raise
            limit = int(match.group(1))
            limit = limit if limit < len(text) else len(text) * 3 // 4
            log.warning("GitHub says the comment is too long; cutting to %d characters", limit)
            text = fit_body(text, limit)
    return call(path, {"body": text})


def _upsert(client: GitHubClient, repo: str, pr_number: int, text: str,
            marker_id: str, author: str) -> CommentResult:
    lost_post: GitHubUnavailableError | None = None
    for attempt in itertools.count(1):
        existing = find_comment(client, repo, pr_number, marker_id, author)
        if existing is not None:
            created = "created" if lost_post else None  # our lost POST did land
            if _same_body(str(existing.get("body")), text):
                return _result(created or "unchanged", existing)
            updated = _send(client.patch_json, f"/repos/{repo}/issues/comments/{existing['id']}",
                            text)
            return _result(created or "updated", updated)
        if lost_post is not None and attempt > client.max_attempts:
            raise lost_post
        try:
            return _result("created", _send(client.post_json,
                                            f"/repos/{repo}/issues/{pr_number}/comments", text))
        except GitHubUnavailableError as exc:
            if not exc.ambiguous:
                raise
            # The POST may have been applied: look before posting again.
            log.warning("%s; checking whether the comment landed before retrying", exc.message)
            lost_post = exc
            client.sleep(client.backoff_delay(attempt))
    raise AssertionError("unreachable")  # pragma: no cover


def upsert_comment(client: GitHubClient, repo: str, pr_number: int, body: str,
                   marker_id: str, author_login: str | None = None) -> CommentResult:
    """Create or update the PR's sticky comment for marker_id; never raises GitHubError.

    author_login is the token's identity; by default GET /user is asked, and when that is
    not allowed (Actions installation tokens) it is github-actions[bot].
    """
    if not valid_repo_name(repo):
        return CommentResult("skipped", warning=f"not commenting: bad repository name {repo!r}")
    if isinstance(pr_number, bool) or not isinstance(pr_number, int) or pr_number <= 0:
        return CommentResult("skipped", warning="not commenting: no pull request number")
    marker = marker_for(marker_id)
    text = fit_body(body if body.startswith(marker) else f"{marker}\n{body}")
    try:
        author = author_login or client.viewer_login() or DEFAULT_AUTHOR
        result = _upsert(client, repo, pr_number, text, marker_id, author)
    except GitHubPermissionError as exc:
        return CommentResult("skipped", warning=(
            f"could not comment on PR #{pr_number}: {exc.message}. Pull requests from forks "
            "get a read-only token; the report is in the job summary."))
    except GitHubError as exc:
        return CommentResult("skipped",
                             warning=f"could not comment on PR #{pr_number}: {exc.message}")
    log.info("PR #%d comment %s (id %s)", pr_number, result.action, result.id)
    return result
