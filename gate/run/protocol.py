"""What the parent and the worker exchange, as files in the job directory:

    job.json     parent -> worker   the Job: its kind, the validated config (gate.yml is not
                                    read again), the parent's trust decision, the base, the
                                    record so far (trust, config)
    state.json   worker, per stage  where it is and the record so far (read when it dies)
    result.json  worker -> parent   the WorkerResult: how the task ended and the run record
    artifact.*   worker -> parent   files for next to the report (candidate.tflite)

Each is one pydantic model written and read whole: the record crosses back once.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from gate.config.load import GateConfig
from gate.report.record import RunRecord

JOB, RESULT, STATE = "job.json", "result.json", "state.json"
ARTIFACT_PREFIX = "artifact."
CANDIDATE_FILE = "candidate.tflite"   # the optimized model, written next to the report

JobKind = Literal["check", "calibrate", "sensitivity"]   # sensitivity: gate tune (gate.run.worker.sensitivity)


class _Message(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class BaseSource(_Message):
    """The base branch's candidate to compare with, as the parent found it: its checked-out
    config, validated by the parent (`config`), or a main-branch report (`report`)."""

    config: GateConfig | None = None
    report: str | None = None
    sha: str | None = None
    label: str = ""
    unchanged: bool = False              # same model, data and policy hashes as the PR
    fingerprint: dict[str, str | None] = {}
    trust_model_code: bool = False       # the base's own config, already on the base branch
    notes: tuple[str, ...] = ()


class NoBaseReason(_Message):
    """Why there is no base branch candidate to compare with. `absent` (the base branch has
    no model yet: the PR adds it) and `disabled` (--no-baseline) make the regression checks
    not applicable; `unavailable` (no git, a failed fetch, no base commit) makes them not
    judged, which fails unless gate.yml says `thresholds: {not_judged: pass}`."""

    kind: Literal["absent", "disabled", "unavailable"]
    reason: str


class Job(_Message):
    kind: JobKind
    config: GateConfig                   # validated once, by the parent
    trust_model_code: bool               # decided by the parent (gate.run.parent.trust), never by the worker
    progress: bool = True
    baseline: BaseSource | NoBaseReason | None = None    # None: no regression limit needs the base
    record: RunRecord = RunRecord()      # what the parent already recorded (trust, config, notes)
    repeats: int = 0                     # calibrate: A/A comparisons
    cache_dir: str | None = None         # gate.run.worker.cache (None: no cache)
    cache_max_bytes: int | None = None

    def write(self, directory: Path) -> None:
        write_json(directory / JOB, self)

    @classmethod
    def read(cls, directory: Path) -> "Job":
        return cls.model_validate_json((directory / JOB).read_bytes())


class RunVerdict(_Message):
    """How `gate check` ended: pass / fail, its exit code and one line saying why."""

    status: Literal["pass", "fail", "error"]
    exit_code: int
    summary: str


class WorkerResult(_Message):
    """The worker's answer: how its task ended, the run record, the files it wrote."""

    status: Literal["pass", "fail", "error"]
    exit_code: int
    summary: str
    error: dict[str, Any] | None = None          # GateError.to_dict (gate.errors.error_from_dict)
    record: RunRecord = RunRecord()
    artifacts: list[str] = []
    calibration: dict[str, Any] | None = None    # gate calibrate: Calibration.to_dict
    sensitivity: dict[str, Any] | None = None    # gate tune: per-layer curves (gate.run.worker.sensitivity)

    @classmethod
    def read(cls, directory: Path) -> "WorkerResult":
        return cls.model_validate_json((directory / RESULT).read_bytes())


class WorkerState(_Message):
    """Where the worker is, rewritten at every stage: what a dead worker leaves behind."""

    stage: str
    record: RunRecord


def write_json(path: Path, message: BaseModel) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(message.model_dump_json(), encoding="utf-8")
    tmp.replace(path)
