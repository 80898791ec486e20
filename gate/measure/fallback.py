"""Selective fallback (policy `convert.keep_float`): ops that stay out of int8, chosen by
name (regexes) and by measured harm (`worst: N`), through both quantizers.

    ops = resolve(keep.layers, float_graph, keras_layers)      # {op output name: why}; PolicyError
                                                               # (keep_float.layers[i]) for a regex matching nothing
    harm = rank_by_ablation(float_content, quantize, examples, candidates)   # list[Harm], most harmful first
    content, fallback = tflite_fallback(conv, keep, keras_layers, examples)  # TFLite converter (int8)
    content, fallback = litert_fallback(content, recipe_name, keep, samples, keras_layers)

The TFLite converter: the converter calibrates once (`_experimental_calibrate_only`, the
switch `tf.lite.experimental.QuantizationDebugger` uses), then the calibrated model is
quantized by `mlir_quantize(..., denylisted_nodes=[op output names])` — the debugger's own
`get_nondebug_quantized_model()` call — with the converter's own arguments (io types,
per-channel), so the rest of the conversion (buffer deduplication) runs as usual. LiteRT
Quantizer: the recipe gets one `no_quantize` entry per kept op (its scope, the op's output
names, anchored), or the static_wi8_ai16 op config for `activations: int16`; calibration
runs once and every trial reuses it.

Ablation (`worst: N`): candidates are the quantized ops that lose the most SNR between
their input and output on calibration examples (gate.measure.layers.tensor_errors), at
most ABLATION_CANDIDATES; each is kept float alone on top of the named ones and the model
run on those examples again. Harm = the gain in top-1 agreement with the float model
(then in output SNR) when that op alone stays float; the N most harmful ops whose fallback
recovers something (`helps`) stay float — fewer when fewer do. The examples are train
(calibration) examples, never the eval examples the gate judges on.

A kept op inside an int8 chain still reads and writes int8 tensors (DEQUANTIZE before it,
QUANTIZE after it): fallback removes its weight and arithmetic error, not the rounding of
the activations at its boundaries. Consecutive kept ops (a regex matching a whole block)
keep the tensors between them float.
"""
from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

from gate.errors import PolicyError
from gate.measure.layers import BOUNDARY_OPS, VALUE_TYPES, keras_layer, tensor_errors
from gate.measure.tflite_graph import Graph, read_graph

ABLATION_EXAMPLES = 128
ABLATION_CANDIDATES = 12
NO_QUANTIZE = "no_quantize"


@dataclass(frozen=True)
class Harm:
    """What keeping one op float alone recovers (ablation), on calibration examples."""

    name: str                       # the op's output tensor name
    layer: str | None
    op: str
    snr_drop_db: float | None       # SNR lost between its input and its output, fully quantized
    agreement_gain: float           # top-1 agreement with the float model: kept float - all int8
    snr_gain_db: float              # output SNR: kept float - all int8

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Fallback:
    """What keep_float did: report.json `keep_float`."""

    kept: tuple[str, ...]                            # op output names left out of int8
    by_rule: dict = field(default_factory=dict)      # op output name -> "layers[i] <regex>" | "worst"
    activations: str = "float"
    ranking: tuple[Harm, ...] = ()                   # the ablation, most harmful first (worst: N)
    examples: int = 0                                # calibration examples the ablation ran
    baseline: dict = field(default_factory=dict)     # all-int8 agreement / output SNR on them
    seconds: float = 0.0
    worst: int = 0                                   # keep_float.worst as asked (fewer kept when fewer helped)

    def to_dict(self) -> dict:
        return {"kept": list(self.kept), "by_rule": dict(self.by_rule), "activations": self.activations,
                "worst": self.worst,
                "ranking": [h.to_dict() for h in self.ranking], "examples": self.examples,
                "baseline": dict(self.baseline), "seconds": round(self.seconds, 3)}


def compute_ops(graph: Graph) -> list:
    return [op for op in graph.ops if op.type not in BOUNDARY_OPS and op.outputs]


def op_name(graph: Graph, op) -> str:
    return graph.tensors[op.outputs[0]].name


def resolve(patterns: Sequence[str], graph: Graph, keras_layers: Sequence[str] = ()) -> dict[str, str]:
    """{op output name: the rule that keeps it}, each regex searched in the op's output
    tensor names and its Keras layer name. A regex matching no op is bad input."""
    names = set(keras_layers)
    ops = compute_ops(graph)
    kept: dict[str, str] = {}
    for i, pattern in enumerate(patterns):
        rx = re.compile(pattern)
        hits = [op for op in ops if any(rx.search(n) for n in graph.output_names(op))
                or ((layer := keras_layer(op_name(graph, op), names)) is not None and rx.search(layer))]
        if not hits:
            examples = sorted({keras_layer(op_name(graph, op), names) or op_name(graph, op) for op in ops})[:8]
            raise PolicyError(f"convert.keep_float.layers[{i}] {pattern!r} matches no op of the model (searched "
                              f"{len(ops)} ops' tensor names and Keras layer names)",
                              field=f"policy.convert.keep_float.layers[{i}]",
                              hint=f"use a regex that matches a layer, e.g. one of {examples}; `gate check` lists "
                                   "every op in report.json `layers`")
        for op in hits:
            kept.setdefault(op_name(graph, op), f"layers[{i}] {pattern}")
    return kept


