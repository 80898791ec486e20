"""Trust comes from the base branch. Settings that widen trust (trust_model_code: load
SavedModels and Lambda layers, run custom pruning schedules) are honoured in a pull
request only when the base branch's gate.yml sets them too, so a PR cannot grant itself
trust. Outside a pull request (a local run, a push to a branch, a release) the working
tree's config counts: whoever can push there is trusted already."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Mapping

import yaml

from gate.config.load import GateConfig
from gate.errors import BadInputError
from gate.github.event import PULL_REQUEST_EVENTS, load_event
from gate.run.parent.gitrepo import GitError, Repo


@dataclass(frozen=True)
class Trust:
    trust_model_code: bool
    source: str
    notes: tuple[str, ...] = field(default=())

    def to_dict(self) -> dict:
        return {"trust_model_code": self.trust_model_code, "source": self.source, "notes": list(self.notes)}


def _base_sha(env: Mapping[str, str]) -> tuple[str | None, str | None]:
    event = load_event(env)
    return event.base_sha, event.base_ref


def _sets_trust(base: dict, name: str | None) -> bool:
    """trust_model_code in the base's gate.yml, for model `name` (its entry overrides the default)."""
    value = base.get("trust_model_code")
    entry = (base.get("models") or {}).get(name) if name and isinstance(base.get("models"), dict) else None
    if isinstance(entry, dict) and "trust_model_code" in entry:
        value = entry["trust_model_code"]
    return value is True


def decide(cfg: GateConfig, env: Mapping[str, str] = os.environ) -> Trust:
    wanted = cfg.file.trust_model_code
    if not wanted:
        return Trust(False, "not requested")
    if env.get("GITHUB_EVENT_NAME") not in PULL_REQUEST_EVENTS:
        return Trust(True, "working tree (not a pull request)")
    try:
        sha, ref = _base_sha(env)
    except BadInputError as err:
        return Trust(False, "pull request without a readable event", (f"trust_model_code ignored: {err.message}",))
    refused = "trust_model_code ignored: "
    repo = Repo.find(cfg.root)
    if not sha or repo is None:
        return Trust(False, "pull request, base config unreadable",
                     (refused + "cannot read the base branch's gate.yml (no base commit or no git checkout)",))
    try:
        repo.ensure_commit(sha)
    except GitError as err:
        return Trust(False, "pull request, base commit unavailable", (refused + err.message,))
    text = repo.show(sha, cfg.path)
    try:
        base = yaml.safe_load(text) if text is not None else None
    except yaml.YAMLError:
        base = None
    if isinstance(base, dict) and _sets_trust(base, cfg.name):
        return Trust(True, f"base branch {ref or ''} ({sha[:12]}) sets trust_model_code".replace("  ", " "))
    return Trust(False, f"base branch {ref or ''} ({sha[:12]})".replace("  ", " "),
                 (refused + "the base branch's gate.yml does not set it, and a pull request cannot grant "
                            "itself trust",))
