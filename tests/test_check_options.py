"""`gate check` options that change what a run uses without editing gate.yml: `--policy`
tries another policy; an explicit `--baseline REF` that nothing compares with is said."""
from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from gate.cli import main
from gate.config.load import load_config
from gate.errors import GateError
from gate.run.parent.run import base_job
from gate.run.stagelog import StageLog

BASE = "model: m.keras\ndata:\n  train: train.npz\n  eval: eval.npz\npolicy: int8\n"


def project(root: Path, text: str = BASE) -> Path:
    for name in ("m.keras", "train.npz", "eval.npz"):
        (root / name).write_bytes(b"")
    (root / "gate.yml").write_text(text, encoding="utf-8")
    return root / "gate.yml"


def test_policy_option_replaces_gate_yml_policy_by_preset_or_file(tmp_path, monkeypatch):
    path = project(tmp_path)
    assert load_config(path).policy.name == "int8" and load_config(path).policy_override is None
    cfg = load_config(path, policy="float16")
    assert cfg.policy.name == "float16" and cfg.policy_override == "float16"
    elsewhere = tmp_path / "work"
    elsewhere.mkdir()
    (elsewhere / "mine.yml").write_text("extends: int8\nconvert: {representative_samples: 7}\n", encoding="utf-8")
    monkeypatch.chdir(elsewhere)          # a policy file is relative to where the command runs
    cfg = load_config(path, policy="mine.yml")
    assert cfg.policy.policy.convert.representative_samples == 7
    assert cfg.policy_override == str((elsewhere / "mine.yml").resolve())
    assert load_config(path).sha256 == cfg.sha256     # gate.yml itself untouched


def test_an_unknown_policy_option_names_the_option_not_gate_yml(tmp_path):
    path = project(tmp_path)
    with pytest.raises(GateError) as info:
        load_config(path, policy="int9")
    assert info.value.field == "--policy" and info.value.line is None and "int9" in info.value.message
    result = CliRunner().invoke(main, ["check", "-c", str(path), "-o", str(tmp_path / "out"), "--policy", "int9",
                                       "-q", "--no-cache"])
    assert result.exit_code == 2 and "--policy" in result.output


def test_an_explicit_baseline_that_no_threshold_uses_is_said(tmp_path):
    cfg = load_config(project(tmp_path, BASE + "thresholds: {size_kb: {max: 10}}\n"))
    log = StageLog(lambda _: None)
    with base_job(cfg, log, ref="main", report=None, enabled=True) as job:
        assert job is None
    assert any(n.startswith("--baseline main was not used: no threshold in gate.yml compares against the base")
               and "size.max_increase" in n for n in log.record.notes)
    quiet = StageLog(lambda _: None)
    with base_job(cfg, quiet, ref=None, report=None, enabled=True) as job:
        assert job is None
    assert not quiet.record.notes
