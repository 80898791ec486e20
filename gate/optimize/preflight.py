"""Plan every step of a policy on the model before anything is fine-tuned.

For each step: the layers it will change, the layers with weights it leaves alone and why
(left dense: excluded by role or name, or tfmot cannot touch them), the layers tfmot will
leave float in QAT and why, the channel groups structured pruning can shrink and the ones
it keeps whole. What would fail later fails here, in seconds, before the reference
conversion and the first epoch: a selection that picks nothing, a model
PruneForLatencyOnXNNPack refuses (with the layer and condition), a structured step with
nothing to shrink, a schedule that does not fit the budget, a missing loss. The plan goes
into the report as soon as it exists (`plan`), the failing step included.

Every step is planned on the flattened original: the steps before it keep layer names
and classes (prune, cluster and QAT wrappers are stripped; structured pruning changes
channel counts only), so the plan holds for the model the step will see.
"""
from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any, Callable

from gate.config.steps import Step
from gate.errors import PolicyError

SHOWN = 4   # names listed per reason in messages (the report lists them all)


@dataclass
class StepPlan:
    index: int
    kind: str
    name: str                                          # the stage's name (pruned, qat, ...)
    changes: list[str] = field(default_factory=list)   # layers the step changes
    left: list[tuple[str, str]] = field(default_factory=list)   # (layer, reason): layers with weights left alone
    left_float: list[Any] = field(default_factory=list)         # qat: gate.optimize.qat.FloatLayer
    groups: dict | None = None                         # structured_prune: groups shrunk / kept whole
    notes: list[str] = field(default_factory=list)
    error: str | None = None

    def to_dict(self) -> dict:
        return {"index": self.index, "kind": self.kind, "name": self.name, "changes": self.changes,
                "left": [{"layer": n, "reason": r} for n, r in self.left],
                "left_float": [f.to_dict() for f in self.left_float], "groups": self.groups,
                "notes": self.notes, "error": self.error}

    def summary(self) -> str:
        """One line: what changes, what stays and why (counts; names in the report)."""
        verb = {"prune": "pruned", "cluster": "clustered", "qat": "quantization-aware",
                "structured_prune": "shrunk"}[self.kind]
        text = f"step {self.index + 1} {self.kind}: {len(self.changes)} layer(s) {verb}"
        if self.left:
            text += f"; left {'dense' if self.kind == 'prune' else 'alone'}: " + by_reason(self.left)
        if self.left_float:
            text += "; left float: " + by_reason([(f.layer, f.reason.split(':')[0]) for f in self.left_float])
        return text


@dataclass
class Plan:
    steps: list[StepPlan]
    roles: dict[str, list[str]]

    def to_dict(self) -> dict:
        return {"roles": self.roles, "steps": [s.to_dict() for s in self.steps]}

    def notes(self) -> list[str]:
        return [s.summary() for s in self.steps] + [n for s in self.steps for n in s.notes]


def by_reason(pairs: list[tuple[str, str]], shown: int = SHOWN) -> str:
    """'BatchNormalization after ... (53: conv2_block1_0_bn, ... and 49 more); excluded ... (1: predictions)'."""
    groups: dict[str, list[str]] = defaultdict(list)
    for name, reason in pairs:
        groups[reason].append(name)
    parts = []
    for reason, names in sorted(groups.items(), key=lambda kv: -len(kv[1])):
        listed = ", ".join(names[:shown]) + (f" and {len(names) - shown} more" if len(names) > shown else "")
        parts.append(f"{reason} ({len(names)}: {listed})")
    return "; ".join(parts)


def plan_steps(model: Any, steps: list[Step], ctx: Any, record: Callable[[dict], None] = lambda _plan: None) -> Plan:
    """Plan every step on `model` (flat). `record` gets the plan (as report data) before
    a refusal is raised, so the error report shows what was planned and where it stopped."""
    from gate.optimize.roles import layer_roles

    roles = layer_roles(model)
    by_role: dict[str, list[str]] = defaultdict(list)
    for name, rs in roles.items():
        for role in sorted(rs):
            by_role[role].append(name)
    plan = Plan([], dict(by_role))
    kinds = [s.kind for s in steps]
    from gate.optimize.context import stage_name

    for i, step in enumerate(steps):
        sp = StepPlan(i, step.kind, stage_name(step.kind, i, kinds))
        plan.steps.append(sp)
        try:
            PLANNERS[step.kind](model, step.spec, ctx, roles, sp)
            _check_loss(step, ctx)
        except PolicyError as err:
            sp.error = err.message
            record(plan.to_dict())
            raise
    record(plan.to_dict())
    return plan


