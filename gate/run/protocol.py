"""What the parent and the worker exchange, as files in the job directory:

    job.json     parent -> worker   the Job: task, config, the parent's trust decision, baseline
    state.json   worker, per stage  where it is and the parts so far (read when it dies)
    result.json  worker -> parent   status, exit code, summary, error, parts, artifact names
    artifact.*   worker -> parent   files for next to the report (candidate.tflite)
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

JOB, RESULT, STATE = "job.json", "result.json", "state.json"
ARTIFACT_PREFIX = "artifact."
CANDIDATE_FILE = "candidate.tflite"   # the optimized model, written next to the report

Task = Literal["check", "calibrate"]


@dataclass(frozen=True)
class BaseJob:
    """The base branch's candidate to compare with, as the parent found it: a checked-out
    config (`config`) or a main-branch report (`report`)."""

    config: str | None = None
    report: str | None = None
    sha: str | None = None
    label: str = ""
    unchanged: bool = False              # same model, data and policy hashes as the PR
    fingerprint: dict = field(default_factory=dict)
    trust_model_code: bool = False       # the base's own config, already on the base branch
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class NoBase:
    """Why there is no base branch candidate to compare with. `absent` (the base branch has
    no model yet: the PR adds it) and `disabled` (--no-baseline) make the regression checks
    not applicable; `unavailable` (no git, a failed fetch, no base commit) makes them not
    judged, which fails unless gate.yml says `thresholds: {not_judged: pass}`."""

    kind: Literal["absent", "disabled", "unavailable"]
    reason: str


@dataclass(frozen=True)
class Job:
    task: Task
    config: str
    trust_model_code: bool               # decided by the parent (gate.run.trust), never by the worker
    progress: bool = True
    baseline: BaseJob | NoBase | None = None    # None: no regression limit needs the base
    parts: dict = field(default_factory=dict)   # what the parent already recorded (trust, notes)
    repeats: int = 0                     # calibrate: A/A comparisons
    cache_dir: str | None = None         # gate.run.cache (None: no cache)
    cache_max_bytes: int | None = None
    target: str | None = None            # `gate check --target local`: gate.yml's benchmark.target overridden

    def write(self, directory: Path) -> None:
        write_json(directory / JOB, asdict(self))

    @classmethod
    def read(cls, directory: Path) -> "Job":
        data = json.loads((directory / JOB).read_text(encoding="utf-8"))
        base = data.pop("baseline")
        if base is not None and "kind" in base:
            base = NoBase(**base)
        elif base is not None:
            base["notes"] = tuple(base.get("notes", ()))
            base = BaseJob(**base)
        return cls(**data, baseline=base)


@dataclass(frozen=True)
class Outcome:
    """How a task ended: pass / fail / error, its exit code and one line saying why."""

    status: Literal["pass", "fail", "error"]
    exit_code: int
    summary: str


def write_json(path: Path, data: dict) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data), encoding="utf-8")
    tmp.replace(path)
