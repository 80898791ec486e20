"""Apply a policy's steps in order. The model is flattened and every step planned first
(gate.optimize.preflight: what each step will touch, what stays float or dense, what would
fail), before any fine-tuning. Each step then starts from its own copy of the previous
stage's model, fine-tunes, strips its wrappers (QAT's stay for the converter), and is
measured: accuracy, per-layer weight stats, float TFLite bytes, wall time. Each finished
stage is handed to `on_stage` at once, so an error report keeps it."""
from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import Any, Callable

from gate.config.steps import Step
from gate.errors import PolicyError
from gate.optimize import cluster, prune, qat, structured_step
from gate.optimize.context import StepContext, StepOutput, stage_name
from gate.optimize.metrics import WeightStats, keras_layer_stats, model_totals

Apply = Callable[[Any, Any, StepContext], StepOutput]

STEPS: dict[str, Apply] = {
    "prune": prune.apply,
    "cluster": cluster.apply,
    "qat": qat.apply,
    "structured_prune": structured_step.apply,
}

Measure = Callable[[Any, bool], dict]   # (model, convertible) -> {"accuracy", "bytes_raw", ...}


@dataclass
class Stage:
    name: str
    kind: str
    seconds: float
    params: int | None
    layers: dict[str, WeightStats] | None   # None: not measurable on Keras (QAT: see converted)
    selection: dict | None
    notes: list[str]
    measured: dict
    focus: set[str] | None = None   # clustered layers: where "unique values" is meaningful

    def to_dict(self) -> dict:
        layers = self.layers or {}
        return {"name": self.name, "kind": self.kind, "seconds": round(self.seconds, 3), "params": self.params,
                **({"weights": model_totals(layers, self.focus)} if self.layers is not None else {}),
                "layers": {n: s.to_dict() for n, s in layers.items()},
                "selection": self.selection, "notes": self.notes, **self.measured}


def check_supported(model: Any) -> None:
    """Refuse what tfmot cannot wrap, naming the layers."""
    from gate.measure.tfenv import keras

    k = keras()
    if not (isinstance(model, k.Sequential) or getattr(model, "_is_graph_network", False)):
        raise PolicyError(f"optimization steps need a Sequential or functional model; "
                          f"{type(model).__name__} is subclassed", field="policy.steps",
                          hint="rebuild the model with the functional API, or use a PTQ-only policy")


@dataclass(frozen=True)
class Prepared:
    """The model the steps start from (a copy, nested models inlined) and the plan."""

    original: Any
    plan: Any          # gate.optimize.preflight.Plan
    notes: tuple[str, ...]


def prepare(model: Any, steps: list[Step], ctx: StepContext,
            record: Callable[[dict], None] = lambda _plan: None) -> Prepared:
    """Copy and flatten the model, then plan every step on it (fails early, see preflight).
    `record` gets the plan as report data as soon as it exists."""
    from gate.optimize.finetune import copy_model
    from gate.optimize.flatten import flatten, nested_models
    from gate.optimize.preflight import plan_steps

    check_supported(model)
    original = copy_model(model)  # the caller's model is never touched
    notes = []
    nested = nested_models(original)
    if nested:
        original = flatten(original)
        notes.append(f"flattened the nested model(s) {', '.join(nested)} into one graph so tfmot can wrap "
                     "their layers")
    return Prepared(original, plan_steps(original, steps, ctx, record), tuple(notes))


def apply_steps(model: Any, steps: list[Step], ctx: StepContext, measure: Measure,
        progress: Callable[[str], None] = lambda _: None, *, prepared: Prepared | None = None,
        on_stage: Callable[[list[Stage]], None] = lambda _stages: None,
        original_figures: dict | None = None) -> tuple[Any, list[Stage]]:
    """`original_figures`: what `measure` would say of the original (the caller measured the
    committed model already: its evaluation and float32 conversion), so it is not redone."""
    prepared = prepared or prepare(model, steps, ctx)
    original = prepared.original
    figures = original_figures if original_figures is not None else measure(original, True)
    stages = [Stage("original", "original", 0.0, int(original.count_params()), keras_layer_stats(original), None,
                    list(prepared.notes), figures)]
    on_stage(stages)
    current = original
    kinds = [s.kind for s in steps]
    clustered: set[str] = set()
    for i, step in enumerate(steps):
        name = stage_name(step.kind, i, kinds)
        label = f"step {i + 1}/{len(steps)} {step.kind}"
        progress(f"{label} ({name})")
        start = time.perf_counter()
        step_ctx = replace(ctx, label=label, progress=progress, plan=prepared.plan.steps[i])
        out = STEPS[step.kind](current, step.spec, step_ctx)
        seconds = time.perf_counter() - start
        is_qat = step.kind == "qat"
        if step.kind == "cluster":
            clustered.update(out.selection.get("changed", []))
        params = None if is_qat else int(out.model.count_params())  # QAT adds quantizer variables
        stages.append(Stage(name, step.kind, seconds, params,
                            None if is_qat else keras_layer_stats(out.model), out.selection, out.notes,
                            measure(out.model, not is_qat)))
        current = out.model
        for stage in stages:
            stage.focus = clustered
        on_stage(stages)
    return current, stages
