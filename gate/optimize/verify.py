"""Did a later stage lose what an earlier one achieved? Per layer: sparsity reached by
pruning must not fall back, unique values reached by clustering must not grow."""
from __future__ import annotations

from dataclasses import asdict, dataclass

from gate.config.steps import Verify
from gate.optimize.metrics import WeightStats


@dataclass(frozen=True)
class Finding:
    stage: str
    layer: str
    what: str            # "sparsity" | "clusters"
    achieved: float      # by the earlier stage
    achieved_at: str
    now: float
    message: str

    def to_dict(self) -> dict:
        return asdict(self)


def verify(stages: list[tuple[str, str, dict[str, WeightStats] | None]], policy: Verify) -> list[Finding]:
    """`stages`: (stage name, step kind, per-layer stats or None when not measurable), in order."""
    sparsity: dict[str, tuple[float, str]] = {}
    clusters: dict[str, tuple[int, str]] = {}
    findings: list[Finding] = []
    for name, kind, per_layer in stages:
        if per_layer is None:
            continue
        for layer, s in per_layer.items():
            if layer in sparsity:
                got, at = sparsity[layer]
                if s.sparsity < got - policy.sparsity_tolerance:
                    findings.append(Finding(name, layer, "sparsity", got, at, s.sparsity,
                                            f"{name}: layer '{layer}' sparsity fell from {got:.1%} ({at}) to "
                                            f"{s.sparsity:.1%}"))
            if layer in clusters:
                got_u, at = clusters[layer]
                if s.unique_per_channel > got_u + policy.cluster_tolerance:
                    findings.append(Finding(name, layer, "clusters", got_u, at, s.unique_per_channel,
                                            f"{name}: layer '{layer}' has {s.unique_per_channel} unique values "
                                            f"per channel, {at} left {got_u}"))
            if kind == "prune":
                sparsity[layer] = (s.sparsity, name)
            elif kind == "cluster":
                clusters[layer] = (s.unique_per_channel, name)
    return findings
