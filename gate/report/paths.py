"""Paths in report.md and the PR comment are written relative to the repository: a reader
knows `examples/digits/model.keras`, not the runner's `/home/runner/work/app/app/...`.

The repository is the Actions workspace (GITHUB_WORKSPACE, `/github/workspace` inside a
container action, `/home/runner/work/<repo>/<repo>` on a hosted runner — a report read back
from another job's artifact carries those) and the directory the gate runs in."""
from __future__ import annotations

import os
import re
from pathlib import Path

RUNNER_WORKSPACES = r"/github/workspace|/home/runner/work/[^/\s'\"`]+/[^/\s'\"`]+"


def repo_roots(env: dict[str, str] | None = None, cwd: str | None = None) -> list[str]:
    """Absolute directories to write paths relative to, longest first."""
    env = os.environ if env is None else env
    roots = {str(Path(p)) for p in (env.get("GITHUB_WORKSPACE"), cwd if cwd is not None else os.getcwd()) if p}
    return sorted((r for r in roots if r not in ("/", "")), key=len, reverse=True)


def relative_text(text: str, roots: list[str]) -> str:
    """`/github/workspace/examples/m.keras` -> `examples/m.keras`; the root itself -> `.`."""
    pattern = "(?<![\\w./-])(?:" + "|".join([*(re.escape(r) for r in roots), RUNNER_WORKSPACES]) + ")"
    text = re.sub(f"{pattern}/", "", text)
    return re.sub(f"{pattern}(?![\\w/.-])", ".", text)


def relative_paths(value: object, roots: list[str] | None = None) -> object:
    """A copy of a report (any JSON value) with every absolute path under the repository
    written relative to it."""
    roots = repo_roots() if roots is None else roots
    if isinstance(value, str):
        return relative_text(value, roots) if "/" in value else value
    if isinstance(value, dict):
        return {k: relative_paths(v, roots) for k, v in value.items()}
    if isinstance(value, list):
        return [relative_paths(v, roots) for v in value]
    return value
