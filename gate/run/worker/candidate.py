"""Measure one model as its config says: load, read data, optimize, convert (the reference
and the candidate), evaluate. The pull request's model and the base branch's model go
through this same code; it runs in the worker (TF is imported lazily).

- A Keras model (tf_keras or Keras 3): the reference is its float32 conversion; the
  candidate the policy's (tfmot steps on tf_keras: a Keras 3 model is bridged first and
  the bridge checked on eval examples; then the TFLite converter or LiteRT Quantizer).
- A committed .tflite: the reference is the file itself, at its own precision; a
  quantizing policy on a float file goes through LiteRT Quantizer.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from enum import Enum
from typing import TYPE_CHECKING, Callable

from gate.config.load import GateConfig
from gate.errors import ConfigError, ModelError, PolicyError
from gate.measure.convert import Converted
from gate.measure.data import Split
from gate.measure.evaluate import EvalResult, Scoring
from gate.measure.model import LoadedModel, ModelFacts
from gate.measure.qualify import check_metric_names
from gate.measure.sizes import FileSizes
from gate.report.record import ModelInfo, PlanInfo, TaskInfo
from gate.run.worker.layer_diagnosis import diagnose_candidate

if TYPE_CHECKING:
    from gate.config.schema import ConvertSpec, Policy
    from gate.measure.bridge import BridgeCheck
    from gate.optimize import Stage
    from gate.run.stagelog import StageLog

BRIDGE_EXAMPLES = 512     # eval examples the Keras 3 -> tf_keras bridge is checked on


@dataclass(frozen=True)
class MeasuredModel:
    facts: ModelFacts
    is_tflite: bool                  # a committed .tflite: the reference is that file
    eval_split: Split
    train: Split | None
    reference: Converted             # the unoptimized model as TFLite (float32, or the committed file)
    candidate: Converted             # what ships
    reference_sizes: FileSizes
    candidate_sizes: FileSizes
    original: EvalResult             # the model as committed (Keras, or the .tflite itself)
    reference_eval: EvalResult
    candidate_eval: EvalResult
    stages: tuple[Stage, ...] | None  # optimization stages: original, pruned, ... (None: no steps)
    policy: Policy | None
    notes: tuple[str, ...]
    scoring: Scoring | None = None
    bridge: BridgeCheck | None = None
    plan: PlanInfo | None = None     # the policy's steps planned on the model (None: no steps)

    @property
    def same_file(self) -> bool:
        """A committed .tflite measured as it is: reference and candidate are the one file."""
        return self.candidate.content == self.reference.content

    @property
    def float_reference(self) -> bool:
        """Whether the reference is a float32 .tflite (compression and latency ratios vs float apply)."""
        return self.reference.precision in (None, "float")

    @property
    def reference_label(self) -> str:
        """How reports name the reference: "float32", or the committed file and its precision."""
        from gate.measure.tflite_inspect import PRECISION_LABELS

        precision = PRECISION_LABELS.get(self.reference.precision or "float", self.reference.precision)
        if self.is_tflite:
            return f"{self.facts.path.rsplit('/', 1)[-1]}, {precision}"
        return precision


def threshold_metrics(cfg: GateConfig) -> list[str]:
    return list((cfg.thresholds.metrics or {}).keys())


class Branch(Enum):
    """Whose model is measured: the pull request's, or the base branch's for the comparison.
    Only the PR's measurement writes the run record's sections."""

    PR = ""
    BASE = "base"

    def stage(self, name: str) -> str:
        """The stage's name in `timings_s`: "load", "base_load"."""
        return f"{self.value}_{name}" if self.value else name

    def says(self, text: str) -> str:
        """A progress line: "loading model.keras", "base: loading model.keras"."""
        return f"{self.value}: {text}" if self.value else text


@dataclass(frozen=True)
class Measuring:
    """What every measuring step of one model shares (gate.run.candidate.measure)."""

    cfg: GateConfig
    log: StageLog
    branch: Branch
    model: LoadedModel
    data: BoundData
    policy: Policy | None
    trust_model_code: bool

    def stage(self, name: str, text: str):
        return self.log.stage(self.branch.stage(name), self.branch.says(text))

    def keep(self, **sections) -> None:
        """Record sections of the run record (the PR's measurement only)."""
        if self.branch is Branch.PR:
            self.log.keep(**sections)


@dataclass(frozen=True)
class BoundData:
    eval_split: Split
    train: Split | None
    scoring: Scoring


@dataclass(frozen=True)
class Scored:
    """The reference and the candidate .tflite, and the evaluations of the three models."""

    reference: Converted
    candidate: Converted
    original: EvalResult
    reference_eval: EvalResult
    candidate_eval: EvalResult


