"""The worker process: everything that touches the model (loading, optimizing,
converting, running the interpreter) happens here, under resource limits, so that a
model that crashes TensorFlow or LiteRT, leaks memory or hangs cannot take the gate
with it. The parent (gate.run.isolate) turns a dead worker into a clear error and a report.

    python -m gate.run.worker JOB_DIR      (JOB_DIR/job.json in; result.json, state.json out)
"""
from __future__ import annotations

import json
import sys
import traceback
from pathlib import Path

JOB, RESULT, STATE = "job.json", "result.json", "state.json"


def _write_json(path: Path, data: dict) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data), encoding="utf-8")
    tmp.replace(path)


def main(job_dir: str) -> int:
    from gate.config.load import load_config
    from gate.errors import GateError, ModelError
    from gate.run.pipeline import Run, check

    work = Path(job_dir)
    job = json.loads((work / JOB).read_text(encoding="utf-8"))
    printer = _printer(job.get("progress", True))
    run = Run(printer)
    run.parts.update(job.get("parts") or {})   # what the parent decided (trust, notes, baseline)
    run.on_stage = lambda name: _write_json(work / STATE, {"stage": name, "parts": run.parts})
    result: dict = {}
    try:
        cfg = load_config(job["config"])
        status, code, summary = check(cfg, run, trust_model_code=bool(job.get("trust_model_code")),
                                      baseline=job.get("baseline"))
        result = {"status": status, "exit_code": code, "summary": summary, "error": None}
    except GateError as err:
        result = {"status": "error", "exit_code": err.exit_code, "summary": err.render(), "error": err.to_dict()}
    except Exception as exc:  # noqa: BLE001 - reported to the parent, which writes the report
        if _out_of_memory(exc):
            err = ModelError(f"the worker ran out of memory under its limit ({type(exc).__name__}: "
                             f"{str(exc)[:200]})", field="limits.memory_mb",
                             hint="a large model needs more address space (TensorFlow alone maps ~3 GiB): "
                                  "raise limits.memory_mb in gate.yml")
            result = {"status": "error", "exit_code": err.exit_code, "summary": err.render(), "error": err.to_dict()}
        else:
            result = _internal(exc, run)
    for name, content in run.artifacts.items():
        (work / f"artifact.{name}").write_bytes(content)
    _write_json(work / RESULT, {**result, "parts": run.parts, "artifacts": sorted(run.artifacts)})
    return 0


MEMORY_SIGNS = ("failed to map segment", "cannot allocate memory", "bad_alloc", "out of memory")


def _out_of_memory(exc: BaseException) -> bool:
    return isinstance(exc, MemoryError) or any(sign in str(exc).lower() for sign in MEMORY_SIGNS)


def _internal(exc: BaseException, run) -> dict:
    from gate.errors import InternalError

    err = InternalError(f"internal error: {type(exc).__name__}: {exc}",
                        hint="this is a model-gate bug; please report it with report.json")
    run.parts["notes"].append("traceback: " + "".join(traceback.format_exception(exc))[-4000:])
    return {"status": "error", "exit_code": 3, "summary": err.message, "error": err.to_dict()}


def _printer(enabled: bool):
    if not enabled:
        return lambda _label: None
    from rich.console import Console

    from gate.console import terminal_stderr

    console = Console(file=terminal_stderr(), highlight=False)
    return lambda label: console.print(f"[dim]·[/dim] {label}")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
