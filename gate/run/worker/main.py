"""The worker process: everything that touches the model (loading, optimizing,
converting, running the interpreter) happens here, under resource limits, so that a
model that crashes TensorFlow or LiteRT, leaks memory or hangs cannot take the gate
with it. The parent (gate.run.parent.isolate) turns a dead worker into a clear error and a report.

    python -P -m gate.run.worker JOB_DIR    (__main__; gate.run.protocol: job.json in; result.json, state.json out)
"""
from __future__ import annotations

from pathlib import Path

from gate.console import progress_printer
from gate.errors import GateError, InternalError, ModelError
from gate.run.protocol import ARTIFACT_PREFIX, RESULT, STATE, Job, WorkerResult, WorkerState, write_json
from gate.run.stagelog import StageLog

MEMORY_SIGNS = ("failed to map segment", "cannot allocate memory", "bad_alloc", "out of memory")


def main(job_dir: str) -> int:
    work = Path(job_dir)
    job = Job.read(work)
    log = StageLog(progress_printer(job.progress), job.record)
    log.on_stage = lambda name: write_json(work / STATE, WorkerState(stage=name, record=log.record))
    try:
        result = run_task(job, log)
    except GateError as err:
        result = _error(err)
    except Exception as exc:  # noqa: BLE001 - reported to the parent, which writes the report
        if _out_of_memory(exc):
            result = _error(ModelError(
                f"the worker ran out of memory under its limit ({type(exc).__name__}: {str(exc)[:200]})",
                field="limits.memory_mb", hint="a large model needs more address space (TensorFlow alone maps "
                                               "~3 GiB): raise limits.memory_mb in gate.yml"))
        else:
            err, trace = InternalError.from_exception(exc)
            log.note(trace)
            result = _error(err)
    for name, content in log.artifacts.items():
        (work / f"{ARTIFACT_PREFIX}{name}").write_bytes(content)
    write_json(work / RESULT, result.model_copy(update={"record": log.record, "artifacts": sorted(log.artifacts)}))
    return 0


def run_task(job: Job, log: StageLog) -> WorkerResult:
    """The job's task on its validated config; the record is the log's (added by the caller)."""
    if job.kind == "calibrate":
        from gate.run.worker.calibrate import calibrate

        calibration = calibrate(job.config, log, job)
        return WorkerResult(status="pass", exit_code=0, summary="calibrated", calibration=calibration.to_dict())
    if job.kind == "sensitivity":        # gate tune: per-layer sensitivity
        from gate.run.worker.sensitivity import sensitivity

        return WorkerResult(status="pass", exit_code=0, summary="measured",
                            sensitivity=sensitivity(job.config, log, job))
    from gate.run.worker.check import check

    verdict = check(job.config, log, job)
    return WorkerResult(status=verdict.status, exit_code=verdict.exit_code, summary=verdict.summary)


def _error(err: GateError) -> WorkerResult:
    return WorkerResult(status=err.report_status, exit_code=err.exit_code, summary=err.render(), error=err.to_dict())


def _out_of_memory(exc: BaseException) -> bool:
    return isinstance(exc, MemoryError) or any(sign in str(exc).lower() for sign in MEMORY_SIGNS)