def _outputs(content: bytes, examples: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    from gate.measure.litert import run_signature

    return run_signature(content, examples, batch=32, where="keep_float trial")


def _agreement(ref: dict[str, np.ndarray], got: dict[str, np.ndarray]) -> tuple[float, float]:
    """(top-1 agreement over classifier-like outputs (1.0 when none), output SNR dB)."""
    agree, sig, err = [], 0.0, 0.0
    for name, r in ref.items():
        g = got.get(name)
        if g is None or g.shape != r.shape:
            continue
        if r.ndim >= 2 and r.shape[-1] > 1:
            agree.append(float(np.mean(np.argmax(r, -1) == np.argmax(g, -1))))
        r64 = r.astype(np.float64)
        sig += float(np.sum(r64 * r64))
        err += float(np.sum((r64 - g) ** 2))
    snr = 120.0 if err == 0 else (min(120.0, 10 * math.log10(sig / err)) if sig > 0 else -120.0)
    return (float(np.mean(agree)) if agree else 1.0), snr


def rank_by_ablation(float_content: bytes, quantize: Callable[[Sequence[str]], bytes],
                     examples: Mapping[str, np.ndarray], *, always: Sequence[str] = (),
                     keras_layers: Sequence[str] = (), candidates: int = ABLATION_CANDIDATES
                     ) -> tuple[list[Harm], dict]:
    """Keep each candidate op float alone (on top of `always`) and measure what it recovers.
    `quantize(names)` makes the model with `names` kept float. Returns (most harmful first,
    the all-int8 baseline)."""
    examples = {k: np.asarray(a[:ABLATION_EXAMPLES]) for k, a in examples.items()}
    base = quantize(list(always))
    ref = _outputs(float_content, examples)
    base_agree, base_snr = _agreement(ref, _outputs(base, examples))
    errors = tensor_errors(float_content, base, examples)
    qgraph = read_graph(base)
    by_tensor = {t.index: errors.get(t.name) for t in qgraph.tensors}
    names = set(keras_layers)
    drops = []
    for op in compute_ops(qgraph):
        out = qgraph.tensors[op.outputs[0]]
        if not (out.quantized and out.type in ("INT8", "UINT8", "INT16")) or out.name in always:
            continue
        err = errors.get(out.name)
        if err is None:
            continue
        ins = [by_tensor.get(i) for i in op.inputs if i >= 0 and not qgraph.tensors[i].constant
               and qgraph.tensors[i].type in VALUE_TYPES]
        upstream = min((e.snr_db for e in ins if e is not None), default=err.snr_db)   # unmeasured input: no drop
        drops.append((upstream - err.snr_db, op, out.name))
    drops.sort(key=lambda d: -d[0])
    ranking = []
    for drop, op, name in drops[:candidates]:
        agree, snr = _agreement(ref, _outputs(quantize([*always, name]), examples))
        ranking.append(Harm(name, keras_layer(name, names), op.type, round(drop, 2), round(agree - base_agree, 4),
                            round(snr - base_snr, 2)))
    ranking.sort(key=lambda h: (-h.agreement_gain, -h.snr_gain_db))
    n = len(next(iter(examples.values()))) if examples else 0
    return ranking, {"agreement": round(base_agree, 4), "output_snr_db": round(base_snr, 2), "examples": n}


MIN_SNR_GAIN_DB = 0.1


def helps(h: Harm) -> bool:
    """Whether keeping the op float measurably recovered something: more agreement with the
    float model, or (agreement unchanged) a better output SNR. An op whose fallback recovers
    nothing costs bytes for nothing and is not kept."""
    return h.agreement_gain > 0 or (h.agreement_gain == 0 and h.snr_gain_db >= MIN_SNR_GAIN_DB)


def choose(keep, float_content: bytes, quantize: Callable[[Sequence[str]], bytes],
           examples: Mapping[str, np.ndarray] | None, keras_layers: Sequence[str]) -> Fallback:
    """The ops keep_float names, plus its `worst` N by ablation."""
    import time

    start = time.perf_counter()
    by_rule = resolve(keep.layers, read_graph(float_content), keras_layers)
    ranking, baseline = [], {}
    if keep.worst:
        if not examples:
            raise PolicyError("convert.keep_float.worst ranks ops on calibration examples: it needs data.train",
                              field="policy.convert.keep_float.worst")
        ranking, baseline = rank_by_ablation(float_content, quantize, examples, always=list(by_rule),
                                             keras_layers=keras_layers,
                                             candidates=max(ABLATION_CANDIDATES, 2 * keep.worst))
        for h in [h for h in ranking if helps(h)][:keep.worst]:
            by_rule.setdefault(h.name, "worst")
    return Fallback(tuple(by_rule), by_rule, keep.activations.value, tuple(ranking),
                    baseline.get("examples", 0), baseline, time.perf_counter() - start, keep.worst)


# --- the TFLite converter -------------------------------------------------------------------------

def install_tflite_hook(conv, keep, keras_layers: Sequence[str], examples: Mapping[str, np.ndarray] | None,
                        result: dict) -> None:
    """Make `conv.convert()` keep ops float: its quantization step calibrates, chooses the
    ops (`choose`; none when `keep` is None), and quantizes with them denylisted.
    `result["fallback"]` gets the Fallback (when `keep` is set), `result["debug_model"]` the
    same quantization with NumericVerify ops (QuantizationDebugger's debug model), when the
    quantizer makes one."""
    from gate.measure.tfenv import lite_convert, tf

    tf_convert, float32 = lite_convert(), tf().float32

    original = conv._quantize   # noqa: SLF001 - the converter's own step, wrapped

    def quantize_step(model, input_type, output_type, activations_type, bias_type, allow_float,
                      variable_quantization, debug_options):
        conv._experimental_calibrate_only = True  # noqa: SLF001 - what QuantizationDebugger sets
        try:
            calibrated = bytes(original(model, input_type, output_type, activations_type, bias_type, allow_float,
                                        variable_quantization, debug_options))
        finally:
            conv._experimental_calibrate_only = False  # noqa: SLF001

        def quantize(nodes: Sequence[str], numeric_verify: bool = False) -> bytes:
            return bytes(tf_convert.mlir_quantize(
                calibrated, conv._experimental_disable_per_channel,  # noqa: SLF001
                input_data_type=float32 if numeric_verify else input_type,
                output_data_type=float32 if numeric_verify else output_type,
                enable_numeric_verify=numeric_verify,
                enable_variable_quantization=variable_quantization,
                disable_per_channel_for_dense_layers=(
                    conv._experimental_disable_per_channel_quantization_for_dense_layers),  # noqa: SLF001
                debug_options_str=debug_options.SerializeToString(),
                denylisted_nodes=list(nodes) or None))

        kept: Sequence[str] = ()
        if keep is not None:
            fallback = choose(keep, calibrated, quantize, examples, keras_layers)
            result["fallback"], kept = fallback, fallback.kept
        try:
            result["debug_model"] = quantize(kept, numeric_verify=True)
        except Exception:  # noqa: BLE001 - the debug model is a diagnosis extra, never the conversion's failure
            result["debug_model"] = None
        return quantize(kept)

    conv._quantize = quantize_step  # noqa: SLF001


# --- LiteRT Quantizer -----------------------------------------------------------------------------

def recipe_keeping(recipe: list[dict], kept: Sequence[str], activations: str) -> list[dict]:
    """The recipe with one entry per kept op (later entries win in LiteRT Quantizer): its
    scope (output names joined by ';', trailing ';') matched exactly."""
    extra = []
    int16 = None
    if activations == "int16":
        from litert_quantizer import recipe as recipes

        int16 = recipes.static_wi8_ai16()[0]
    for name in kept:
        regex = "^" + re.escape(name) + ";"
        if int16 is not None:
            extra.append({**int16, "regex": regex})
        else:
            extra.append({"regex": regex, "operation": "*", "algorithm_key": NO_QUANTIZE})
    return [*recipe, *extra]


def litert_fallback(content: bytes, recipe_name: str, keep, samples: Mapping[str, np.ndarray] | None,
                    keras_layers: Sequence[str] = (), notes: list[str] | None = None) -> tuple[bytes, Fallback]:
    """A float .tflite through the LiteRT Quantizer recipe with keep_float applied. The
    ops are chosen on the copy the quantizer takes (litert_quant.prepare: signature, unique
    tensor names, float32 weights); `notes` gets what that rewrote."""
    from gate.measure.litert_quant import prepare, quantize_with_recipe, recipe_list

    prepared = prepare(content)
    if notes is not None:
        notes.extend(prepared.notes)
    content = prepared.content
    base = recipe_list(recipe_name)
    calibration: dict = {}

    def quantize(nodes: Sequence[str]) -> bytes:
        out, calibration["result"] = quantize_with_recipe(
            content, recipe_keeping(base, nodes, keep.activations.value), recipe_name, samples,
            calibration.get("result"))
        return out

    examples = {k: np.asarray(a) for k, a in samples.items()} if samples else None
    fallback = choose(keep, content, quantize, examples, keras_layers)
    return quantize(fallback.kept), fallback