def measure(cfg: GateConfig, log: StageLog, *, trust_model_code: bool, branch: Branch = Branch.PR,
            eval_split: Split | None = None, extra_metrics: tuple[str, ...] = ()) -> MeasuredModel:
    """`branch`: the PR's model (its sections go into the run record as soon as they are
    known, so an error report keeps them) or the base's; `eval_split` scores on the given
    examples instead of cfg's (the base model on the PR's eval set, paired); `extra_metrics`
    are computed too (the PR's, for the base)."""
    from gate.measure.model import load_model

    with log.stage(branch.stage("load"), branch.says(f"loading {cfg.model_path.name}")):
        model = load_model(cfg.model_path, trust_model_code=trust_model_code)
        if branch is Branch.PR:
            log.keep(model=model_info(cfg, model.facts))
        log.note(*(branch.says(n) for n in model.notes))     # kept by an error report too
    data = read_data(cfg, model.facts, log, branch, eval_split, extra_metrics, trusted=trust_model_code)
    ctx = Measuring(cfg, log, branch, model, data, cfg.policy.policy if cfg.policy else None, trust_model_code)
    return _measure_tflite(ctx) if model.is_tflite else _measure_keras(ctx)


def model_info(cfg: GateConfig, facts: ModelFacts) -> ModelInfo:
    return ModelInfo.model_validate({**facts.to_dict(), "path": cfg.relative(cfg.model_path)})


def read_data(cfg: GateConfig, facts: ModelFacts, log: StageLog, branch: Branch, eval_split: Split | None,
              extra_metrics: tuple[str, ...] = (), *, trusted: bool = False) -> BoundData:
    """The eval split (cfg's, or the one given) and the train split, bound to the model's
    inputs and outputs, and what will be scored on them. `trusted`: trust_model_code is
    honoured (a `python:` loader may run)."""
    from gate.measure.data import bind, head, open_split, range_notes

    ev_spec = cfg.evaluate
    with log.stage(branch.stage("data"), branch.says("reading data")):
        raw = eval_split if eval_split is not None else head(
            open_split(data_source(cfg, "eval"), "eval", facts, trusted=trusted), ev_spec.max_examples)
        eval_split = bind(raw, facts)
        train_ref = data_source(cfg, "train")
        train = bind(open_split(train_ref, "train", facts, trusted=trusted), facts) if train_ref else None
        log.note(*(branch.says(n) for n in (*(train.notes if train else ()), *eval_split.notes,
                                             *range_notes(train, eval_split))))
        check_metric_names(cfg, eval_split.tasks)     # exit 2 before anything is measured
        scoring = Scoring.of(eval_split, ev_spec.metrics, threshold_metrics(cfg) + list(extra_metrics),
                             ev_spec.top_k)
        if branch is Branch.PR:
            model = log.record.model or model_info(cfg, facts)
            log.keep(data={s.name: s.facts() for s in (train, eval_split) if s is not None},
                     model=model.model_copy(update={"tasks": {
                         name: TaskInfo.model_validate(t.to_dict()) for name, t in eval_split.tasks.items()}}))
    return BoundData(eval_split, train, scoring)


def data_source(cfg: GateConfig, name: str):
    """data.<name>'s resolved source (gate.config.sources); a config built by hand: its .npz path."""
    from gate.config.sources import NpzSource, SourceRef

    ref = cfg.eval_source if name == "eval" else cfg.train_source
    path = cfg.eval_path if name == "eval" else cfg.train_path
    if ref is None and path is not None:
        ref = SourceRef("npz", NpzSource(npz=str(path)), path, (path,), f"data.{name}")
    return ref


