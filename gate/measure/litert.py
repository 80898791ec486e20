"""The LiteRT interpreter (ai_edge_litert; tf.lite.Interpreter is deprecated). No TF.

Inputs and outputs go by name through the model's signature (`serving_default`), never
by tensor position: the converter orders tensors its own way (two inputs `[image,
stats]` come out as `[stats, image]`, two outputs reversed). Quantized io (int8/uint8/
int16) uses each tensor's own scale and zero point; unquantized integer inputs (token
ids) are cast to their dtype.
"""
from __future__ import annotations

import re
from collections.abc import Mapping

import numpy as np

from gate.errors import ModelError


def make_interpreter(content: bytes, *, threads: int, where: str = "candidate model", allocate: bool = True):
    """An interpreter, its tensors allocated (`allocate`) unless an input has a dynamic
    dimension (shape_signature -1): then the caller resizes the inputs to the data's shape
    and allocates (at their placeholder size of 1 some graphs cannot be allocated)."""
    from ai_edge_litert.interpreter import Interpreter

    try:
        interp = Interpreter(model_content=content, num_threads=threads)
    except Exception as exc:  # noqa: BLE001 - an invalid flatbuffer is bad input
        raise ModelError(f"the LiteRT interpreter cannot load this model: {exc}".strip(), file=where) from None
    if allocate and not dynamic_inputs(interp):
        try:
            interp.allocate_tensors()
        except Exception as exc:  # noqa: BLE001 - a graph that cannot be allocated is bad input
            raise ModelError(f"the LiteRT interpreter cannot load this model: {exc}".strip(), file=where) from None
    return interp


def dynamic_inputs(interp) -> bool:
    """Whether an input has a dynamic dimension other than the batch (shape_signature -1)."""
    return any(-1 in list(d.get("shape_signature", ()))[1:] for d in interp.get_input_details())


def _tensor_name(name: str) -> str:
    """serving_default_image:0 -> image (a model without signatures names tensors only)."""
    return re.sub(r"^serving_default_", "", name.split(":")[0])


def signature_key(interp) -> str | None:
    sigs = interp.get_signature_list()
    if not sigs:
        return None
    return "serving_default" if "serving_default" in sigs else next(iter(sigs))


def signature_io(interp, *, where: str = "model") -> tuple[dict[str, dict], dict[str, dict]]:
    """Input and output details by name: the signature's, or (a .tflite without
    signatures) the tensors' own names."""
    key = signature_key(interp)
    if key is not None:
        runner = interp.get_signature_runner(key)
        return dict(runner.get_input_details()), dict(runner.get_output_details())
    return unique_names(interp.get_input_details()), unique_names(interp.get_output_details())


def unique_names(details: list[dict]) -> dict[str, dict]:
    """Tensors of a signature-less file by their names; a name that repeats gets `_<position>`
    (as gate.measure.tflite_rewrite.with_signature names them)."""
    from collections import Counter

    raw = [_tensor_name(d["name"]) for d in details]
    seen = Counter(raw)
    return {(n if seen[n] == 1 else f"{n}_{k}"): d for k, (n, d) in enumerate(zip(raw, details))}


def quantize_input(x: np.ndarray, detail: dict) -> np.ndarray:
    """Examples -> the input tensor's dtype: quantized with its scale/zero point when it
    has them, else cast (int32 token ids, uint8 pixels, float32)."""
    dtype = detail["dtype"]
    scale, zero = detail.get("quantization", (0.0, 0))
    if np.issubdtype(dtype, np.integer) and scale:
        info = np.iinfo(dtype)
        q = np.round(x.astype(np.float64) / scale + zero)
        return np.clip(q, info.min, info.max).astype(dtype)
    return x.astype(dtype)


def dequantize_output(y: np.ndarray, detail: dict) -> np.ndarray:
    scale, zero = detail.get("quantization", (0.0, 0))
    if np.issubdtype(y.dtype, np.integer) and scale:
        return (y.astype(np.float32) - zero) * scale
    return y.astype(np.float32)


