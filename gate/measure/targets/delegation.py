"""How much of a model runs on the accelerator: from benchmark_model's delegation lines and
its op profile (--enable_op_profiling). XNNPACK is LiteRT's CPU delegate: ops it runs are
on the CPU."""
from __future__ import annotations

from dataclasses import asdict, dataclass

from gate.measure.targets.benchmark_model import BenchmarkModelRun
from gate.units import percent

CPU_DELEGATES = ("TfLiteXNNPackDelegate", "XNNPACK", "YNNPackDelegate", "YNNPACK")
DELEGATE_KERNELS = {"gpu": ("TfLiteGpuDelegateV2", "TfLiteGpuDelegate", "LITERT_OPENGL", "LITERT_OPENCL", "GPU"),
                    "nnapi": ("TfLiteNnapiDelegate", "NNAPI")}


@dataclass(frozen=True)
class Delegation:
    delegate: str                 # what was asked for: gpu | nnapi | none
    accelerator: str | None       # the delegate kernel that took ops (None: nothing delegated)
    total_ops: int                # nodes of the graph before delegation
    accelerated_ops: int | None   # nodes replaced by the accelerator's kernels (None: the tool does not say)
    partitions: int               # accelerator partitions (delegate kernels in the execution plan)
    cpu_ops: tuple[str, ...]      # "TYPE [name]" of the nodes left on the CPU (from the op profile)
    source: str

    @property
    def share(self) -> float | None:
        if self.accelerated_ops is None:
            return None
        return self.accelerated_ops / self.total_ops if self.total_ops else 0.0

    @property
    def full(self) -> bool:
        return self.total_ops > 0 and self.accelerated_ops == self.total_ops and self.partitions == 1

    def to_dict(self) -> dict:
        return {**asdict(self), "cpu_ops": list(self.cpu_ops), "share": self.share, "full": self.full}

    def summary(self) -> str:
        if self.delegate == "none":
            return f"{self.total_ops} ops on the CPU (no accelerator delegate configured)"
        if self.share is None:
            return (f"not fully accelerated on {self.accelerator or self.delegate} ({self.total_ops} ops; the tool "
                    "does not say how many fell back to the CPU)")
        return (f"{self.accelerated_ops} of {self.total_ops} ops on {self.accelerator or self.delegate} "
                f"({percent(self.share)}), {self.partitions} partition(s)")


def from_run(run: BenchmarkModelRun, delegate: str) -> Delegation:
    """The accelerator's share of one profiled benchmark_model run (`delegate`: gpu, nnapi or
    none, as configured)."""
    wanted = DELEGATE_KERNELS.get(delegate, ())
    mine = [r for r in run.replacements if r.delegate not in CPU_DELEGATES
            and (not wanted or r.delegate in wanted or delegate != "none")]
    profile_types = {op.node_type for op in run.ops}
    nodes = max((r.nodes for r in run.replacements), default=0)   # the first replacement sees the whole graph
    if delegate == "none" or not mine:
        kernels = set()
        accelerated, accelerator = 0, None
    else:
        accelerator = mine[0].delegate
        kernels = {r.delegate for r in mine} | set(wanted)
        accelerated = sum(r.replaced for r in mine)
    partitions = 0
    for name, how, count in run.applied:
        if name.lower() == delegate:
            partitions = count if count is not None else partitions
    if accelerated and not partitions:
        partitions = sum(1 for op in run.ops if op.node_type in kernels) or 1
    cpu_ops = tuple(f"{op.node_type} [{op.name}]" for op in run.ops if op.node_type not in kernels)
    if not nodes:   # no delegation lines at all: the op profile is the graph
        nodes = len(run.ops)
    return Delegation(delegate, accelerator, nodes, accelerated, partitions, cpu_ops,
                      "benchmark_model --enable_op_profiling (delegation log and Run Order table)")


def from_result_json(result: dict, accelerator: str, total_ops: int) -> Delegation:
    """LiteRT's `litert-benchmark --result_json` (CompiledModel API): `accelerators` and
    `fully_accelerated`, no per-op counts; the op count is the model's own."""
    names = [str(a) for a in result.get("accelerators") or []]
    fully = bool(result.get("fully_accelerated"))
    source = "litert-benchmark --result_json (accelerators, fully_accelerated)"
    if accelerator == "cpu":
        return Delegation("none", None, total_ops, 0, 0, (), source)
    on_it = any(accelerator.lower() in n.lower() for n in names)
    accelerated = total_ops if fully and on_it else (0 if not on_it else None)
    return Delegation(accelerator, ",".join(names) or None, total_ops, accelerated, 1 if accelerated else 0,
                      (), source)
