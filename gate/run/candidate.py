"""Measure one model as its config says: load, read data, optimize, convert (the float32
reference and the candidate), evaluate. The pull request's model and the base branch's
model go through this same code; it runs in the worker (TF is imported lazily)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from gate.config.load import GateConfig
from gate.measure.convert import Converted
from gate.measure.data import Split
from gate.measure.evaluate import EvalResult
from gate.measure.model import ModelFacts
from gate.measure.sizes import FileSizes

if TYPE_CHECKING:
    from gate.config.schema import Policy
    from gate.optimize import Stage
    from gate.run.stagelog import StageLog


@dataclass(frozen=True)
class MeasuredModel:
    facts: ModelFacts
    is_tflite: bool                  # a committed .tflite: reference and candidate are that file
    eval_split: Split
    train: Split | None
    reference: Converted             # the unoptimized model as float32 TFLite
    candidate: Converted             # what ships
    reference_sizes: FileSizes
    candidate_sizes: FileSizes
    original: EvalResult             # the model as committed (Keras, or the .tflite itself)
    reference_eval: EvalResult
    candidate_eval: EvalResult
    stages: tuple[Stage, ...] | None  # optimization stages: original, pruned, ... (None: no steps)
    policy: Policy | None
    notes: tuple[str, ...]


def measure(cfg: GateConfig, log: StageLog, *, trust_model_code: bool, label: str = "",
            eval_split: Split | None = None, parts: dict | None = None) -> MeasuredModel:
    """`label` prefixes stage names and progress ("base: "); `eval_split` scores on the
    given examples instead of cfg's (the base model on the PR's eval set, paired);
    `parts` (the report's) gets the model and data facts as soon as they are known, so an
    error report keeps them."""
    parts = {} if parts is None else parts
    from gate.measure.convert import reference_spec, to_tflite
    from gate.measure.data import check_fits, head, load_split, representative
    from gate.measure.evaluate import evaluate_keras, evaluate_tflite
    from gate.measure.model import load_model

    ev_spec, ks, tag = cfg.evaluate, cfg.evaluate.top_k, label.replace(": ", "_")
    notes: list[str] = []
    with log.stage(f"{tag}load", f"{label}loading {cfg.model_path.name}"):
        model = load_model(cfg.model_path, trust_model_code=trust_model_code)
        parts["model"] = {**model.facts.to_dict(), "path": cfg.relative(cfg.model_path)}
    with log.stage(f"{tag}data", f"{label}reading data"):
        if eval_split is None:
            eval_split = head(load_split(cfg.eval_path, "eval"), ev_spec.max_examples)
        check_fits(eval_split, model.facts.input_shape, model.facts.n_classes)
        train = load_split(cfg.train_path, "train") if cfg.train_path else None
        if train is not None:
            check_fits(train, model.facts.input_shape, model.facts.n_classes)
        parts["data"] = {s.name: s.facts() for s in (train, eval_split) if s is not None}
    stages, policy = None, None
    if model.is_tflite:
        ref = cand = Converted(model.tflite, "as committed", model.facts.inputs[0].dtype, None, 0)
        notes.append("The committed model is a .tflite: it is measured as it is (no policy, no reference "
                     "conversion); reference and candidate are the same file.")
        if cfg.policy:
            notes.append("policy is ignored for a committed .tflite")
    else:
        policy = cfg.policy.policy
        prepared = None
        if policy.steps:   # planned before any conversion or fine-tuning: refusals come first
            with log.stage(f"{tag}plan", f"{label}planning the policy's steps on the model"):
                prepared = prepare_steps(model.keras, policy.steps, train, trust_model_code, parts)
            if not label:
                log.note(*prepared.plan.notes())
        with log.stage(f"{tag}convert_reference", f"{label}converting the reference (float32 TFLite)"):
            ref = to_tflite(model.keras, reference_spec())
        spec = policy.convert
        optimized = model.keras
        if policy.steps:
            with log.stage(f"{tag}optimize", f"{label}optimizing: {' -> '.join(s.kind for s in policy.steps)}"):
                optimized, stages = optimize_model(model.keras, policy.steps, train, eval_split, ks,
                                                   ev_spec.batch_size, log.progress, trust_model_code,
                                                   prepared=prepared, parts=parts)
        with log.stage(f"{tag}convert_candidate", f"{label}converting the candidate ({spec.quantization.value})"):
            samples = representative(train, spec.representative_samples) if train is not None else None
            cand = to_tflite(optimized, spec, samples)
    with log.stage(f"{tag}evaluate", f"{label}scoring on {eval_split.n} eval examples"):
        x, y, batch = eval_split.x, eval_split.y, ev_spec.batch_size
        if model.is_tflite:
            original = evaluate_tflite(model.tflite, x, y, ks, batch, where=str(cfg.model_path))
            ref_eval = cand_eval = original
        else:
            original = evaluate_keras(model.keras, x, y, ks, batch)
            ref_eval = evaluate_tflite(ref.content, x, y, ks, batch, where=f"{label}reference .tflite")
            cand_eval = evaluate_tflite(cand.content, x, y, ks, batch, where=f"{label}candidate .tflite")
    ref_sizes = FileSizes.of(ref.content)
    cand_sizes = ref_sizes if cand.content is ref.content else FileSizes.of(cand.content)
    return MeasuredModel(model.facts, model.is_tflite, eval_split, train, ref, cand, ref_sizes, cand_sizes,
                         original, ref_eval, cand_eval, None if stages is None else tuple(stages), policy,
                         tuple(notes))


def step_context(keras_model, train, trust_model_code):
    from gate.errors import ConfigError
    from gate.optimize.context import StepContext
    from gate.optimize.finetune import CompileInfo

    if train is None:
        raise ConfigError("optimization steps fine-tune on the train split, but data.train is not set",
                          field="data.train")
    return StepContext(train=train, compile_info=CompileInfo.of(keras_model), allow_custom_code=trust_model_code)


def prepare_steps(keras_model, steps, train, trust_model_code, parts: dict):
    """Flatten and plan (gate.optimize.preflight); the plan is in `parts` as soon as it
    exists, a refusal included."""
    from gate.optimize import prepare

    return prepare(keras_model, steps, step_context(keras_model, train, trust_model_code),
                   lambda plan: parts.__setitem__("plan", plan))


def optimize_model(keras_model, steps, train, eval_split, ks, batch_size, progress, trust_model_code=False, *,
                   prepared=None, parts: dict | None = None):
    """Run the policy's steps; each stage is measured (accuracy, float TFLite bytes) and
    put in `parts` as it finishes, so an error report keeps the stages that finished."""
    from gate.measure.convert import reference_spec, to_tflite
    from gate.measure.evaluate import evaluate_keras
    from gate.optimize import apply_steps

    parts = {} if parts is None else parts

    def measure_stage(m, convertible: bool) -> dict:
        out = {"accuracy": evaluate_keras(m, eval_split.x, eval_split.y, ks, batch_size).to_dict(
            with_predictions=False)["accuracy"]}
        if convertible:
            sizes = FileSizes.of(to_tflite(m, reference_spec()).content)
            out.update(bytes_raw=sizes.bytes_raw, bytes_gzip=sizes.bytes_gzip)
        return out

    ctx = step_context(keras_model, train, trust_model_code)
    return apply_steps(keras_model, steps, ctx, measure_stage, progress, prepared=prepared,
                       on_stage=lambda stages: parts.__setitem__("stages", [s.to_dict() for s in stages]))
