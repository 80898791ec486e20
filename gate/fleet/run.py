"""`gate check` on a gate.yml with `models:`: each model through the single-model gate
(gate.run.parent.run.run_gate: its own worker, one at a time, its report in OUT/NAME/), then
the combined report in OUT/report.json and OUT/report.md."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from gate.report.combined import combine
from gate.report.write import write_report
from gate.run.parent.run import run_gate

Progress = Callable[[str], None]
Each = Callable[[str, dict], None]


def run_models(config: str | Path, out_dir: str | Path, names: list[str], *, config_sha256: str | None = None,
               progress: Progress = lambda _: None, each: Each = lambda _n, _r: None, **run_args) -> dict:
    """Gate `names` (entries of gate.yml's `models:`) in order; returns the combined report.
    `run_args` go to run_gate (baseline, cache_dir, in_process, ...). A model whose run
    ends in an error is an error row; Ctrl-C stops the loop (the finished models' reports
    and a combined report of them stay written)."""
    out = Path(out_dir)
    reports: dict[str, dict | None] = {}
    try:
        for i, name in enumerate(names, 1):
            progress(f"model {i}/{len(names)}: {name}")
            reports[name] = run_gate(config, out / name, progress, model=name, **run_args)
            each(name, reports[name])
    finally:
        combined = combine({n: reports.get(n) for n in names}, config_sha256=config_sha256)
        write_report(combined, out)
    return combined
