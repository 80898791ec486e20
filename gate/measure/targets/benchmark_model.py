"""What LiteRT's `benchmark_model` prints, read into figures. No LiteRT import: this is text.

The lines come from LiteRT's sources (tflite/tools/benchmark/ in google-ai-edge/LiteRT):

- benchmark_model.cc, `BenchmarkLoggingListener::OnBenchmarkEnd`:
  `Inference timings in us: Init: 25317, First inference: 16143, Warmup (avg): 10573.2, Inference (avg): 10407.1`
  (older builds: `Average inference timings in us: Warmup: 83235, Init: 38467, Inference: 79760.9`),
  `Memory footprint delta from the start of the tool (MB): init=6.01953 overall=13.0742`,
  `Overall peak memory footprint (MB) via periodic monitoring: 13.5` (--report_peak_memory_footprint);
- benchmark_model.cc, `Run`: the `Stat` line of each phase, `count=96 first=10324 curr=10212 min=10021
  max=11433 avg=10407.1 std=255` (warmup first, then the timed runs; `count=1 curr=...` when every
  value was the same);
- benchmark_tflite_model.cc, `Init`: `Explicitly applied GPU delegate, and the model graph will be
  completely executed by the delegate.` / `... partially executed by the delegate w/ 2 delegate kernels.` /
  `Though GPU delegate is explicitly applied, the model graph will not be executed by the delegate.`;
- tflite/core/subgraph.cc: `Replacing 60 out of 63 node(s) with delegate (TfLiteGpuDelegateV2) node,
  yielding 3 partitions for subgraph 0 (main).` (older: `... yielding 3 partitions.`);
- tflite/profiling/profile_summary_formatter.cc (--enable_op_profiling): `Operator-wise Profiling Info
  for Regular Benchmark Runs:` then `Run Order` rows: node type, start, first, avg ms, %, cdf%, mem KB,
  times called, [name].

Lines may carry a logcat or `INFO: ` prefix; both are ignored. tests/fixtures/benchmark_model/ holds
captured outputs from LiteRT's docs.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

_PREFIX = re.compile(r"^(?:\S+ \S+\s+\d+\s+\d+ [VDIWEF] [^:]*:\s*)?(?:(?:INFO|WARNING|WARN|ERROR|VERBOSE): )?")
_TIMINGS = re.compile(r"Inference timings in us: Init: ([\d.e+]+), First inference: ([\d.e+]+), "
                      r"Warmup \(avg\): ([\d.e+]+), Inference \(avg\): ([\d.e+]+)")
_OLD_TIMINGS = re.compile(r"Average inference timings in us: Warmup: ([\d.e+]+), Init: ([\d.e+]+), "
                          r"(?:no stats: [\d.e+]+|Inference: ([\d.e+]+))")
_STAT = re.compile(r"^count=(\d+)(?: first=(-?[\d.e+]+))? curr=(-?[\d.e+]+)(?:\(all same\))?"
                   r"(?: min=(-?[\d.e+]+) max=(-?[\d.e+]+) avg=(-?[\d.e+]+) std=(-?[\d.e+]+))?")
_MEMORY = re.compile(r"Memory footprint delta from the start of the tool \(MB\): init=(-?[\d.e+]+) "
                     r"overall=(-?[\d.e+]+)")
_PEAK = re.compile(r"Overall peak memory footprint \(MB\) via periodic monitoring: (-?[\d.e+]+)")
_REPLACING = re.compile(r"Replacing (\d+) out of (\d+) node\(s\) with delegate \(([^)]+)\) node"
                        r"(?:, yielding (\d+) partitions)?")
_APPLIED = re.compile(r"Explicitly applied (\S+) delegate, and the model graph will be (completely|partially) "
                      r"executed by the delegate(?: w/ (\d+) delegate kernels)?")
_NOT_APPLIED = re.compile(r"Though (\S+) delegate is explicitly applied, the model graph will not be executed")
_PROFILE_HEADER = "Operator-wise Profiling Info for Regular Benchmark Runs:"
_ROW = re.compile(r"^\s*(\S.*?)\s+(-?[\d.]+)\s+(-?[\d.]+)\s+(-?[\d.]+)\s+(-?[\d.]+)%\s+(-?[\d.]+)%\s+(-?[\d.]+)\s+"
                  r"(\d+)\s+\[(.*)\]\s*$")


@dataclass(frozen=True)
class Stat:
    """One `Stat` line: microseconds."""

    count: int
    first: float
    curr: float
    min: float
    max: float
    avg: float
    std: float


@dataclass(frozen=True)
class OpRow:
    """One row of the op profile's Run Order table."""

    node_type: str
    name: str
    first_ms: float
    avg_ms: float
    percent: float


