"""`gate models --changed --base REF`: the models whose inputs differ from the base.

A model's inputs are what its measurement's cache key is made of (gate.run.worker.cached):
the content digests of the model file (a SavedModel: every file), the train and eval
data, the resolved policy (presets and `extends` applied, so a changed preset file
counts), this model's gate.yml entry as merged with the defaults (thresholds, benchmark,
evaluation), and the gate's version. The base's side is read from a temporary worktree of
the base commit with the same code, so a renamed-but-identical file or a README change is
no change, and a changed shared data file or policy is a change for every model that uses
it. No path guessing, no TF. Both sides are read by the gate that runs, so the version
is the same on both: upgrading model-gate is not seen here (gate every model then).
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from gate import __version__
from gate.config.load import GateConfig, config_models, load_config
from gate.errors import ConfigError, GateError
from gate.run.cachekey import cache_key
from gate.run.digest import file_digest
from gate.run.parent.baseline import resolve_ref
from gate.run.parent.gitrepo import Repo

COMPONENTS = ("model", "train", "eval", "policy", "config", "gate")


def inputs_of(cfg: GateConfig, gate_version: str = __version__) -> dict[str, str | None]:
    """The digests that decide one model's result (the parts of its cache key)."""
    policy = cfg.policy.policy.model_dump(mode="json", exclude={"description", "extends"}) if cfg.policy else None
    return {"model": file_digest(cfg.model_path), "train": file_digest(cfg.train_path),
            "eval": file_digest(cfg.eval_path),
            "policy": hashlib.sha256(json.dumps(policy, sort_keys=True).encode()).hexdigest(),
            "config": cfg.entry_sha256, "gate": gate_version}


def inputs_key(inputs: dict) -> str:
    return cache_key({"kind": "model-inputs", **inputs})


@dataclass(frozen=True)
class Change:
    name: str
    changed: bool
    why: str                  # which inputs differ, or "unchanged"
    key: str | None = None    # this side's inputs key (None: the config entry cannot be read)

    def to_dict(self) -> dict:
        return {"name": self.name, "changed": self.changed, "why": self.why, "key": self.key}


def names_of(config: Path) -> list[str]:
    names = config_models(config)
    if not names:
        raise ConfigError("this gate.yml has no `models:` mapping: it is one model, `gate check` runs it",
                          file=str(config), field="models",
                          hint="list several models under `models:` (docs/configuration.md)")
    return names


def _mine(config: Path, name: str) -> tuple[dict | None, str | None]:
    try:
        return inputs_of(load_config(config, name)), None
    except GateError as err:
        return None, err.render()


def compare(config: Path, base_config: Path | None, names: list[str]) -> list[Change]:
    """Each model of `config` against the same entry of `base_config` (None: the base has no
    gate.yml). A model that cannot be read on this side is listed as changed, so its leg
    reports the error."""
    base_names: list[str] | None = None
    if base_config is not None and base_config.exists():
        try:
            base_names = config_models(base_config)
        except GateError:
            base_names = None
    out = []
    for name in names:
        mine, err = _mine(config, name)
        key = inputs_key(mine) if mine else None
        if mine is None:
            out.append(Change(name, True, f"cannot be read here ({err.splitlines()[0] if err else '?'})"))
            continue
        if base_config is None or not base_config.exists():
            out.append(Change(name, True, "the base has no gate.yml", key))
            continue
        if base_names is None or name not in base_names:
            out.append(Change(name, True, "new: the base's gate.yml has no such model", key))
            continue
        theirs, base_err = _mine(base_config, name)
        if theirs is None:
            out.append(Change(name, True, "the base's entry cannot be read", key))
            continue
        differ = [c for c in COMPONENTS if mine[c] != theirs[c]]
        out.append(Change(name, bool(differ), ("differs: " + ", ".join(differ)) if differ else "unchanged", key))
    return out


def changed_models(config: Path, base: str | None, env: Mapping[str, str] = os.environ) -> list[Change]:
    """Every model of `config`, compared with the merge-base of HEAD and `base` (None: the
    pull request's base, or the default branch), checked out in a temporary worktree."""
    config = config.resolve()
    names = names_of(config)
    repo = Repo.require(config.parent)
    ref = resolve_ref(repo, env, base)
    with repo.worktree(ref.sha, "gate-models-") as tree:
        return compare(config, tree / repo.relative(config), names)
