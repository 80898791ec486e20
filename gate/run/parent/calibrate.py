"""`gate calibrate`, the parent's side: it runs like `gate check` (trust decided from the
base branch, the model measured in the limited worker: gate.run.worker.calibrate)."""
from __future__ import annotations

from pathlib import Path

from gate.console import Progress
from gate.run.calibration import Calibration
from gate.run.parent.run import execute, start
from gate.run.stagelog import StageLog


def calibrate_config(config_path: str | Path, repeats: int, progress: Progress = lambda _: None, *,
                     show_progress: bool = True, model: str | None = None) -> Calibration:
    """The same config (`model`: an entry of gate.yml's `models:`), trust decision and worker
    as `gate check`; the worker calibrates."""
    log = StageLog(progress)
    cfg, trust = start(config_path, log, model=model)
    result = execute("calibrate", cfg, trust, log, show_progress=show_progress, repeats=repeats)
    return Calibration.from_dict(result.calibration)
