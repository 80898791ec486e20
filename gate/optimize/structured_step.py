"""The structured_prune step: pick Dense/Conv2D layers by the policy, remove their
lowest-norm units/filters (gate.optimize.structured), fine-tune the smaller model."""
from __future__ import annotations

from typing import Any

from gate.config.steps import StructuredStep
from gate.errors import PolicyError
from gate.optimize.context import StepContext, StepOutput
from gate.optimize.finetune import compile_for, fit
from gate.optimize.select import choose

SHRINKABLE = ("Dense", "Conv2D")


def apply(model: Any, spec: StructuredStep, ctx: StepContext) -> StepOutput:
    from gate.optimize.structured import structured_prune

    output_layer = model.layers[-1].name

    def unsupported(layer: Any) -> str | None:
        if type(layer).__name__ not in SHRINKABLE:
            return f"structured_prune shrinks Dense and Conv2D only ({type(layer).__name__})"
        if layer.name == output_layer:
            return "the output layer defines the classes"
        return None

    selection = choose(model.layers, spec.layers, unsupported, "structured_prune")
    try:
        result = structured_prune(model, ratio=spec.ratio, norm=spec.norm, selected=set(selection.chosen),
                                  min_units=spec.min_units)
    except PolicyError as err:
        err.field = err.field or "steps.structured_prune"
        raise
    smaller = result.model
    compile_for(smaller, spec.finetune, ctx.compile_info, step="structured_prune")
    fit(smaller, spec.finetune, ctx.x, ctx.y)
    notes = [f"{s.name}: {s.before} -> {s.after} {'filters' if s.cls == 'Conv2D' else 'units'}" for s in result.shrunk]
    notes.append(f"parameters {result.params_before:,} -> {result.params_after:,}")
    sel = selection.to_dict()
    sel["skipped"] += [{"layer": n, "reason": r} for n, r in result.skipped]
    return StepOutput(smaller, sel, notes)
