"""The few git operations the gate needs: find the base commit of a pull request and
read files as they are there. Shallow CI checkouts are deepened by fetching the one
commit. Never imports TF."""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from gate.errors import BadInputError


class GitError(BadInputError):
    kind = "git"


@dataclass(frozen=True)
class Repo:
    root: Path

    @classmethod
    def find(cls, start: Path) -> "Repo | None":
        try:
            out = _git(start, "rev-parse", "--show-toplevel")
        except GitError:
            return None
        return cls(Path(out))

    @classmethod
    def require(cls, start: Path) -> "Repo":
        """The repository `start` is in; GitError saying why there is none."""
        if shutil.which("git") is None:
            raise GitError("git is not installed, so the base branch cannot be read",
                           hint="install git (the model-gate image has it)")
        repo = cls.find(start)
        if repo is None:
            raise GitError(f"{start} is not inside a git repository, so the base branch cannot be read",
                           hint="check out the repository (actions/checkout), or run with --no-baseline")
        return repo

    def git(self, *args: str, check: bool = True) -> str:
        return _git(self.root, *args, check=check)

    @contextmanager
    def worktree(self, sha: str, prefix: str) -> Iterator[Path]:
        """`sha` checked out (detached) in a temporary worktree, removed afterwards."""
        tmp = Path(tempfile.mkdtemp(prefix=prefix))
        tree = tmp / "tree"
        try:
            self.git("worktree", "add", "--detach", "--force", str(tree), sha)
            yield tree
        finally:
            self.git("worktree", "remove", "--force", str(tree), check=False)
            shutil.rmtree(tmp, ignore_errors=True)
            self.git("worktree", "prune", check=False)

    def has_commit(self, sha: str) -> bool:
        return _ok(self.root, "cat-file", "-e", f"{sha}^{{commit}}")

    def ensure_commit(self, sha: str, remote: str = "origin") -> None:
        """Fetch one commit when a shallow checkout does not have it."""
        if self.has_commit(sha):
            return
        if not _ok(self.root, "fetch", "--no-tags", "--depth=1", remote, sha):
            raise GitError(f"commit {sha[:12]} is not in this checkout and `git fetch --depth=1 {remote} {sha}` "
                           "failed", hint="check out with fetch-depth: 0, or give the job read access to the repo")

    def merge_base(self, a: str, b: str) -> str | None:
        out = self.git("merge-base", a, b, check=False)
        return out or None

    def show(self, sha: str, path: Path) -> bytes | None:
        """A file's bytes at a commit (None when it does not exist there)."""
        rel = self.relative(path)
        proc = subprocess.run(["git", "-C", str(self.root), "show", f"{sha}:{rel}"], capture_output=True,
                              env=_env(), check=False)
        return proc.stdout if proc.returncode == 0 else None

    def relative(self, path: Path) -> str:
        return Path(os.path.relpath(Path(path).resolve(), self.root.resolve())).as_posix()


def _env() -> dict:
    # The Actions container runs as another uid than the workspace owner: trust it.
    return {**os.environ, "GIT_TERMINAL_PROMPT": "0", "GIT_CONFIG_COUNT": "1",
            "GIT_CONFIG_KEY_0": "safe.directory", "GIT_CONFIG_VALUE_0": "*"}


def _ok(cwd: Path, *args: str) -> bool:
    return subprocess.run(["git", "-C", str(cwd), *args], capture_output=True, env=_env(),
                          check=False).returncode == 0


def _git(cwd: Path, *args: str, check: bool = True) -> str:
    try:
        proc = subprocess.run(["git", "-C", str(cwd), *args], capture_output=True, text=True, env=_env(),
                              check=False, timeout=120)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise GitError(f"git {' '.join(args)} failed: {exc}") from None
    if proc.returncode != 0:
        if check:
            raise GitError(f"git {' '.join(args)} failed: {proc.stderr.strip()[:500]}")
        return ""
    return proc.stdout.strip()