def _measure_keras(ctx: Measuring) -> MeasuredModel:
    from gate.measure.convert import layer_names, reference_spec, to_tflite
    from gate.measure.data import representative
    from gate.measure.evaluate import evaluate_keras, evaluate_tflite

    cfg, model, policy, data = ctx.cfg, ctx.model, ctx.policy, ctx.data
    ev_spec, names, says = cfg.evaluate, model.facts.output_names, ctx.branch.says
    flavour = "Keras 3 " if model.is_keras3 else ""
    spec = policy.convert
    notes: list[str] = []
    optimized, stages, bridge, source, prepared = model.keras, None, None, model.keras, None
    if policy.steps:
        if model.is_keras3:
            with ctx.stage("bridge", "rebuilding the Keras 3 model in tf_keras for tfmot"):
                try:
                    source, bridge = bridge_model(model.keras, data.eval_split, ev_spec.batch_size)
                except ModelError as err:     # the bridge names the layer; the report names the file
                    err.file = err.file or cfg.relative(cfg.model_path)
                    raise
            notes.append(f"Keras 3 model bridged to tf_keras for the tfmot steps: outputs agree within "
                         f"{bridge.max_abs_diff:.3g} on {bridge.examples} eval examples (tolerance "
                         f"{bridge.tolerance:.3g})")
        # planned before any conversion or fine-tuning: refusals come first
        with ctx.stage("plan", "planning the policy's steps on the model"):
            prepared = prepare_steps(source, policy.steps, data.train, ctx.trust_model_code,
                                     lambda plan: ctx.keep(plan=plan), compile_source=model.keras)
        notes += prepared.plan.notes()
    with ctx.stage("convert_reference", "converting the reference (float32 TFLite)"):
        ref = to_tflite(model.keras, reference_spec())
    with ctx.stage("evaluate_original", f"scoring the {flavour}model on {data.eval_split.n} eval examples"):
        original = evaluate_keras(model.keras, data.scoring, ev_spec.batch_size)
    if policy.steps:
        with ctx.stage("optimize", f"optimizing: {' -> '.join(s.kind for s in policy.steps)}"):
            optimized, stages = optimize_model(source, policy.steps, data.train, data.scoring, ev_spec.batch_size,
                                               ctx.log.progress, ctx.trust_model_code, compile_source=model.keras,
                                               prepared=prepared,
                                               on_stages=lambda rows: ctx.keep(stages=[s.to_dict() for s in rows]),
                                               original_figures=stage_figures(original, ref.content))
    with ctx.stage("convert_candidate", f"converting the {flavour}candidate ({spec.label})"):
        samples = representative(data.train, spec.representative_samples) if data.train is not None else None
        cand = to_tflite(optimized, spec, samples)
    notes += _unquantized_note(spec, cand, ref)
    with ctx.stage("evaluate", f"scoring the .tflite files on {data.eval_split.n} eval examples"):
        batch, layers = ev_spec.batch_size, model.facts.output_layers
        ref_eval = evaluate_tflite(ref.content, data.scoring, batch, names, original=original.outputs,
                                   where=says("reference .tflite"), layers=layers)
        cand_eval = evaluate_tflite(cand.content, data.scoring, batch, names, original=original.outputs,
                                    where=says("candidate .tflite"), layers=layers)
    if ctx.branch is Branch.PR:
        diagnose_candidate(ctx.log, cand, lambda: ref.content if not policy.steps and optimized is model.keras
                           else to_tflite(optimized, reference_spec()).content, data.eval_split,
                           layer_names(optimized))
    cand = replace(cand, debug_model=None)     # used by the diagnosis only: not kept, not cached
    return _result(ctx, Scored(ref, cand, original, ref_eval, cand_eval), stages, notes, bridge,
                   None if prepared is None else PlanInfo.model_validate(prepared.plan.to_dict()))