@dataclass(frozen=True)
class Replacement:
    """One `Replacing N out of M node(s) with delegate (X) node` line."""

    delegate: str
    replaced: int
    nodes: int
    partitions: int | None


@dataclass(frozen=True)
class BenchmarkModelRun:
    init_us: float
    first_us: float | None
    warmup_avg_us: float
    inference_avg_us: float
    inference: Stat | None            # the timed runs' Stat line (the last one printed)
    warmup: Stat | None
    memory_init_mb: float | None = None
    memory_overall_mb: float | None = None
    peak_memory_mb: float | None = None
    replacements: tuple[Replacement, ...] = ()
    applied: tuple[tuple[str, str, int | None], ...] = ()   # (delegate, completely|partially|not, kernels)
    ops: tuple[OpRow, ...] = field(default=(), repr=False)


class OutputError(ValueError):
    """The text is not a finished benchmark_model run."""


def _clean(line: str) -> str:
    return _PREFIX.sub("", line.rstrip("\r\n"), count=1)


def parse(text: str) -> BenchmarkModelRun:
    """Figures of one benchmark_model run from its combined stdout/stderr."""
    lines = [_clean(line) for line in text.splitlines()]
    timings = None
    stats: list[Stat] = []
    memory = peak = None
    replacements: list[Replacement] = []
    applied: list[tuple[str, str, int | None]] = []
    for line in lines:
        if m := _TIMINGS.search(line):
            timings = (float(m[1]), float(m[2]), float(m[3]), float(m[4]))
        elif m := _OLD_TIMINGS.search(line):
            timings = (float(m[2]), None, float(m[1]), float(m[3]) if m[3] else float("nan"))
        elif m := _STAT.match(line.strip()):
            curr = float(m[3])
            stats.append(Stat(int(m[1]), float(m[2]) if m[2] else curr, curr,
                              float(m[4]) if m[4] else curr, float(m[5]) if m[5] else curr,
                              float(m[6]) if m[6] else curr, float(m[7]) if m[7] else 0.0))
        elif m := _MEMORY.search(line):
            memory = (float(m[1]), float(m[2]))
        elif m := _PEAK.search(line):
            peak = float(m[1])
        elif m := _REPLACING.search(line):
            replacements.append(Replacement(m[3], int(m[1]), int(m[2]), int(m[4]) if m[4] else None))
        elif m := _APPLIED.search(line):
            applied.append((m[1], m[2], int(m[3]) if m[3] else (1 if m[2] == "completely" else None)))
        elif m := _NOT_APPLIED.search(line):
            applied.append((m[1], "not", 0))
    if timings is None:
        raise OutputError("no 'Inference timings in us:' line: the run did not finish")
    init, first, warm, inference = timings
    timed = [s for s in stats if s.count > 0]
    return BenchmarkModelRun(
        init_us=init, first_us=first, warmup_avg_us=warm, inference_avg_us=inference,
        inference=timed[-1] if timed else None, warmup=timed[0] if len(timed) > 1 else None,
        memory_init_mb=memory[0] if memory else None, memory_overall_mb=memory[1] if memory else None,
        peak_memory_mb=peak, replacements=tuple(replacements), applied=tuple(applied), ops=parse_ops(lines))


def parse_ops(lines: list[str]) -> tuple[OpRow, ...]:
    """The Run Order table of the regular runs' op profile (the primary graph's first)."""
    start = next((i for i, line in enumerate(lines) if _PROFILE_HEADER in line), None)
    if start is None:   # the table printed on its own (LiteRT's README shows it so)
        start = next((i - 1 for i, line in enumerate(lines) if "Run Order" in line), None)
    if start is None:
        return ()
    rows: list[OpRow] = []
    in_table = False
    for line in lines[start + 1:]:
        if "Run Order" in line:
            if rows:        # a second graph's table: the primary graph is enough
                break
            in_table = True
            continue
        if not in_table or "[node type]" in line:
            continue
        m = _ROW.match(line)
        if m is None:
            if rows:
                break
            continue
        rows.append(OpRow(m[1].strip(), m[9], float(m[3]), float(m[4]), float(m[5])))
    return tuple(rows)
