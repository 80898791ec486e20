"""Where latency is measured: this machine (`local`), an Android device over adb
(`adb`: LiteRT's benchmark_model), a Linux board over ssh (`ssh`: the gate's own timing
script with the board's ai-edge-litert). One `Target` protocol for all three:

    open_target(spec, root) ─► Target
        .where                       what the report says the figures were measured on
        .benchmark(models, example, spec) ─► BenchResult (the measurements table)
        .sampler(baseline, candidate, example, threads=, warmup=, runs=) ─► Sampler | None
              Sampler.rounds(n) ─► cells[round, model, instance] in ns (model 0 = baseline):
              the interleaved A/B rounds gate.verdict.abtest judges with the same statistics
              as locally (None: local, timed in this process by compare_latency itself)
        .delegation(name, content) ─► Delegation, or why it could not be measured (str)
        .outputs(name, content, arrays) ─► {output: array}  (evaluate.on_target; ssh only)
        .close()                     removes everything it put on the device

The protocol's types (`Where`, `Sampler`, `Target`) live in `protocol.py`.

A target that cannot be reached raises gate.errors.TargetError (exit 2, naming the
benchmark.target field); a run that crashes on the device raises TargetCrash.
"""
from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from gate.config.schema import BenchmarkSpec
from gate.measure.targets.protocol import Sampler, Target, Where

__all__ = ["Sampler", "Target", "Where", "open_target"]


@contextmanager
def open_target(spec: BenchmarkSpec, root: Path) -> Iterator[Target]:
    """The configured target, connected and checked; closed (cleaned up) on exit. Paths in
    the target's settings are relative to `root` (gate.yml's directory)."""
    if spec.target == "local":
        from gate.measure.targets.local import LocalTarget

        target: Target = LocalTarget()
    elif spec.target.adb is not None:
        from gate.measure.targets.adb import AdbTarget

        target = AdbTarget(spec.target.adb, root)
    else:
        from gate.measure.targets.ssh import SshTarget

        target = SshTarget(spec.target.ssh, root)
    try:
        yield target
    finally:
        target.close()
