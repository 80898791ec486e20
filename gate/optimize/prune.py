"""Magnitude pruning (tfmot.sparsity.keras.prune_low_magnitude), stripped after fine-tuning."""
from __future__ import annotations

import importlib
from typing import Any

from gate.config.steps import CustomSchedule, PruneStep, ScheduleName
from gate.errors import PolicyError
from gate.optimize.context import StepContext, StepOutput
from gate.optimize.finetune import compile_for, copy_model, fit, steps_per_epoch
from gate.optimize.select import choose, wrap_chosen


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


def _unsupported(layer: Any) -> str | None:
    from gate.measure.tfenv import tfmot

    sk = tfmot().sparsity.keras
    from tensorflow_model_optimization.python.core.sparsity.keras.prune_registry import (
        PruneRegistry,
    )

    if isinstance(layer, sk.PrunableLayer):
        return None
    if not PruneRegistry.supports(layer):
        return f"unsupported by tfmot pruning ({type(layer).__name__})"
    if not PruneRegistry._weight_names(layer):  # noqa: SLF001 - tfmot's own table of prunable weights
        return "unsupported by tfmot pruning (no prunable weights)"
    return None


def apply(model: Any, spec: PruneStep, ctx: StepContext) -> StepOutput:
    from gate.measure.tfenv import tfmot

    sk = tfmot().sparsity.keras
    total = steps_per_epoch(ctx.n, spec.finetune.batch_size) * max(spec.finetune.epochs, 1)
    schedule, notes = build_schedule(spec, total, ctx)
    kwargs: dict = {"pruning_schedule": schedule, "block_size": tuple(spec.block_size)}
    if spec.sparsity_m_by_n:
        kwargs["sparsity_m_by_n"] = tuple(spec.sparsity_m_by_n)
    work = copy_model(model)
    if spec.pruning_policy == "xnnpack":
        try:
            wrapped = sk.prune_low_magnitude(work, pruning_policy=sk.PruneForLatencyOnXNNPack(), **kwargs)
        except ValueError as exc:
            raise PolicyError(f"prune: pruning_policy xnnpack refuses this model: {exc}",
                              field="steps.prune.pruning_policy",
                              hint="XNNPACK sparse inference needs a MobileNet-like model (a 3x3 stride-2 first "
                                   "conv, 1x1 convs, global average pooling); drop pruning_policy") from None
        from tensorflow_model_optimization.python.core.sparsity.keras.pruning_wrapper import (
            PruneLowMagnitude,
        )

        chosen = [layer.layer.name for layer in wrapped.layers if isinstance(layer, PruneLowMagnitude)]
        selection_dict = {"changed": chosen, "skipped": [], "note": "layers chosen by PruneForLatencyOnXNNPack"}
    else:
        selection = choose(work.layers, spec.layers, _unsupported, "prune")
        wrapped = wrap_chosen(work, selection.chosen, lambda layer: sk.prune_low_magnitude(layer, **kwargs))
        selection_dict = selection.to_dict()
    compile_for(wrapped, spec.finetune, ctx.compile_info, step="prune")
    # UpdatePruningStep advances the schedule; without it nothing is pruned (the classic mistake).
    fit(wrapped, spec.finetune, ctx.x, ctx.y, callbacks=[sk.UpdatePruningStep()])
    stripped = sk.strip_pruning(wrapped)
    return StepOutput(stripped, selection_dict, notes)
