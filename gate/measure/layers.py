"""Per-layer diagnosis of a quantized .tflite: one row per op, with its size, precision and
the quantization error at its output against the float model on real examples.

    rows = diagnose(candidate, float_reference, examples, keras_layers=names, kept=names)
    worst_by_error(rows, 3), worst_by_size(rows, 3)
    error = tensor_errors(float_content, quant_content, examples)   # {tensor name: TensorError}

How the error is measured: both models run the same examples with every intermediate
tensor preserved (`experimental_preserve_all_tensors=True`); each op output of the
candidate is matched to the float model's tensor of the same name (the converter names
tensors after the Keras layers, and LiteRT Quantizer keeps the float model's names; an
int8 output whose name the quantizer changed is matched through the DEQUANTIZE that reads
it), dequantized with its scale and zero point, and compared:

  snr_db          10·log10(Σ float² / Σ (float − dequantized)²), capped at 120 dB (identical)
  snr_drop_db     its inputs' lowest SNR minus its own: the precision lost at this op (a
                  QUANTIZE of a float input is compared with that input: the input's rounding)
  rmse_per_scale  sqrt(mean squared error) / the output's scale (int8 outputs only);
                  TFLite's QuantizationDebugger reports the same figure per op (≈ 0.29 is a
                  healthy op: the rounding error of a uniform quantizer)

The error is end to end (it includes every upstream op's error), not the op's own: an op
whose SNR drops sharply against its input's is where precision is lost. Ranking what to
keep float needs the accuracy effect (gate.measure.fallback ablates), not this alone.
"""
from __future__ import annotations

import math
import re
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

import numpy as np

from gate.measure.tflite_graph import BITS, Graph, Op, read_graph

SNR_CAP_DB = 120.0
DIAGNOSIS_EXAMPLES = 64            # eval examples both models run for the error columns
BOUNDARY_OPS = frozenset({"QUANTIZE", "DEQUANTIZE"})
_CHUNK = 16
VALUE_TYPES = frozenset({"INT8", "UINT8", "INT16", "FLOAT32", "FLOAT16"})   # tensors that carry values, not shapes
_WEIGHT_OPS = ("/Conv2D", "/MatMul", "/BatchMatMul", "/depthwise", "/Conv1D", "/conv", "/convolution")
_EXPORT_SUFFIX = re.compile(r"_\d+$")


@dataclass(frozen=True)
class TensorError:
    snr_db: float
    rmse_per_scale: float | None


@dataclass(frozen=True)
class LayerRow:
    """One op of the candidate .tflite (report.json `layers`, gate.report.model.LayerRow)."""

    index: int
    name: str                        # the op's (first) output tensor name
    layer: str | None                # the Keras layer it came from, where the tensor name says
    op: str                          # CONV_2D, FULLY_CONNECTED, ...
    parameters: int                  # elements of its constant inputs (weights, bias)
    bytes: int                       # bytes of its constant inputs
    share: float                     # bytes / the file's bytes
    dtype: str                       # its output's type: INT8, FLOAT32, ...
    weight_dtype: str | None         # its largest constant's type
    bits: int | None                 # that constant's bits
    sparsity: float | None           # fraction of zeros in that constant
    unique_values: int | None        # distinct values in that constant
    quantized: bool                  # its output is a quantized integer tensor
    snr_db: float | None = None
    rmse_per_scale: float | None = None
    snr_drop_db: float | None = None  # SNR lost at this op: its inputs' lowest SNR - its own (local damage)
    debugger_rmse_per_scale: float | None = None  # QuantizationDebugger: the op's own error, sqrt(mse)/scale
    float_reason: str | None = None  # why a float op stayed float in a quantized model

    def to_dict(self) -> dict:
        return asdict(self)


