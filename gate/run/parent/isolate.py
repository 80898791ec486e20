"""Run the measurement in a worker process with resource limits and a wall-clock
timeout. A worker that dies (a malformed .tflite can segfault the interpreter; the
converter leaks memory per call, tensorflow#122598) or hangs becomes a ModelError (exit 2)
naming the stage it died in; the parent survives and writes the report."""
from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from gate.config.schema import LimitsSpec
from gate.errors import ModelError, error_from_dict
from gate.run.protocol import ARTIFACT_PREFIX, RESULT, STATE, Job, WorkerResult, WorkerState
from gate.run.stagelog import StageLog

MIB = 1024 * 1024


PR_SET_PDEATHSIG = 1


def _die_with_parent():
    """Linux prctl(PR_SET_PDEATHSIG, SIGKILL), looked up before the fork: the worker is
    killed when the gate process dies, even by a signal it cannot catch (a CI job cancelled
    with SIGTERM, then SIGKILL), instead of measuring on as an orphan. None elsewhere."""
    try:
        import ctypes

        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    return lambda: prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def _limit(limits: LimitsSpec):
    die_with_parent = _die_with_parent()

    def apply() -> None:  # runs in the child between fork and exec
        if die_with_parent is not None:
            die_with_parent()
        resource.setrlimit(resource.RLIMIT_AS, (limits.memory_mb * MIB, limits.memory_mb * MIB))
        resource.setrlimit(resource.RLIMIT_CPU, (limits.cpu_s, limits.cpu_s + 5))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    return apply


def _death(returncode: int, limits: LimitsSpec) -> str:
    if returncode < 0:
        sig = signal.Signals(-returncode)
        if sig == signal.SIGXCPU:
            return f"hit the CPU-time limit (limits.cpu_s = {limits.cpu_s})"
        if sig == signal.SIGKILL:
            return "was killed (SIGKILL: out of memory, or killed from outside)"
        return f"crashed with {sig.name}"
    return f"exited with code {returncode} without a result (out of memory under limits.memory_mb = " \
           f"{limits.memory_mb}? TensorFlow aborts when an allocation fails)"


CONVERT_CRASH = ("TensorFlow's converter crashed the process: int8/int16x8 calibration crashes on some graphs "
                 "(Keras 3 GRU/LSTM layers on TF 2.21 do). Try the dynamic-range or float16 preset, or LiteRT "
                 "Quantizer on the float model: convert: {quantizer: litert, recipe: dynamic_wi8_afp32}; the gate "
                 "itself is unharmed")


def crash_hint(stage: str, returncode: int) -> str:
    """What to do about a worker that died in `stage` (its progress label)."""
    if returncode < 0 and ("converting" in stage or "quantizing" in stage):
        return CONVERT_CRASH
    return ("a malformed or hostile model can crash TensorFlow/LiteRT; the gate itself is unharmed. Check the model "
            "file, or raise limits.* in gate.yml")


def run_in_process(job: Job, log: StageLog) -> WorkerResult:
    """The worker's task in this process, for debugging and profiling (`--in-process`);
    never for untrusted models. The one place the parent imports worker code."""
    from gate.run.worker.main import run_task

    return run_task(job, log)


def run_isolated(job: Job, limits: LimitsSpec, log: StageLog) -> WorkerResult:
    """Run gate.run.worker.main on `job`; its record becomes `log`'s, its files land in
    `log.artifacts`. Returns the worker's result, or raises the worker's GateError (or a
    ModelError for a dead worker, `log` keeping the record it had written so far)."""
    with tempfile.TemporaryDirectory(prefix="gate-worker-") as tmp:
        work = Path(tmp)
        job.write(work)
        # -P: the working directory (the repository under test) is not put on sys.path, so a
        # committed gate/, numpy.py or tensorflow.py cannot stand in for the real packages.
        proc = subprocess.Popen([sys.executable, "-P", "-m", "gate.run.worker", str(work)], preexec_fn=_limit(limits),  # noqa: S603,PLW1509
                                stdin=subprocess.DEVNULL, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        try:
            returncode = proc.wait(timeout=limits.timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            stage = _take_state(work, log)
            raise ModelError(f"the measurement did not finish within limits.timeout_s = {limits.timeout_s:g} s "
                             f"(stopped while {stage})", field="limits.timeout_s") from None
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        if not (work / RESULT).exists():
            stage = _take_state(work, log)
            raise ModelError(f"the worker that measures the model {_death(returncode, limits)} while {stage}",
                             field="model", hint=crash_hint(stage, returncode))
        result = WorkerResult.read(work)
        log.record = result.record
        for name in result.artifacts:
            log.artifacts[name] = (work / f"{ARTIFACT_PREFIX}{name}").read_bytes()
    if result.error:
        raise error_from_dict(result.error)
    return result


def _take_state(work: Path, log: StageLog) -> str:
    """Take the record a dead worker had written; return the stage it was in."""
    try:
        state = WorkerState.model_validate_json((work / STATE).read_bytes())
    except (OSError, ValueError):
        return "starting"
    log.record = state.record
    return state.stage
