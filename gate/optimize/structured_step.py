"""The structured_prune step: pick Dense/Conv2D/SeparableConv2D layers by the policy,
remove their lowest-norm units/filters channel group by channel group
(gate.optimize.structured: residual adds, concatenations, depthwise convs and BN are
pruned together), check the rebuilt model, fine-tune it."""
from __future__ import annotations

from typing import Any

from gate.config.steps import StructuredStep
from gate.errors import PolicyError
from gate.optimize.context import StepContext, StepOutput
from gate.optimize.finetune import compile_for, fit
from gate.optimize.select import Selection, check_per_layer, choose, model_roles

SHRINKABLE = ("Dense", "Conv2D", "SeparableConv2D")
OUTPUT = "the output layer defines the classes"


def selection(model: Any, spec: StructuredStep) -> Selection:
    from gate.optimize.roles import output_layers

    outputs = output_layers(model)

    def unsupported(layer: Any) -> str | None:
        if type(layer).__name__ not in SHRINKABLE:
            return f"structured_prune shrinks {', '.join(SHRINKABLE)} only ({type(layer).__name__})"
        if layer.name in outputs:
            return OUTPUT
        return None

    chosen = choose(model.layers, spec.layers, unsupported, "structured_prune", model_roles(model, spec.layers))
    check_per_layer(spec.per_layer, model.layers, chosen, "structured_prune")
    return chosen


def apply(model: Any, spec: StructuredStep, ctx: StepContext) -> StepOutput:
    from gate.optimize.structured import structured_prune

    sel = selection(model, spec)
    try:
        result = structured_prune(model, ratio=spec.ratio, norm=spec.norm, selected=set(sel.chosen),
                                  min_units=spec.min_units, ratios=dict(spec.per_layer))
    except PolicyError as err:
        err.field = err.field or "steps.structured_prune"
        raise
    smaller = result.model
    compile_for(smaller, spec.finetune, ctx.compile_info, step="structured_prune")
    fit(smaller, spec.finetune, ctx.x, ctx.y, ctx=ctx)
    unit = {"Dense": "units"}
    notes = [f"{s.name}: {s.before} -> {s.after} {unit.get(s.cls, 'filters')}" for s in result.shrunk]
    notes.append(f"parameters {result.params_before:,} -> {result.params_after:,}; {len(result.shrunk)} layer(s) "
                 f"in {sum(g.after < g.size for g in result.groups)} channel group(s) shrunk, "
                 f"{sum(g.reason is not None for g in result.groups)} group(s) kept whole")
    out = sel.to_dict()
    chosen_shrunk = {s.name for s in result.shrunk}
    out["changed"] = [n for n in out["changed"] if n in chosen_shrunk]
    out["skipped"] += [{"layer": n, "reason": r} for n, r in result.skipped]
    if spec.per_layer:
        out["per_layer"] = dict(spec.per_layer)
    return StepOutput(smaller, out, notes)