def _check_loss(step: Step, ctx: Any) -> None:
    if step.spec.finetune.loss is None and ctx.compile_info.loss is None:
        raise PolicyError(f"{step.kind}: fine-tuning needs a loss, and neither the step nor the model says which",
                          field=f"steps.{step.kind}.finetune.loss",
                          hint="set finetune: {loss: sparse_categorical_crossentropy} (or compile the model "
                               "with its loss before saving it)")


def _plan_prune(model: Any, spec: Any, ctx: Any, roles: dict, sp: StepPlan) -> None:
    from gate.optimize import prune
    from gate.optimize.finetune import train_steps
    from gate.optimize.select import check_per_layer, choose, select_layers

    total = max(train_steps(ctx.train.n, spec.finetune), 1)
    _schedule, notes = prune.build_schedule(spec, total, ctx)
    sp.notes += [f"step {sp.index + 1} prune: {n}" for n in notes]
    if spec.pruning_policy == "xnnpack":
        refusal = prune.xnnpack_refusal(model)
        if refusal is not None:
            raise refusal
        excluded = dict(select_layers(model.layers, spec.layers, lambda _layer: None, roles).skipped)
        for layer in model.layers:
            if type(layer).__name__ == "Conv2D" and tuple(layer.kernel_size) == (1, 1):
                if layer.name in excluded:
                    sp.left.append((layer.name, excluded[layer.name]))
                else:
                    sp.changes.append(layer.name)
        return
    sel = choose(model.layers, spec.layers, prune.unsupported, "prune", roles)
    check_per_layer(spec.per_layer, model.layers, sel, "prune")
    dense = {n for n, s in spec.per_layer.items() if s == 0}
    sp.changes = [n for n in sel.chosen if n not in dense]
    sp.left = list(sel.skipped) + [(n, "per_layer sparsity 0") for n in sorted(dense)]


def _plan_cluster(model: Any, spec: Any, ctx: Any, roles: dict, sp: StepPlan) -> None:
    from gate.optimize import cluster
    from gate.optimize.select import check_per_layer, choose

    sel = choose(model.layers, spec.layers, cluster.unsupported_for(spec), "cluster", roles)
    check_per_layer(spec.per_layer, model.layers, sel, "cluster")
    sp.changes, sp.left = list(sel.chosen), list(sel.skipped)


def _plan_qat(model: Any, spec: Any, ctx: Any, roles: dict, sp: StepPlan) -> None:
    from gate.optimize import qat

    scheme, name = qat.scheme_for(spec.preserve)
    try:
        left = qat.plan(model, scheme)
    except (ValueError, RuntimeError) as exc:
        raise PolicyError(f"qat: tfmot's layout transform failed on the model: {type(exc).__name__}: "
                          f"{str(exc)[:300]}", field="steps.qat") from None
    chosen, sel = qat.selection_for(model, spec, left, roles)
    sp.left_float = left
    sp.changes = list(sel.chosen)
    sp.left = [(n, r) for n, r in sel.skipped if not r.startswith("left float")]
    sp.notes.append(f"step {sp.index + 1} qat: scheme {name}" + (f"; {qat.float_summary(left)}" if left else
                                                                  "; tfmot quantizes every layer"))


def _plan_structured(model: Any, spec: Any, ctx: Any, roles: dict, sp: StepPlan) -> None:
    from gate.optimize import structured_step
    from gate.optimize.structured import structured_plan

    sel = structured_step.selection(model, spec)
    result = structured_plan(model, ratio=spec.ratio, norm=spec.norm, selected=set(sel.chosen),
                             min_units=spec.min_units, ratios=dict(spec.per_layer))
    shrunk = {s.name for s in result.shrunk if s.after < s.before}
    kept = [g for g in result.groups if g.reason is not None]
    sp.changes = [n for n in sel.chosen if n in shrunk]
    sp.left = list(sel.skipped) + [(n, r) for n, r in result.skipped if n not in shrunk]
    sp.groups = {"shrunk": sum(g.after < g.size for g in result.groups), "kept_whole": len(kept),
                 "kept": [{"members": list(g.members), "channels": g.size, "reason": g.reason} for g in kept]}
    if not shrunk:
        reasons = Counter(g.reason for g in kept)
        raise PolicyError("structured_prune: no channel group of this model can shrink: "
                          + "; ".join(f"{r} ({n} group(s))" for r, n in reasons.most_common(SHOWN)),
                          field="steps.structured_prune",
                          hint="the report's plan lists every group and why it is kept whole; use prune "
                               "(unstructured sparsity) for this model")


PLANNERS = {"prune": _plan_prune, "cluster": _plan_cluster, "qat": _plan_qat,
            "structured_prune": _plan_structured}
