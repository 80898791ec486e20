"""The run record and the job: each gate.yml is parsed once per run (the worker gets the
validated config in its Job), and the record crosses from the worker to the parent once,
as one typed message."""
from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
import yaml
from test_baseline import base_repo, commit_all

import gate.config.load
from gate.config.load import load_config
from gate.report.record import RunRecord
from gate.run.protocol import Job, WorkerResult

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


@pytest.fixture()
def parses(monkeypatch) -> Counter:
    """How many times each config file was parsed (gate.config.load's YAML read)."""
    counted: Counter = Counter()
    real = gate.config.load.read_yaml

    def spy(path, *, kind="config"):
        counted[Path(path).resolve().name if kind != "config" else str(Path(path).resolve())] += 1
        return real(path, kind=kind)

    monkeypatch.setattr(gate.config.load, "read_yaml", spy)
    return counted


def test_pr_and_base_configs_are_each_parsed_once(tmp_path, tiny, parses):
    """A changed policy: the base is measured from its own config, which the parent parsed."""
    from gate.run.parent.run import run_gate

    config = {"model": "model.keras", "data": {"train": "train.npz", "eval": "eval.npz"}, "policy": "float16",
              "thresholds": {"size": {"max_increase": "50%"}}, "benchmark": {"warmup": 1, "runs": 3}}
    root, _ = base_repo(tmp_path, tiny, config)
    (root / "gate.yml").write_text(yaml.safe_dump({**config, "policy": "dynamic-range"}))
    commit_all(root, "dynamic range")

    report = run_gate(root / "gate.yml", tmp_path / "out", in_process=True, show_progress=False, baseline="main")

    assert report["status"] == "pass", report["summary"]
    assert report["baseline"]["unchanged"] is False and any(k.startswith("base_") for k in report["timings_s"])
    by_file = Counter({Path(path).name if Path(path).parent != root.resolve() else "pr": n
                       for path, n in parses.items()})
    assert by_file == {"pr": 1, "gate.yml": 1}, dict(parses)   # the PR's, and the base worktree's


def test_the_worker_takes_the_validated_config_from_its_job(tmp_path, parses):
    """gate.run.worker.main reads job.json, never gate.yml; its answer is one WorkerResult."""
    from gate.run.worker.main import main

    cfg = load_config(EXAMPLES / "tflite" / "gate-dynamic.yml")
    parses.clear()
    Job(kind="check", config=cfg, trust_model_code=False, progress=False,
        record=RunRecord(notes=["from the parent"])).write(tmp_path)

    assert main(str(tmp_path)) == 0

    assert not parses
    result = WorkerResult.read(tmp_path)
    assert result.status in ("pass", "fail"), result.summary
    assert result.record.notes[0] == "from the parent"
    assert result.record.config.sha256 == cfg.sha256 and result.record.candidate is not None
    assert result.artifacts == ["candidate.tflite"]


def test_a_job_round_trips_with_its_config():
    cfg = load_config(EXAMPLES / "tflite" / "gate.yml")
    job = Job(kind="check", config=cfg, trust_model_code=True)
    assert Job.model_validate_json(job.model_dump_json()) == job


def test_record_sections_are_typed():
    record = RunRecord().with_sections(trust={"trust_model_code": False, "source": "not requested"})
    assert record.trust.source == "not requested"
    with pytest.raises(ValueError):
        record.with_sections(trust={"trust_model_code": "maybe", "source": 1})
    with pytest.raises(TypeError, match="not sections"):
        record.with_sections(parts={})
