"""Latency of TFLite models in the LiteRT interpreter, measured side by side.

The reference and the candidate are timed in one process with the same settings,
interleaved visit by visit (order alternating each round) so that drift of a noisy
machine lands on both. A visit first runs the invokes a model needs to be warm again
after the other one ran (gate.measure.timing.settle_invokes, untimed), then VISIT_TIMED
timed invokes: the figures are warm, steady-state milliseconds of `invoke()` wall time,
as an app that runs its model over and over sees them. `first_ms` is the cold first call.
"""
from __future__ import annotations

import os
import platform
import time
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from gate.config.schema import BenchmarkSpec
from gate.measure.litert import interpreter_with_input, litert_version
from gate.measure.timing import settle_invokes

VISIT_TIMED = 5      # timed invokes per visit of a model


class Latency(BaseModel):
    """One model's timed invokes; also report.json's `latency` of an artifact."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    init_ms: float      # Interpreter() + allocate_tensors()
    first_ms: float     # the first invoke(), before warmup
    runs: int = Field(ge=1)
    mean_ms: float
    std_ms: float
    min_ms: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    warmup_ms: float | None = None        # a device tool's average warmup run (benchmark_model)
    peak_memory_mb: float | None = None   # benchmark_model --report_peak_memory_footprint

    def to_dict(self) -> dict:
        return self.model_dump(exclude_none=True)


@dataclass(frozen=True)
class BenchResult:
    stats: dict[str, Latency]
    settings: dict


def _ms(ns: int) -> float:
    return ns / 1e6


def summarize(times_ns: np.ndarray, init_ms: float, first_ms: float) -> Latency:
    ms = times_ns.astype(np.float64) / 1e6
    p50, p90, p99 = np.percentile(ms, [50, 90, 99])
    return Latency(init_ms=round(init_ms, 4), first_ms=round(first_ms, 4), runs=int(ms.size),
                        mean_ms=float(ms.mean()), std_ms=float(ms.std(ddof=1)) if ms.size > 1 else 0.0,
                        min_ms=float(ms.min()), p50_ms=float(p50), p90_ms=float(p90), p99_ms=float(p99),
                        max_ms=float(ms.max()))


class _Timed:
    """One interpreter with its input set once; invoke() is what is timed."""

    def __init__(self, name: str, content: bytes, example: Mapping[str, np.ndarray] | np.ndarray, threads: int):
        t0 = time.perf_counter_ns()
        self.interp = interpreter_with_input(content, example, threads=threads, where=name)
        self.init_ms = _ms(time.perf_counter_ns() - t0)
        self.times: list[int] = []
        t0 = time.perf_counter_ns()
        self.interp.invoke()
        self.first_ms = _ms(time.perf_counter_ns() - t0)

    def invoke(self) -> int:
        t0 = time.perf_counter_ns()
        self.interp.invoke()
        return time.perf_counter_ns() - t0


def benchmark(models: dict[str, bytes], example: Mapping[str, np.ndarray] | np.ndarray,
              spec: BenchmarkSpec) -> BenchResult:
    """Time every model in `models` interleaved; `example` is one real eval input (one
    array per input name)."""
    timed = {name: _Timed(name, content, example, spec.threads) for name, content in models.items()}
    order = list(timed.values())
    for t in order:
        for _ in range(spec.warmup):
            t.interp.invoke()
    settle = settle_invokes([[t.interp.invoke] for t in order])
    start = time.perf_counter()
    rounds = 0
    while len(order[0].times) < spec.runs or time.perf_counter() - start < spec.min_time_s:
        timed_now = min(VISIT_TIMED, max(1, spec.runs - len(order[0].times)))
        for t in (order if rounds % 2 == 0 else order[::-1]):
            for _ in range(settle):
                t.interp.invoke()
            t.times.extend(t.invoke() for _ in range(timed_now))
        rounds += 1
    stats = {name: summarize(np.array(t.times), t.init_ms, t.first_ms) for name, t in timed.items()}
    return BenchResult(stats, settings(spec, len(order[0].times), settle))


def settings(spec: BenchmarkSpec, runs: int, settle: int) -> dict:
    return {"threads": spec.threads, "warmup": spec.warmup, "runs": runs, "min_time_s": spec.min_time_s,
            "settle_invokes": settle, "invokes_per_visit": VISIT_TIMED,
            "method": f"interleaved visits, order alternating per round; each visit {settle} untimed invoke(s) to "
                      f"be warm after the other model, then up to {VISIT_TIMED} timed invoke() wall times",
            "interpreter": f"ai_edge_litert.interpreter.Interpreter {litert_version()}",
            "cpu": cpu_name(), "cpu_count": os.cpu_count(), "machine": platform.machine()}


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()
