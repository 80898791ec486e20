"""The benchmark target's share of `gate check` (gate.measure.targets): the judged evidence
timed on the device, the delegation part of the report, and (evaluate.on_target) both
models scored from the outputs the device computed."""
from __future__ import annotations

import time
from dataclasses import replace

from gate.config.load import GateConfig
from gate.measure.evaluate import EvalResult, map_outputs
from gate.measure.targets import Target
from gate.run.stagelog import StageLog
from gate.run.worker.candidate import MeasuredModel
from gate.units import percent
from gate.verdict.abtest import target_comparer
from gate.verdict.evidence import Evidence


def on_device(ev: Evidence, target: Target, cfg: GateConfig) -> Evidence:
    """The evidence with the target's delegation profile and, on a device, its A/B test."""
    if target.where.kind == "local":
        return replace(ev, delegation=target.delegation)
    spec = cfg.benchmark.target
    rounds = (spec.adb or spec.ssh).rounds
    return replace(ev, delegation=target.delegation, measured_on=target.where.name,
                   compare_latency=target_comparer(target, rounds=rounds, runs=cfg.benchmark.runs))


def record_delegation(pr: MeasuredModel, target: Target, cfg: GateConfig, log: StageLog) -> None:
    """`delegation` in the report: each model's ops on the accelerator vs the CPU (adb's op
    profile; an ssh board's litert-benchmark with its accelerator)."""
    spec = cfg.benchmark.target
    if target.where.kind == "adb":
        delegate = spec.adb.delegate
    elif target.where.kind == "ssh" and spec.ssh.accelerator != "cpu":
        delegate = spec.ssh.accelerator
    else:
        return
    out = {"measured_on": target.where.name, "delegate": delegate}
    models = {"candidate": pr.candidate.content} if pr.same_file else {
        "reference": pr.reference.content, "candidate": pr.candidate.content}
    for name, content in models.items():
        found = target.delegation(name, content)
        out[name] = {"unavailable": found} if isinstance(found, str) else found.to_dict()
    log.keep(delegation=out)


def on_target(pr: MeasuredModel, cfg: GateConfig, log: StageLog, target: Target) -> None:
    """evaluate.on_target: both models run over the eval split on the target; scored here
    with the same metrics as the runner's figures, and kept beside them."""
    if not cfg.evaluate.on_target or pr.scoring is None:
        return
    with log.stage("evaluate_on_target", f"scoring both models on {target.where.name}"):
        out: dict = {"measured_on": target.where.name}
        models = {"reference": pr.reference, "candidate": pr.candidate}
        runner = {"reference": pr.reference_eval, "candidate": pr.candidate_eval}
        for name, converted in models.items():
            start = time.perf_counter()
            raw = target.outputs(name, converted.content, pr.scoring.split.x)
            outputs = map_outputs(raw, pr.facts.output_names, where=f"{name} model on {target.where.name}",
                                  layers=pr.facts.output_layers)
            result: EvalResult = pr.scoring.score(outputs, time.perf_counter() - start, pr.original.outputs)
            out[name] = result.to_dict(with_predictions=False)
            mine, theirs = result.accuracy.get(1), runner[name].accuracy.get(1)
            if mine is not None and theirs is not None and abs(mine - theirs) > 1e-12:
                log.note(f"{name} accuracy on {target.where.name} is {percent(mine)}, on the runner "
                         f"{percent(theirs)}: the device's kernels give different outputs")
    log.keep(on_target=out)
