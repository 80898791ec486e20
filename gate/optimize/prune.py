"""Magnitude pruning (tfmot.sparsity.keras.prune_low_magnitude), stripped after fine-tuning."""
from __future__ import annotations

import importlib
from typing import Any

from gate.config.steps import CustomSchedule, PruneStep, ScheduleName
from gate.errors import PolicyError
from gate.optimize.context import StepContext, StepOutput
from gate.optimize.finetune import compile_for, copy_model, fit, train_steps
from gate.optimize.select import check_per_layer, choose, model_roles, select_layers, wrap_chosen

XNNPACK_HINT = ("PruneForLatencyOnXNNPack needs the stem XNNPACK's sparse kernels start from: a Conv2D 3x3 over 3 "
                "input channels, strides 2, padding 'valid' after ZeroPadding2D(((1, 1), (1, 1))), symmetric "
                "ZeroPadding2D before each stride-2 depthwise conv, 1x1 convs, a GlobalAveragePooling2D head. "
                "Stock keras.applications MobileNets use 'same' or asymmetric padding; re-padding a trained model "
                "shifts its sampling grid, so the model must be built and trained that way. Otherwise use "
                "prune-int8 or structured-int8")


def schedule_window(spec: PruneStep, total_steps: int) -> tuple[int, int, int, list[str]]:
    """(begin, end, frequency, notes). end_step: auto ends with training; the frequency is
    lowered when it would not fit, and end is aligned so the final update lands on it."""
    notes = []
    begin = spec.begin_step
    last = max(total_steps - 1, 0)
    end = last if spec.end_step == "auto" else spec.end_step
    if begin >= last:
        raise PolicyError(f"prune: begin_step {begin} is past the {total_steps} training steps "
                          f"(train examples / batch size x epochs)", field="steps.prune.begin_step")
    if end > last:
        notes.append(f"end_step {end} is past the last training step {last}: the final sparsity is not reached")
    freq = spec.frequency
    span = end - begin
    if freq > max(span // 4, 1):
        freq = max(1, span // 10)
        notes.append(f"frequency {spec.frequency} is too coarse for {span} pruning steps: used {freq}")
    if spec.end_step == "auto":
        end = begin + (span // freq) * freq
    return begin, end, freq, notes


def _custom_schedule(ref: str, ctx: StepContext) -> Any:
    if not ctx.allow_custom_code:
        raise PolicyError(f"prune: custom schedule {ref!r} runs code from the repository; it is honoured only "
                          "when the base branch's config trusts model code", field="steps.prune.schedule.custom")
    module, _, cls = ref.partition(":")
    try:
        obj = getattr(importlib.import_module(module), cls)
    except (ImportError, AttributeError) as exc:
        raise PolicyError(f"prune: cannot import custom schedule {ref!r}: {exc}",
                          field="steps.prune.schedule.custom") from None
    from gate.measure.tfenv import tfmot

    if not (isinstance(obj, type) and issubclass(obj, tfmot().sparsity.keras.PruningSchedule)):
        raise PolicyError(f"prune: {ref!r} is not a tfmot PruningSchedule subclass", field="steps.prune.schedule.custom")
    return obj()


def build_schedule(spec: PruneStep, total_steps: int, ctx: StepContext) -> tuple[Any, list[str]]:
    from gate.measure.tfenv import tfmot

    sk = tfmot().sparsity.keras
    if isinstance(spec.schedule, CustomSchedule):
        return _custom_schedule(spec.schedule.custom, ctx), []
    begin, end, freq, notes = schedule_window(spec, total_steps)
    if spec.schedule == ScheduleName.constant:
        return sk.ConstantSparsity(spec.target_sparsity, begin, end_step=end, frequency=freq), notes
    final = spec.final_sparsity if spec.final_sparsity is not None else 0.5
    return sk.PolynomialDecay(spec.initial_sparsity, final, begin, end, power=spec.power, frequency=freq), notes


def layer_spec(spec: PruneStep, name: str) -> PruneStep:
    """The step as it applies to one layer: its `per_layer` sparsity in place of the global
    one, the schedule's shape kept (a polynomial decay starts no higher than it ends)."""
    if name not in spec.per_layer:
        return spec
    s = spec.per_layer[name]
    if spec.schedule == ScheduleName.constant:
        return spec.model_copy(update={"target_sparsity": s})
    return spec.model_copy(update={"final_sparsity": s, "initial_sparsity": min(spec.initial_sparsity, s)})


def unsupported(layer: Any) -> str | None:
    """Why tfmot's magnitude pruning cannot touch a layer (its PruneRegistry), or None."""
    from gate.measure.tfenv import tfmot

    sk = tfmot().sparsity.keras
    from tensorflow_model_optimization.python.core.sparsity.keras.prune_registry import (
        PruneRegistry,
    )

    cls = type(layer).__name__
    if isinstance(layer, sk.PrunableLayer) or hasattr(layer, "get_prunable_weights"):
        return None
    if not PruneRegistry.supports(layer):
        return f"unsupported by tfmot pruning ({cls} is not in its PruneRegistry)"
    if not PruneRegistry._weight_names(layer):  # noqa: SLF001 - tfmot's own table of prunable weights
        return f"unsupported by tfmot pruning (no prunable weights: tfmot does not prune {cls})"
    return None


def xnnpack_refusal(model: Any) -> PolicyError | None:
    """The PolicyError for a model PruneForLatencyOnXNNPack would refuse, naming the layers."""
    from gate.optimize.xnnpack import xnnpack_problems

    problems = xnnpack_problems(model)
    if not problems:
        return None
    shown = "; ".join(problems[:3]) + (f"; and {len(problems) - 3} more" if len(problems) > 3 else "")
    return PolicyError(f"prune: pruning_policy xnnpack (tfmot's PruneForLatencyOnXNNPack) refuses this model: "
                       f"{shown}", field="steps.prune.pruning_policy", hint=XNNPACK_HINT)


def _xnnpack_policy(sk: Any, excluded: set[str]) -> Any:
    class Policy(sk.PruneForLatencyOnXNNPack):
        """tfmot's choice (1x1 convs of the sparse subgraph) minus the layers the policy excludes."""

        def allow_pruning(self, layer: Any) -> bool:
            return super().allow_pruning(layer) and layer.name not in excluded

    return Policy()


def apply(model: Any, spec: PruneStep, ctx: StepContext) -> StepOutput:
    from gate.measure.tfenv import tfmot

    sk = tfmot().sparsity.keras
    total = max(train_steps(ctx.n, spec.finetune), 1)
    schedule, notes = build_schedule(spec, total, ctx)
    kwargs: dict = {"pruning_schedule": schedule, "block_size": tuple(spec.block_size)}
    if spec.sparsity_m_by_n:
        kwargs["sparsity_m_by_n"] = tuple(spec.sparsity_m_by_n)
    work = copy_model(model)
    roles = model_roles(work, spec.layers)
    if spec.pruning_policy == "xnnpack":
        refusal = xnnpack_refusal(work)
        if refusal is not None:
            raise refusal
        policy_sel = select_layers(work.layers, spec.layers, lambda _layer: None, roles)
        excluded = {n: r for n, r in policy_sel.skipped}
        try:
            wrapped = sk.prune_low_magnitude(work, pruning_policy=_xnnpack_policy(sk, set(excluded)), **kwargs)
        except ValueError as exc:
            raise PolicyError(f"prune: pruning_policy xnnpack refuses this model: {exc}",
                              field="steps.prune.pruning_policy", hint=XNNPACK_HINT) from None
        from tensorflow_model_optimization.python.core.sparsity.keras.pruning_wrapper import (
            PruneLowMagnitude,
        )

        chosen = [layer.layer.name for layer in wrapped.layers if isinstance(layer, PruneLowMagnitude)]
        skipped = [{"layer": n, "reason": r} for n, r in excluded.items()   # what tfmot would have taken
                   if tuple(getattr(work.get_layer(n), "kernel_size", ())) == (1, 1)]
        selection_dict = {"changed": chosen, "skipped": skipped, "note": "layers chosen by PruneForLatencyOnXNNPack"}
    else:
        selection = choose(work.layers, spec.layers, unsupported, "prune", roles)
        check_per_layer(spec.per_layer, work.layers, selection, "prune")
        dense = {n for n, s in spec.per_layer.items() if s == 0}
        schedules = {n: build_schedule(layer_spec(spec, n), total, ctx)[0] for n in spec.per_layer if n not in dense}

        def wrap(layer: Any) -> Any:
            return sk.prune_low_magnitude(layer, **{**kwargs, "pruning_schedule": schedules.get(layer.name, schedule)})

        wrapped = wrap_chosen(work, tuple(n for n in selection.chosen if n not in dense), wrap)
        selection_dict = selection.to_dict()
        if spec.per_layer:
            selection_dict["per_layer"] = dict(spec.per_layer)
            if dense:
                selection_dict["changed"] = [n for n in selection_dict["changed"] if n not in dense]
                selection_dict["skipped"] += [{"layer": n, "reason": "per_layer sparsity 0"} for n in sorted(dense)]
    compile_for(wrapped, spec.finetune, ctx.compile_info, step="prune")
    # UpdatePruningStep advances the schedule; without it nothing is pruned (the classic mistake).
    fit(wrapped, spec.finetune, ctx.x, ctx.y, callbacks=[sk.UpdatePruningStep()], ctx=ctx)
    stripped = sk.strip_pruning(wrapped)
    return StepOutput(stripped, selection_dict, notes)