def diagnose(candidate: bytes, float_reference: bytes | None, examples: Mapping[str, np.ndarray] | None, *,
             keras_layers: Sequence[str] = (), kept: Sequence[str] = (), quantizer: str = "tflite",
             max_examples: int = DIAGNOSIS_EXAMPLES, debug_model: bytes | None = None) -> list[LayerRow]:
    """Rows for every op of `candidate`. The error columns need `float_reference` (the float
    .tflite the candidate was quantized from, same tensor names) and `examples` ({input
    name: (N, ...) array}); without them they stay None. `kept`: tensor names the policy
    kept float (convert.keep_float); `debug_model`: the TFLite converter's NumericVerify
    model of the same quantization (gate.measure.fallback), for the debugger column."""
    graph = read_graph(candidate)
    errors: dict[str, TensorError] = {}
    local: dict[str, float] = {}
    if examples:
        limited = {k: np.asarray(a[:max_examples]) for k, a in examples.items()}
        if float_reference is not None:
            errors = tensor_errors(float_reference, candidate, limited)
        if debug_model is not None:
            local = debugger_mse(debug_model, limited, candidate)
    layer_names = set(keras_layers)
    kept_set = set(kept)
    model_quantized = any(t.quantized and not t.constant and t.type in ("INT8", "UINT8", "INT16")
                          for t in graph.tensors)
    rows = []
    for op in graph.ops:
        outs = [graph.tensors[i] for i in op.outputs if 0 <= i < len(graph.tensors)]
        out = outs[0] if outs else None
        consts = graph.constants(op)
        params = sum(int(np.prod(t.shape)) if t.shape else 1 for t in consts)
        nbytes = sum(t.nbytes for t in consts)
        weight = max(consts, key=lambda t: t.nbytes) if consts else None
        sparsity = unique = None
        if weight is not None:
            values = graph.constant(weight.index)
            if values is not None and values.size:
                sparsity = round(float(np.count_nonzero(values == 0)) / values.size, 4)
                unique = int(np.unique(values).size)
        quantized = bool(out is not None and out.quantized and out.type in ("INT8", "UINT8", "INT16"))
        err = errors.get(out.name) if out is not None else None
        name = out.name if out is not None else f"op{op.index}"
        drop = None
        if err is not None and out.type in VALUE_TYPES:
            ins = [errors.get(graph.tensors[i].name) for i in op.inputs
                   if 0 <= i < len(graph.tensors) and not graph.tensors[i].constant
                   and graph.tensors[i].type in VALUE_TYPES]
            measured = [e.snr_db for e in ins if e is not None]
            drop = round(min(measured) - err.snr_db, 2) if measured else None
        rows.append(LayerRow(
            index=op.index, name=name, layer=keras_layer(name, layer_names), op=op.type, parameters=params,
            bytes=nbytes, share=round(nbytes / graph.file_bytes, 5) if graph.file_bytes else 0.0,
            dtype=out.type if out is not None else "?", weight_dtype=weight.type if weight else None,
            bits=BITS.get(weight.type) if weight else None, sparsity=sparsity, unique_values=unique,
            quantized=quantized, snr_db=None if err is None else round(err.snr_db, 2),
            rmse_per_scale=None if err is None or err.rmse_per_scale is None else round(err.rmse_per_scale, 4),
            snr_drop_db=drop,
            debugger_rmse_per_scale=_per_scale(local.get(name), out),
            float_reason=_float_reason(op, graph, quantized, model_quantized, name in kept_set, quantizer)))
    return rows


def _per_scale(mse: float | None, out) -> float | None:
    if mse is None or out is None or out.type not in ("INT8", "UINT8") or len(out.scale) != 1 or out.scale[0] <= 0:
        return None
    return round(math.sqrt(mse) / out.scale[0], 4)


def debugger_mse(debug_model: bytes, examples: Mapping[str, np.ndarray], candidate: bytes) -> dict[str, float]:
    """{candidate op output tensor name: mean squared error} from `tf.lite.experimental.QuantizationDebugger`
    on the debug model: each op computed in float on its own (dequantized) int8 inputs against
    its int8 output — the op's own error, not the accumulated one. {} when the debugger
    cannot run this model."""
    from gate.measure.litert import match_inputs, signature_io
    from gate.measure.tfenv import tf as load_tf

    tf = load_tf()
    try:
        from ai_edge_litert.interpreter import Interpreter

        probe = Interpreter(model_content=debug_model)
        ins, _ = signature_io(probe)
        order = [d["name"] for d in probe.get_input_details()]
        by_tensor = {d["name"]: name for name, d in ins.items()}
        mapping = match_inputs(list(ins), examples, where="layer diagnosis")
        n = len(next(iter(examples.values())))

        def gen():
            for i in range(n):
                yield [np.asarray(examples[mapping[by_tensor.get(t, t)]][i:i + 1], dtype=np.float32) for t in order]

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            debugger = tf.lite.experimental.QuantizationDebugger(quant_debug_model_content=debug_model,
                                                                 debug_dataset=gen)
            debugger.run()
    except (ValueError, RuntimeError, KeyError) as exc:   # no NumericVerify ops, inputs that do not match
        del exc
        return {}
    by_index = {}
    for name, metrics in (debugger.layer_statistics or {}).items():
        mse = metrics.get("mean_squared_error")
        index = name.rsplit(":", 1)[-1]
        if mse is not None and np.isfinite(mse) and index.isdigit():
            by_index[int(index)] = float(mse)
    return _by_candidate_name(read_graph(debug_model), by_index, candidate)


