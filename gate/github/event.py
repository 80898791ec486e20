"""The triggering workflow event, read from GITHUB_EVENT_PATH.

The payload is untrusted input: every field used is type-checked, and a bad file
raises BadInputError naming the file and the field.
"""
from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from gate.errors import BadInputError

MAX_EVENT_BYTES = 25 * 1024 * 1024  # GitHub caps webhook payloads at 25 MB
PULL_REQUEST_EVENTS = ("pull_request", "pull_request_target")
_REPO_NAME = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")
_SHA = re.compile(r"^[0-9a-f]{40}([0-9a-f]{24})?$")
_ZERO_SHA = re.compile(r"^0+$")


@dataclass(frozen=True)
class Event:
    """What the gate needs to know about the run's trigger."""

    name: str
    action: str | None
    repo: str | None
    default_branch: str | None
    pr_number: int | None
    head_sha: str | None
    base_sha: str | None
    base_ref: str | None
    head_ref: str | None
    is_fork: bool

    @property
    def is_pull_request(self) -> bool:
        return self.pr_number is not None


class _Payload:
    """Typed, path-reporting access into the decoded JSON."""

    def __init__(self, data: Any, file: str):
        self.data = data
        self.file = file

    def _fail(self, field: str, expected: str, got: Any) -> BadInputError:
        return BadInputError(f"expected {expected}, got {type(got).__name__}",
                             file=self.file, field=field,
                             hint="the event file is written by the GitHub runner; "
                                  "check GITHUB_EVENT_PATH points at a webhook payload")

    def get(self, field: str, kind: type | tuple[type, ...]) -> Any:
        """Value at a dotted path; None when absent or null anywhere along the path."""
        node = self.data
        walked = []
        for part in field.split("."):
            if node is None:
                return None
            if not isinstance(node, dict):
                raise self._fail(".".join(walked) or "(root)", "an object", node)
            walked.append(part)
            node = node.get(part)
        if node is None:
            return None
        if not isinstance(node, kind) or (isinstance(node, bool) and bool not in _as_tuple(kind)):
            raise self._fail(field, _describe(kind), node)
        return node

    def sha(self, field: str) -> str | None:
        value = self.get(field, str)
        if value is None or _ZERO_SHA.match(value):
            return None
        if not _SHA.match(value):
            raise BadInputError(f"expected a hex commit SHA, got {value[:80]!r}",
                                file=self.file, field=field)
        return value

    def pr_number(self, field: str) -> int | None:
        value = self.get(field, int)
        if value is not None and value <= 0:
            raise BadInputError(f"expected a positive pull request number, got {value}",
                                file=self.file, field=field)
        return value


def _as_tuple(kind: type | tuple[type, ...]) -> tuple[type, ...]:
    return kind if isinstance(kind, tuple) else (kind,)


def _describe(kind: type | tuple[type, ...]) -> str:
    names = {str: "a string", int: "an integer", bool: "a boolean", dict: "an object",
             list: "an array"}
    return " or ".join(names.get(k, k.__name__) for k in _as_tuple(kind))


def _same_repo(a: str | None, b: str | None) -> bool:
    return a is not None and b is not None and a.lower() == b.lower()


def parse_event(name: str, data: Any, *, file: str = "<event>", sha: str | None = None) -> Event:
    """Build an Event from a decoded payload. sha (GITHUB_SHA) fills in a missing head SHA."""
    if not isinstance(data, dict):
        raise BadInputError(f"expected a JSON object, got {type(data).__name__}",
                            file=file, field="(root)")
    p = _Payload(data, file)
    repo = p.get("repository.full_name", str)
    common = dict(name=name, action=p.get("action", str), repo=repo,
                  default_branch=p.get("repository.default_branch", str))

    if name in PULL_REQUEST_EVENTS:
        head_repo = p.get("pull_request.head.repo.full_name", str)
        base_repo = p.get("pull_request.base.repo.full_name", str) or repo
        # head.repo is null when the fork was deleted; that is still a fork PR.
        return Event(**common,
                     pr_number=p.pr_number("pull_request.number") or p.pr_number("number"),
                     head_sha=p.sha("pull_request.head.sha"),
                     base_sha=p.sha("pull_request.base.sha"),
                     base_ref=p.get("pull_request.base.ref", str),
                     head_ref=p.get("pull_request.head.ref", str),
                     is_fork=not _same_repo(head_repo, base_repo))

    if name == "workflow_run":
        prs = p.get("workflow_run.pull_requests", list) or []
        first = _Payload(prs[0], file) if prs else None
        if first is not None and not isinstance(first.data, dict):
            raise first._fail("workflow_run.pull_requests[0]", "an object", first.data)
        head_repo = p.get("workflow_run.head_repository.full_name", str)
        return Event(**common,
                     pr_number=first.pr_number("number") if first else None,
                     head_sha=p.sha("workflow_run.head_sha"),
                     base_sha=first.sha("base.sha") if first else None,
                     base_ref=first.get("base.ref", str) if first else None,
                     head_ref=p.get("workflow_run.head_branch", str),
                     is_fork=head_repo is not None and not _same_repo(head_repo, repo))

    if name == "push":
        ref = p.get("ref", str)
        return Event(**common, pr_number=None,
                     head_sha=p.sha("after") or sha, base_sha=p.sha("before"),
                     base_ref=None, head_ref=ref, is_fork=False)

    if name == "release":
        return Event(**common, pr_number=None, head_sha=sha, base_sha=None, base_ref=None,
                     head_ref=p.get("release.tag_name", str), is_fork=False)

    # workflow_dispatch, schedule and anything else: the run's own ref and SHA.
    return Event(**common, pr_number=None, head_sha=sha, base_sha=None, base_ref=None,
                 head_ref=p.get("ref", str), is_fork=False)


def load_event(env: Mapping[str, str]) -> Event:
    """Read and parse the event named by GITHUB_EVENT_NAME / GITHUB_EVENT_PATH."""
    name = env.get("GITHUB_EVENT_NAME", "").strip()
    path = env.get("GITHUB_EVENT_PATH", "").strip()
    if not name or not path:
        missing = "GITHUB_EVENT_NAME" if not name else "GITHUB_EVENT_PATH"
        raise BadInputError(f"{missing} is not set", field=missing,
                            hint="run inside GitHub Actions, or set both variables")
    try:
        if os.path.getsize(path) > MAX_EVENT_BYTES:
            raise BadInputError(f"event file is larger than {MAX_EVENT_BYTES} bytes", file=path)
        with open(path, "rb") as fh:
            data = json.loads(fh.read())
    except OSError as exc:
        raise BadInputError(f"cannot read event file: {exc.strerror or exc}", file=path,
                            field="GITHUB_EVENT_PATH") from None
    except (ValueError, RecursionError) as exc:
        raise BadInputError(f"event file is not valid JSON: {exc}", file=path) from None
    sha = env.get("GITHUB_SHA") or None
    event = parse_event(name, data, file=path, sha=sha if sha and _SHA.match(sha) else None)
    if event.repo is None and env.get("GITHUB_REPOSITORY"):
        event = replace(event, repo=env["GITHUB_REPOSITORY"])
    return event


def valid_repo_name(repo: object) -> bool:
    """OWNER/NAME as GitHub allows them (no path tricks: nothing but [A-Za-z0-9_.-], no '..')."""
    return isinstance(repo, str) and bool(_REPO_NAME.match(repo)) and ".." not in repo