def _measure_tflite(ctx: Measuring) -> MeasuredModel:
    from gate.measure.convert import io_of, quantize_committed
    from gate.measure.data import representative
    from gate.measure.evaluate import evaluate_tflite
    from gate.measure.tflite_inspect import PRECISION_LABELS

    cfg, policy, data = ctx.cfg, ctx.policy, ctx.data
    facts, content = ctx.model.facts, ctx.model.tflite
    precision = facts.precision or "float"
    ref = Converted(content, "as committed", io_of(content), None, 0, "none", precision)
    cand = ref
    name = cfg.model_path.name
    notes: list[str] = []
    spec = policy.convert if policy is not None else None
    if policy is not None and policy.steps:
        what = ("a plain TensorFlow SavedModel (no Keras model in it)" if facts.format == "savedmodel"
                else "a .tflite")
        raise PolicyError(f"tfmot steps ({', '.join(s.kind for s in policy.steps)}) fine-tune a Keras model; "
                          f"{name} is {what}", field="policy.steps",
                          hint="commit the Keras model (.keras/.h5) to use steps, or use a post-training policy "
                               "(dynamic-range, int8, int16x8, or convert: {quantizer: litert, recipe: ...})")
    plain_savedmodel = facts.format == "savedmodel"      # its load note says what the reference is
    if precision != "float":     # calibrated elsewhere: is the eval data in the range it was calibrated for?
        from gate.measure.calibrated import calibration_notes
        from gate.measure.data import input_ranges

        notes += calibration_notes(content, input_ranges(data.eval_split), list(data.eval_split.x), name)
    if spec is None or (spec.recipe is None and spec.quantization.value == "none"):
        if not plain_savedmodel:
            notes.append(f"The committed model is a .tflite ({PRECISION_LABELS.get(precision, precision)}): it is "
                         "measured as it is; reference and candidate are the same file"
                         + (" (the policy converts to float32: nothing to do)." if spec is not None else
                            ". Set a policy (dynamic-range, int8, ...) to quantize a float .tflite."))
    else:
        _check_committed_policy(spec, precision, name)
        with ctx.stage("convert_candidate", f"quantizing {name} with LiteRT Quantizer ({spec.label})"):
            samples = representative(data.train, spec.representative_samples) if data.train is not None else None
            rewritten: list[str] = []
            cand = quantize_committed(content, spec, samples, notes=rewritten)
        source = ("The SavedModel's float32 conversion" if plain_savedmodel else
                  f"The committed {PRECISION_LABELS.get(precision, precision)} .tflite")
        notes.append(f"{source} was quantized with LiteRT Quantizer (recipe {cand.quantization}, io {cand.io}); "
                     f"the reference is {'that conversion' if plain_savedmodel else 'the committed file'}.")
        notes += [f"{n[0].upper()}{n[1:]}." for n in rewritten]
        notes += _unquantized_note(spec, cand, ref)
    with ctx.stage("evaluate", f"scoring on {data.eval_split.n} eval examples"):
        batch, names = cfg.evaluate.batch_size, facts.output_names
        original = evaluate_tflite(content, data.scoring, batch, names, where=str(cfg.model_path))
        ref_eval = data.scoring.score(original.outputs, original.seconds, original.outputs)
        cand_eval = ref_eval if cand is ref else evaluate_tflite(
            cand.content, data.scoring, batch, names, original=original.outputs,
            where=ctx.branch.says("candidate .tflite"))
    if cand is not ref and ctx.branch is Branch.PR:
        diagnose_candidate(ctx.log, cand, lambda: content, data.eval_split)
    return _result(ctx, Scored(ref, cand, original, ref_eval, cand_eval), None, notes)


def quantizing(spec: ConvertSpec | None, cand: Converted) -> str | None:
    """The mode or recipe that should have quantized the candidate (None: a float policy)."""
    if spec is None or (spec.recipe is None and spec.quantization.value == "none"):
        return None
    return cand.quantization


def _unquantized_note(spec: ConvertSpec, cand: Converted, ref: Converted) -> list[str]:
    """The true reason, read from the files, when the quantizing policy changed no tensor."""
    what = quantizing(spec, cand)
    if what is None:
        return []
    from gate.measure.tflite_tensors import policy_effect

    effect = policy_effect(ref.content, cand.content, what)
    return [effect.reason] if effect.none else []


def _check_committed_policy(spec: ConvertSpec, precision: str, name: str) -> None:
    from gate.measure.tflite_inspect import PRECISION_LABELS

    if precision not in ("float", "float16"):
        raise PolicyError(f"{name} is already quantized ({PRECISION_LABELS.get(precision, precision)}); the "
                          f"policy's {spec.label} cannot apply to it (LiteRT Quantizer would leave its quantized "
                          "tensors as they are)", field="policy",
                          hint="remove `policy` to gate the file as committed, or commit the float model")
    if spec.quantization.value == "float16" and spec.recipe is None:
        already = " (and this file stores float16 weights already)" if precision == "float16" else ""
        raise PolicyError("float16 is a TFLite converter mode: a committed .tflite is quantized with LiteRT "
                          f"Quantizer, which has no float16 recipe{already}", field="policy.convert.quantization",
                          hint="use dynamic-range, int8 or int16x8 (or a recipe), or commit the Keras model")
    if spec.io.value != "float32" or spec.sparsity:
        raise PolicyError("convert.io and convert.sparsity are TFLite converter options; a committed .tflite is "
                          "quantized with LiteRT Quantizer (float32 io)", field="policy.convert",
                          hint="use io: float32 and sparsity: false")


def _result(ctx: Measuring, scored: Scored, stages: list[Stage] | None, notes: list[str],
            bridge: BridgeCheck | None = None, plan: PlanInfo | None = None) -> MeasuredModel:
    ref, cand = scored.reference, scored.candidate
    ref_sizes = FileSizes.of(ref.content)
    cand_sizes = ref_sizes if cand.content is ref.content else FileSizes.of(cand.content)
    return MeasuredModel(ctx.model.facts, ctx.model.is_tflite, ctx.data.eval_split, ctx.data.train, ref, cand,
                         ref_sizes, cand_sizes, scored.original, scored.reference_eval, scored.candidate_eval,
                         None if stages is None else tuple(stages), ctx.policy, tuple(notes), ctx.data.scoring,
                         bridge, plan)