def _by_candidate_name(debug: Graph, by_index: dict[int, float], candidate: bytes) -> dict[str, float]:
    """The debugger keys each statistic by the verified (quantized) tensor of the debug model,
    whose ops are the candidate's with a float twin and a NumericVerify after each quantized
    op; the quantizer renames the tensors (`MaxPool` -> `MaxPool1`), so the verified ops are
    matched to the candidate's quantized compute ops in order, op type by op type."""
    producer = {o: op for op in debug.ops for o in op.outputs}
    verified = [producer[i] for i in sorted(by_index, key=lambda i: producer[i].index if i in producer else -1)
                if i in producer]
    cand = read_graph(candidate)
    quantized = [op for op in cand.ops if op.type not in BOUNDARY_OPS and op.outputs
                 and cand.tensors[op.outputs[0]].quantized and not cand.tensors[op.outputs[0]].constant]
    if len(verified) != len(quantized) or any(a.type != b.type for a, b in zip(verified, quantized)):
        return {}
    return {cand.tensors[q.outputs[0]].name: by_index[v.outputs[0]] for v, q in zip(verified, quantized)}


def coverage(rows: Sequence[LayerRow]) -> tuple[int, int]:
    """(quantized compute ops with an SNR, quantized compute ops)."""
    q = [r for r in rows if r.quantized and r.op not in BOUNDARY_OPS]
    return sum(1 for r in q if r.snr_db is not None), len(q)


def worst_by_error(rows: Sequence[LayerRow], n: int) -> list[LayerRow]:
    """The n compute ops with the lowest SNR."""
    scored = [r for r in rows if r.snr_db is not None and r.op not in BOUNDARY_OPS]
    return sorted(scored, key=lambda r: (r.snr_db, -r.bytes))[:n]


def worst_by_size(rows: Sequence[LayerRow], n: int) -> list[LayerRow]:
    """The n ops holding the largest share of the file."""
    return sorted((r for r in rows if r.bytes), key=lambda r: -r.bytes)[:n]


def keras_layer(tensor_name: str, layer_names: set[str]) -> str | None:
    """The Keras layer a tensor is named after: the converter writes `model/layer/Op` (fused
    ops join several such names with ';')."""
    if not layer_names:
        return None
    parts = tensor_name.split(";")
    # the part naming the op that holds the weights first (a fused Conv+BN+ReLU is the conv's)
    parts.sort(key=lambda p: not any(w in p for w in _WEIGHT_OPS))
    for part in parts:
        for piece in part.split("/"):
            if piece in layer_names:
                return piece
            base = _EXPORT_SUFFIX.sub("", piece)      # Keras 3's export names scopes `head_1` for layer `head`
            if base != piece and base in layer_names:
                return base
    return None


def _float_reason(op: Op, graph: Graph, quantized: bool, model_quantized: bool, kept: bool,
                  quantizer: str) -> str | None:
    out = graph.tensor(op.outputs[0]) if op.outputs else None
    if quantized or op.type == "QUANTIZE" or (out is not None and out.type not in ("FLOAT32", "FLOAT16")):
        return None             # quantized, or integer shape arithmetic (SHAPE, PACK...): not "float"
    if op.type == "DEQUANTIZE":
        return "converts int8 back to float (a model output, or the input of a float op)"
    if kept:
        return "kept float by the policy (convert.keep_float)"
    consts = graph.constants(op)
    if any(t.quantized for t in consts):
        return "quantized weights, float activations (dynamic range / weight-only)"
    if not model_quantized:
        if not any(t.quantized for t in graph.tensors):
            return None
        if consts and any(t.type == "FLOAT32" for t in consts):
            return "its weights stayed float (too small for the recipe: dynamic range quantizes weight tensors of " \
                   ">= 1024 elements)"
        return "no weights; this mode keeps activations float"
    if quantizer == "litert":
        return "LiteRT Quantizer's recipe does not quantize this op (unsupported op or kept by the recipe)"
    return "the converter found no integer kernel for this op, or it sits next to a float op"


# --- float vs quantized tensors, by name ---------------------------------------------------------

def tensor_errors(float_content: bytes, quant_content: bytes,
                  examples: Mapping[str, np.ndarray]) -> dict[str, TensorError]:
    """{candidate tensor name: its error against the float model's tensor of that name}."""
    fgraph, qgraph = read_graph(float_content), read_graph(quant_content)
    pairs = _pairs(fgraph, qgraph)
    if not pairs:
        return {}
    try:
        sums = _accumulate(float_content, quant_content, examples, pairs, qgraph, _CHUNK)
    except (RuntimeError, ValueError):      # a graph with a fixed batch: one example at a time
        sums = _accumulate(float_content, quant_content, examples, pairs, qgraph, 1)
    out = {}
    for qi, (sig, err, n) in sums.items():
        if not n:
            continue
        snr = SNR_CAP_DB if err == 0 else (min(SNR_CAP_DB, 10 * math.log10(sig / err)) if sig > 0 else -SNR_CAP_DB)
        t = qgraph.tensors[qi]
        eight_bit = t.type in ("INT8", "UINT8") and len(t.scale) == 1 and t.scale[0] > 0
        rps = math.sqrt(err / n) / t.scale[0] if eight_bit else None
        out[t.name] = TensorError(snr, rps)
    return out


