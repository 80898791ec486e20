"""The runner's own CPU: today's in-process benchmark (gate.measure.bench) and A/B test."""
from __future__ import annotations

import os
import platform
from collections.abc import Mapping

import numpy as np

from gate.config.schema import BenchmarkSpec
from gate.measure.bench import BenchResult, benchmark, cpu_name
from gate.measure.targets.protocol import Where
from gate.measure.targets.delegation import Delegation


class LocalTarget:
    def __init__(self) -> None:
        self.where = Where("local", f"runner CPU ({cpu_name()})",
                           {"cpu": cpu_name(), "cpu_count": os.cpu_count(), "machine": platform.machine()})

    def benchmark(self, models: dict[str, bytes], example: Mapping[str, np.ndarray],
                  spec: BenchmarkSpec) -> BenchResult:
        result = benchmark(models, example, spec)
        return BenchResult(result.stats, {**result.settings, "measured_on": self.where.name})

    def sampler(self, baseline: bytes, candidate: bytes, example, *, threads: int, warmup: int, runs: int) -> None:
        return None     # gate.verdict.abtest.compare_latency times both models in this process

    def delegation(self, name: str, content: bytes) -> Delegation | str:
        return ("delegation is measured on the device: set benchmark.target to {adb: {..., delegate: gpu}} "
                "(here the runner's CPU runs every op)")

    def outputs(self, name: str, content: bytes, arrays):
        raise NotImplementedError("the runner's own outputs come from gate.measure.evaluate")

    def close(self) -> None:
        pass