def match_inputs(names: list[str], arrays: Mapping[str, np.ndarray], *, where: str) -> dict[str, str]:
    """Model input name -> array key: exact names, then tensor-style names, then the only
    input to the only array."""
    mapping = {}
    for name in names:
        if name in arrays:
            mapping[name] = name
            continue
        hits = [k for k in arrays if _tensor_name(k) == _tensor_name(name)]
        if len(hits) == 1:
            mapping[name] = hits[0]
        elif len(names) == 1 and len(arrays) == 1:
            mapping[name] = next(iter(arrays))
    missing = [n for n in names if n not in mapping]
    if missing:
        raise ModelError(f"the .tflite's inputs {missing} match none of the data's inputs {sorted(arrays)}",
                         file=where, hint="name the arrays after the model's inputs (docs/configuration.md, Data)")
    return mapping


def interpreter_with_input(content: bytes, example: Mapping[str, np.ndarray] | np.ndarray, *, threads: int,
                           where: str):
    """An interpreter with one real example set on its inputs (by name, quantized with each
    tensor's own scale and zero point), ready to be timed with invoke()."""
    interp = make_interpreter(content, threads=threads, where=where)
    ins, _ = signature_io(interp, where=where)
    if not isinstance(example, Mapping):
        example = {next(iter(ins)): example}
    mapping = match_inputs(list(ins), example, where=where)
    batches, resized = {}, False
    for name, detail in ins.items():
        a, shape = np.asarray(example[mapping[name]]), tuple(int(d) for d in detail["shape"])
        batch = a.reshape(shape) if a.size == int(np.prod(shape)) else a[:1]   # one example, batch dim or not
        if shape != batch.shape:
            interp.resize_tensor_input(detail["index"], list(batch.shape), strict=False)
            resized = True
        batches[name] = batch
    if resized or dynamic_inputs(interp):
        interp.allocate_tensors()
    for name, detail in ins.items():
        interp.set_tensor(detail["index"], quantize_input(batches[name], detail))
    return interp


def run_signature(content: bytes, arrays: Mapping[str, np.ndarray], *, batch: int, threads: int = 1,
                  where: str = "candidate model") -> dict[str, np.ndarray]:
    """Run every example through the model by name; returns {output name: float32 array}.
    Batched (inputs resized), one example at a time when the graph has a fixed batch."""
    interp = make_interpreter(content, threads=threads, where=where)
    ins, outs = signature_io(interp, where=where)
    mapping = match_inputs(list(ins), arrays, where=where)
    n = len(next(iter(arrays.values())))
    key = signature_key(interp)
    try:
        return _run(interp, key, ins, outs, mapping, arrays, n, batch)
    except (RuntimeError, ValueError):
        try:   # some graphs have a fixed batch dimension: one example at a time always works
            return _run(make_interpreter(content, threads=threads, where=where), key, ins, outs, mapping, arrays,
                        n, 1)
        except (RuntimeError, ValueError) as exc:
            raise ModelError(f"the TFLite model fails on the eval data: {exc}", file=where) from None


def _run(interp, key, ins, outs, mapping, arrays, n, batch) -> dict[str, np.ndarray]:
    chunks: dict[str, list] = {k: [] for k in outs}
    if key is not None:
        runner = interp.get_signature_runner(key)
        for lo in range(0, n, batch):
            feed = {s: quantize_input(np.asarray(arrays[a][lo:lo + batch]), ins[s]) for s, a in mapping.items()}
            for name, value in runner(**feed).items():
                chunks[name].append(dequantize_output(value, outs[name]))
    else:
        current = None
        for lo in range(0, n, batch):
            feed = {s: np.asarray(arrays[a][lo:lo + batch]) for s, a in mapping.items()}
            size = len(next(iter(feed.values())))
            if size != current:
                for s, d in ins.items():   # the data's own shape: dynamic dimensions (-1) included
                    interp.resize_tensor_input(d["index"], list(np.shape(feed[s])), strict=False)
                interp.allocate_tensors()
                current = size
            for s, d in ins.items():
                interp.set_tensor(d["index"], quantize_input(feed[s], d))
            interp.invoke()
            for name, d in outs.items():
                chunks[name].append(dequantize_output(interp.get_tensor(d["index"]), d))
    return {k: np.concatenate(v, axis=0) for k, v in chunks.items()}


def litert_version() -> str:
    from importlib.metadata import version

    try:
        return version("ai-edge-litert")
    except Exception:  # noqa: BLE001
        return "unknown"
