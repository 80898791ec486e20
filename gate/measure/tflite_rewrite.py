"""Copies of a .tflite that LiteRT Quantizer can take, rewritten with LiteRT's own
flatbuffer object API (ai_edge_litert.schema_py_generated + tools.flatbuffer_utils; no
TensorFlow). The committed file is never changed; each function returns new bytes.

- `dequantize_float16`: a float16 model as the converter's float16 mode and many SDKs ship
  it (FLOAT16 weight constants, each read through a DEQUANTIZE op) back to float32
  weights: each DEQUANTIZE output becomes a float32 constant holding the weight's values
  and the DEQUANTIZE op goes. The values are exactly the float16 ones.
- `with_signature`: a `serving_default` signature over the graph's inputs and outputs, named
  after the tensors (the names gate.measure.litert reads from a signature-less file), so
  that the quantizer can calibrate through it.
- `unique_tensor_names`: tensors that share a name get a `_<index>` suffix (LiteRT Quantizer
  keys tensors by name, and a repeated name makes it refuse the model).
"""
from __future__ import annotations

from collections import Counter

import numpy as np

SIGNATURE_KEY = "serving_default"


def _schema():
    from ai_edge_litert import schema_py_generated as schema
    from ai_edge_litert.tools import flatbuffer_utils as fbu

    return schema, fbu


def _read(content: bytes):
    _schema_mod, fbu = _schema()
    return fbu.read_model_from_bytearray(bytearray(content))


def _write(model) -> bytes:
    _schema_mod, fbu = _schema()
    return bytes(fbu.convert_object_to_bytearray(model))


def _opcode_names(model, schema) -> list[int]:
    return [max(oc.builtinCode, oc.deprecatedBuiltinCode) for oc in model.operatorCodes]


def dequantize_float16(content: bytes) -> tuple[bytes, int]:
    """(float32-weight copy, number of weights turned back to float32). 0: nothing to do."""
    schema, _fbu = _schema()
    model = _read(content)
    codes = _opcode_names(model, schema)
    done = 0
    for graph in model.subgraphs:
        kept = []
        for op in graph.operators:
            if codes[op.opcodeIndex] == schema.BuiltinOperator.DEQUANTIZE and len(op.inputs) == 1:
                src, dst = graph.tensors[op.inputs[0]], graph.tensors[op.outputs[0]]
                data = model.buffers[src.buffer].data if src.buffer else None
                if (src.type == schema.TensorType.FLOAT16 and dst.type == schema.TensorType.FLOAT32
                        and data is not None and len(data)):
                    values = np.frombuffer(bytes(data), dtype="<f2").astype("<f4")
                    buf = schema.BufferT()
                    buf.data = np.frombuffer(values.tobytes(), dtype=np.uint8)
                    model.buffers.append(buf)
                    dst.buffer = len(model.buffers) - 1
                    done += 1
                    continue
            kept.append(op)
        graph.operators = kept
    if not done:
        return content, 0
    _drop_unused_float16(model, schema)
    return _write(model), done


def _drop_unused_float16(model, schema) -> None:
    """Remove the float16 constants nothing reads any more (their buffers too): the file
    shrinks back, and no tensor is left without data (the calibrator reads every tensor)."""
    for g, graph in enumerate(model.subgraphs):
        used = {i for op in graph.operators for i in (*op.inputs, *op.outputs) if i >= 0}
        used |= set(graph.inputs) | set(graph.outputs)
        drop = {i for i, t in enumerate(graph.tensors) if t.type == schema.TensorType.FLOAT16 and i not in used}
        if not drop:
            continue
        for i in drop:
            if graph.tensors[i].buffer:
                model.buffers[graph.tensors[i].buffer].data = None
        new_index, kept = {}, []
        for i, t in enumerate(graph.tensors):
            if i not in drop:
                new_index[i] = len(kept)
                kept.append(t)
        graph.tensors = kept
        remap = lambda idx: [new_index[i] if i >= 0 else i for i in idx]  # noqa: E731
        for op in graph.operators:
            op.inputs, op.outputs = remap(op.inputs), remap(op.outputs)
            if op.intermediates is not None and len(op.intermediates):
                op.intermediates = remap(op.intermediates)
        graph.inputs, graph.outputs = remap(graph.inputs), remap(graph.outputs)
        for sig in model.signatureDefs or []:
            if sig.subgraphIndex == g:
                for item in (*(sig.inputs or []), *(sig.outputs or [])):
                    item.tensorIndex = new_index[item.tensorIndex]


def tensor_name(name: str) -> str:
    from gate.measure.litert import _tensor_name

    return _tensor_name(name)


def unique_tensor_names(content: bytes) -> tuple[bytes, list[str]]:
    """(copy with unique tensor names, the names that repeated). Unchanged when none do."""
    model = _read(content)
    repeated: list[str] = []
    for graph in model.subgraphs:
        names = Counter(_name(t) for t in graph.tensors)
        dup = {n for n, c in names.items() if c > 1}
        if not dup:
            continue
        repeated += sorted(dup)
        for i, t in enumerate(graph.tensors):
            if _name(t) in dup:
                t.name = f"{_name(t)}_{i}".encode()
    return (content, []) if not repeated else (_write(model), repeated)


def _name(t) -> str:
    n = t.name
    return n.decode("utf-8", "replace") if isinstance(n, (bytes, bytearray)) else str(n or "")


def with_signature(content: bytes, in_names: list[str] | None = None, out_names: list[str] | None = None) -> bytes:
    """A copy with a `serving_default` signature over subgraph 0's inputs and outputs, named
    as given or after the tensors (duplicates get `_<n>`). Unchanged when it has one."""
    schema, _fbu = _schema()
    model = _read(content)
    if model.signatureDefs:
        return content
    graph = model.subgraphs[0]

    def names(indices, given):
        if given is not None:
            return list(given)
        raw = [tensor_name(_name(graph.tensors[i])) or f"tensor_{i}" for i in indices]
        seen = Counter(raw)
        return [n if seen[n] == 1 else f"{n}_{k}" for k, n in enumerate(raw)]

    model.signatureDefs = [serving_signature(schema, graph, names(graph.inputs, in_names),
                                             names(graph.outputs, out_names))]
    return _write(model)


def serving_signature(schema, graph, in_names: list[str], out_names: list[str]):
    """A `serving_default` SignatureDefT over subgraph 0's inputs and outputs (in order),
    named as given. `schema`: a TFLite schema module of the object API (LiteRT's or TF's)."""
    def tensor_map(name: str, index: int):
        item = schema.TensorMapT()
        item.name, item.tensorIndex = name, int(index)
        return item

    sig = schema.SignatureDefT()
    sig.signatureKey = SIGNATURE_KEY
    sig.subgraphIndex = 0
    sig.inputs = [tensor_map(n, i) for n, i in zip(in_names, graph.inputs)]
    sig.outputs = [tensor_map(n, i) for n, i in zip(out_names, graph.outputs)]
    return sig
