"""Stage results -> sections of the run record (gate.report.record), as the worker
finishes each stage."""
from __future__ import annotations

from gate.config.metrics import FIDELITY
from gate.measure.bench import BenchResult
from gate.measure.proxies import Proxies
from gate.optimize.metrics import WeightStats
from gate.optimize.verify import Finding
from gate.report.record import Artifact, BaselineInfo
from gate.run.worker.base import BaseMeasurement
from gate.run.worker.candidate import MeasuredModel
from gate.verdict.check import Check


def artifacts(pr: MeasuredModel, bench: BenchResult, ref_proxies: Proxies, cand_proxies: Proxies,
              candidate_file: str) -> dict[str, Artifact]:
    """`reference` and `candidate`: each .tflite with how it was made, its sizes, latency,
    evaluation and proxies."""
    cand_latency = bench.stats["candidate"]
    sections = {
        "reference": {"role": "reference", "label": pr.reference_label, **pr.reference.info(),
                      **pr.reference_sizes.to_dict(),
                      "latency": bench.stats.get("reference", cand_latency).to_dict(),
                      "evaluation": pr.reference_eval.to_dict(), "proxies": ref_proxies.to_dict()},
        "candidate": {"role": "candidate", **pr.candidate.info(), **pr.candidate_sizes.to_dict(),
                      "file": candidate_file, "latency": cand_latency.to_dict(),
                      "evaluation": pr.candidate_eval.to_dict(), "proxies": cand_proxies.to_dict()},
    }
    return {name: Artifact.model_validate(data) for name, data in sections.items()}


def stages(pr: MeasuredModel, converted: dict[str, WeightStats], convert_seconds: float,
           findings: list[Finding]) -> dict:
    """`stages` (original, pruned, ..., converted) and `verification`."""
    from gate.optimize.metrics import model_totals

    focus = pr.stages[-1].focus
    row = {"name": "converted", "kind": "converted", "seconds": convert_seconds, "params": None,
           "weights": model_totals(converted, focus), "layers": {n: s.to_dict() for n, s in converted.items()},
           "selection": None, "notes": [],
           "accuracy": {f"top{k}": v for k, v in pr.candidate_eval.accuracy.items()},
           "bytes_raw": pr.candidate_sizes.bytes_raw, "bytes_gzip": pr.candidate_sizes.bytes_gzip}
    label_metrics = {n: m.value for n, m in pr.candidate_eval.metrics.items()
                     if m.value is not None and n.rsplit("/", 1)[-1] not in FIDELITY
                     and not ("/" not in n and (n == "accuracy" or n.startswith("top_")))}
    if label_metrics:
        row["metrics"] = label_metrics
    return {"stages": [s.to_dict() for s in pr.stages] + [row],
            "verification": {"on_loss": pr.policy.verify.on_loss, "findings": [f.to_dict() for f in findings]}}


def baseline(base: BaseMeasurement, checks: list[Check]) -> BaselineInfo:
    """`baseline`: the base branch's candidate and the checks judged against it."""
    side = base.side
    return BaselineInfo.model_validate({
            "sha": base.source.sha, "chosen": base.label, "unchanged": base.unchanged,
            "fingerprint": base.source.fingerprint or None, "notes": [*base.source.notes, *base.notes],
            "candidate": {"bytes_raw": side.sizes.bytes_raw, "bytes_gzip": side.sizes.bytes_gzip,
                          "sha256": side.sizes.sha256,
                          "accuracy": {f"top{k}": v for k, v in side.accuracy.items()},
                          "metrics": {n: m.value for n, m in side.metrics.items()} or None,
                          "paired": side.predictions is not None or any(
                              m.per_example is not None for m in side.metrics.values()),
                          "proxies": side.proxies},
            "comparison": {c.name: {"value": c.value, "low": c.ci_low, "high": c.ci_high, "passed": c.passed,
                                    "outcome": c.outcome, "detail": c.detail} for c in checks}})
