"""The baseline of a comparison: the model as the base branch ships it.

In a pull request the base is the merge-base of the PR head and the base branch (a
shallow checkout fetches what it needs); locally it is `--baseline REF` (default: the
merge-base with the default branch). The base commit is checked out into a temporary
git worktree, so its gate.yml, model, data and policy are read exactly as they are
there. No TF here: the worker measures.
"""
from __future__ import annotations

import hashlib
import json
import os
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Mapping

from gate.config.load import GateConfig, config_models, load_config
from gate.errors import GateError
from gate.github.event import PULL_REQUEST_EVENTS
from gate.run.digest import file_digest
from gate.run.parent.gitrepo import GitError, Repo

DEFAULT_BRANCHES = ("origin/HEAD", "origin/main", "origin/master", "main", "master")


@dataclass(frozen=True)
class BaseCommit:
    sha: str
    label: str                 # how it was chosen, for the report
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class BaseCheckout:
    ref: BaseCommit
    config: GateConfig | None  # None: the base has no gate.yml / model yet
    unchanged: bool            # model, data and policy hash the same as the PR's
    fingerprint: dict
    notes: tuple[str, ...] = field(default=())

    def to_dict(self) -> dict:
        return {"sha": self.ref.sha, "chosen": self.ref.label, "has_model": self.config is not None,
                "unchanged": self.unchanged, "fingerprint": self.fingerprint,
                "notes": [*self.ref.notes, *self.notes]}


def resolve_ref(repo: Repo, env: Mapping[str, str], ref: str | None) -> BaseCommit:
    """Which commit is the base: the PR's merge-base, or REF's merge-base with HEAD."""
    if ref is None and env.get("GITHUB_EVENT_NAME") in PULL_REQUEST_EVENTS:
        from gate.github.event import load_event

        event = load_event(env)
        if not event.base_sha:
            raise GitError(f"the {env.get('GITHUB_EVENT_NAME')} event names no base commit")
        repo.ensure_commit(event.base_sha)
        head = event.head_sha if event.head_sha and repo.has_commit(event.head_sha) else "HEAD"
        base = repo.merge_base(event.base_sha, head)
        if base:
            return BaseCommit(base, f"merge-base of {head[:12]} and {event.base_ref or 'base'} ({event.base_sha[:12]})")
        return BaseCommit(event.base_sha, f"{event.base_ref or 'base'} ({event.base_sha[:12]})",
                       ("the checkout is too shallow for a merge-base: compared with the base branch's tip",))
    candidates = [ref] if ref else list(DEFAULT_BRANCHES)
    for name in candidates:
        sha = repo.git("rev-parse", "--verify", "--quiet", f"{name}^{{commit}}", check=False)
        if sha:
            base = repo.merge_base(sha, "HEAD") or sha
            return BaseCommit(base, f"merge-base of HEAD and {name}" if base != sha else name)
    if ref:
        raise GitError(f"--baseline {ref}: no such commit or branch")
    raise GitError(f"no base branch found (tried {', '.join(DEFAULT_BRANCHES)})",
                   hint="name one with --baseline REF, or run with --no-baseline")


def fingerprint(cfg: GateConfig) -> dict:
    """Content hashes of what decides the candidate: model, data, policy, conversion."""
    policy = cfg.policy.policy.model_dump(mode="json", exclude={"description", "extends"}) if cfg.policy else None
    train, evaluated = (_source_digest(ref) for ref in (cfg.train_source, cfg.eval_source))
    return {"model": file_digest(cfg.model_path), "train": train or file_digest(cfg.train_path),
            "eval": evaluated or file_digest(cfg.eval_path),
            "policy": hashlib.sha256(json.dumps(policy, sort_keys=True).encode()).hexdigest()}


def _base_models(path: Path) -> list[str] | None:
    """The base's model names; None when its gate.yml cannot be read (load_config says why)."""
    try:
        return config_models(path)
    except GateError:
        return None


def _source_digest(ref) -> str | None:
    """A file-based source's content digest (no TF, no loader code runs in the parent)."""
    if ref is None or ref.kind == "python":
        return None if ref is None else file_digest(ref.path)
    from gate.measure.sources import digest

    return digest(ref, False)


@contextmanager
def checkout(cfg: GateConfig, env: Mapping[str, str] = os.environ, ref: str | None = None) -> Iterator[BaseCheckout]:
    """Yield the BaseCheckout with its files checked out (removed afterwards). Raises GitError
    when there is nothing to compare with: no git, no repository, no base commit."""
    repo = Repo.require(cfg.root)
    base_ref = resolve_ref(repo, env, ref)
    with repo.worktree(base_ref.sha, "gate-base-") as tree:
        base_cfg_path = tree / repo.relative(cfg.path)
        mine = fingerprint(cfg)
        if not base_cfg_path.exists():
            yield BaseCheckout(base_ref, None, False, {}, (f"the base has no {repo.relative(cfg.path)}: this pull "
                                                       "request adds the model; the regression limits do not "
                                                       "apply",))
            return
        if cfg.name is not None and cfg.name not in (_base_models(base_cfg_path) or [cfg.name]):
            yield BaseCheckout(base_ref, None, False, {}, (f"the base's {repo.relative(cfg.path)} has no model "
                                                           f"{cfg.name!r}: this pull request adds it; the regression "
                                                           "limits do not apply",))
            return
        try:
            base_cfg = load_config(base_cfg_path, cfg.name)
        except GateError as err:
            raise GitError(f"the base's {repo.relative(cfg.path)} cannot be used: {err.message}") from None
        theirs = fingerprint(base_cfg)
        yield BaseCheckout(base_ref, base_cfg, theirs == mine, theirs)