def _accumulate(float_content: bytes, quant_content: bytes, examples: Mapping[str, np.ndarray],
                pairs: dict[int, tuple[int, str]], qgraph: Graph, batch: int) -> dict[int, list]:
    sums = {q: [0.0, 0.0, 0] for q in pairs}
    fwant = sorted({f for f, _ in pairs.values()})
    qwant = sorted(pairs)
    for fvals, qvals in zip(_run_all(float_content, examples, fwant, batch),
                            _run_all(quant_content, examples, qwant, batch)):
        for qi, (fi, _) in pairs.items():
            f, q = fvals.get(fi), qvals.get(qi)
            if f is None or q is None or f.shape != q.shape:
                continue
            t = qgraph.tensors[qi]
            qf = _dequantize(q, t.scale, t.zero_point)
            f64 = f.astype(np.float64)
            s = sums[qi]
            s[0] += float(np.sum(f64 * f64))
            s[1] += float(np.sum((f64 - qf) ** 2))
            s[2] += f.size
    return sums


def _pairs(fgraph: Graph, qgraph: Graph) -> dict[int, tuple[int, str]]:
    """Candidate op-output tensor index -> (float tensor index, name), by name; an output the
    quantizer renamed (`Identity1`) is matched through the DEQUANTIZE that reads it."""
    fnames = {t.name: t.index for t in fgraph.tensors if not t.constant}
    readers: dict[int, Op] = {}
    for op in qgraph.ops:
        if op.type == "DEQUANTIZE" and op.inputs:
            readers[op.inputs[0]] = op
    pairs = {}
    for op in qgraph.ops:
        if op.type == "QUANTIZE" and op.inputs and op.outputs and 0 <= op.inputs[0] < len(qgraph.tensors):
            source = qgraph.tensors[op.inputs[0]].name      # the model input, quantized: its rounding error
            if source in fnames and qgraph.tensors[op.inputs[0]].type == "FLOAT32":
                pairs[op.outputs[0]] = (fnames[source], source)
            continue
        if op.type in BOUNDARY_OPS:
            continue
        for i in op.outputs:
            if not 0 <= i < len(qgraph.tensors):
                continue
            name = qgraph.tensors[i].name
            if name not in fnames and i in readers:
                deq = readers[i]
                name = qgraph.tensors[deq.outputs[0]].name if deq.outputs else name
            if name in fnames:
                pairs[i] = (fnames[name], name)
    return pairs


def _dequantize(q: np.ndarray, scale: tuple[float, ...], zero: tuple[int, ...]) -> np.ndarray:
    if not scale or not np.issubdtype(q.dtype, np.integer):
        return q.astype(np.float64)
    if len(scale) == 1:
        return (q.astype(np.float64) - (zero[0] if zero else 0)) * scale[0]
    return q.astype(np.float64)     # per-channel activations do not occur; leave as is


def _run_all(content: bytes, examples: Mapping[str, np.ndarray], wanted: list[int], batch: int):
    """Yield {tensor index: value} per `batch` examples (the chunks of both models line up)."""
    from ai_edge_litert.interpreter import Interpreter

    from gate.measure.litert import match_inputs, quantize_input, signature_io

    with warnings.catch_warnings():     # "intended for debugging purposes only": this is debugging
        warnings.simplefilter("ignore")
        interp = Interpreter(model_content=content, num_threads=1, experimental_preserve_all_tensors=True)
    interp.allocate_tensors()
    ins, _ = signature_io(interp)
    mapping = match_inputs(list(ins), examples, where="layer diagnosis")
    n = len(next(iter(examples.values())))
    current = None
    for lo in range(0, n, batch):
        feed = {s: np.asarray(examples[a][lo:lo + batch]) for s, a in mapping.items()}
        size = len(next(iter(feed.values())))
        if size != current:
            for s, d in ins.items():
                interp.resize_tensor_input(d["index"], [size, *[int(v) for v in d["shape"][1:]]], strict=False)
            interp.allocate_tensors()
            current = size
        for s, d in ins.items():
            interp.set_tensor(d["index"], quantize_input(feed[s], d))
        interp.invoke()
        values = {}
        for i in wanted:
            try:
                values[i] = np.array(interp.get_tensor(i))
            except ValueError:        # a tensor the runtime did not keep
                pass
        yield values