def _shown_as_accuracy(name: str) -> bool:
    """The stage's `accuracy` already shows a single-output model's accuracy and top-k."""
    return "/" not in name and (name == "accuracy" or name.startswith("top_"))


def bridge_model(k3_model, eval_split: Split, batch_size: int):
    """The Keras 3 model rebuilt in tf_keras, checked on eval examples before any step runs."""
    from gate.measure.bridge import compare_outputs, to_tf_keras
    from gate.measure.data import head
    from gate.measure.evaluate import run_keras

    tfk, notes = to_tf_keras(k3_model)
    sample = head(eval_split, BRIDGE_EXAMPLES)
    check = compare_outputs(run_keras(k3_model, sample, batch_size), run_keras(tfk, sample, batch_size),
                            sample.n, tuple(notes))
    return tfk, check


def step_context(keras_model, train, trust_model_code, compile_source=None):
    """What every step gets: the train split as fit() takes it (inputs in input order,
    targets in output order or by key), the loss the committed model compiled with
    (`compile_source`: the Keras 3 original of a bridged model)."""
    from gate.measure.data import keras_targets
    from gate.measure.evaluate import keras_feed
    from gate.measure.model import keras_io
    from gate.optimize.context import StepContext
    from gate.optimize.finetune import CompileInfo

    if train is None:
        raise ConfigError("optimization steps fine-tune on the train split, but data.train is not set",
                          field="data.train")
    names = [n for n, _ in keras_io(keras_model)[1]]
    y = keras_targets(train, names)
    if y is None or (isinstance(y, dict) and len(y) < len(names)):
        raise ConfigError("optimization steps fine-tune on the train split's targets, but data.train has no "
                          + ("y" if len(names) == 1 else "y.<output> for every output"), field="data.train",
                          hint="add the targets, or use a post-training policy (int8, dynamic-range, ...)")
    if isinstance(y, dict) and not isinstance(getattr(keras_model, "output", None), dict):
        y = [y[n] for n in names]      # list outputs: in output order; dict outputs keep their keys
    info = CompileInfo.of(compile_source if compile_source is not None else keras_model)
    x = keras_feed(keras_model, train, lazy=train.streamed)   # streamed: converted per batch by fit()
    if isinstance(x, dict):     # several inputs: in input order (flattening nested models renames them)
        x = list(x.values())
    return StepContext(train=train, compile_info=info, allow_custom_code=trust_model_code, x=x, y=y)


def prepare_steps(keras_model, steps, train, trust_model_code, on_plan: Callable[[dict], None], *,
                  compile_source=None):
    """Flatten and plan (gate.optimize.preflight); `on_plan` gets the plan as soon as it
    exists, a refusal included."""
    from gate.optimize import prepare

    return prepare(keras_model, steps, step_context(keras_model, train, trust_model_code, compile_source), on_plan)


def stage_figures(result: EvalResult, float_tflite: bytes | None) -> dict:
    """A stage's figures: accuracy, the task's metrics, and its float32 .tflite's bytes."""
    data = result.to_dict(with_predictions=False)
    out = {"accuracy": data["accuracy"]}
    label = {k: v for k, v in (data.get("metrics") or {}).items() if v is not None and not _shown_as_accuracy(k)}
    if label:
        out["metrics"] = label
    if float_tflite is not None:
        sizes = FileSizes.of(float_tflite)
        out.update(bytes_raw=sizes.bytes_raw, bytes_gzip=sizes.bytes_gzip)
    return out


def optimize_model(keras_model, steps, train, scoring: Scoring, batch_size, progress, trust_model_code=False, *,
                   compile_source=None, prepared=None, on_stages: Callable[[list[Stage]], None] = lambda _rows: None,
                   original_figures=None):
    """Run the policy's steps; each stage is measured (accuracy or the task's metrics,
    float TFLite bytes) and handed to `on_stages` as it finishes, so an error report keeps
    the stages that finished. `original_figures`: the original stage's, measured already."""
    from gate.measure.convert import reference_spec, to_tflite
    from gate.measure.evaluate import evaluate_keras
    from gate.optimize import apply_steps

    def measure_stage(m, convertible: bool) -> dict:
        return stage_figures(evaluate_keras(m, scoring, batch_size),
                             to_tflite(m, reference_spec()).content if convertible else None)

    ctx = step_context(keras_model, train, trust_model_code, compile_source)
    return apply_steps(keras_model, steps, ctx, measure_stage, progress, prepared=prepared,
                       on_stage=on_stages,
                       original_figures=original_figures)
