"""The ops and tensors of a .tflite's main subgraph, read from the flatbuffer with the
standard library and numpy (nothing is executed): what the per-layer table
(gate.measure.layers) and the selective fallback (gate.measure.fallback) work on.

    graph = read_graph(content)
    for op in graph.ops: op.type, op.outputs -> graph.tensors[i].name, .type, .scale
    graph.constant(i) -> the tensor's data as a numpy array (weights), or None

Slots follow the tflite schema (Model: operator_codes 1, subgraphs 2, buffers 4; SubGraph:
tensors 0, operators 3; Tensor: shape 0, type 1, buffer 2, name 3, quantization 4;
QuantizationParameters: scale 2, zero_point 3; Operator: opcode_index 0, inputs 1,
outputs 2; Buffer: data 0, offset 1, size 2).
"""
from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np

from gate.measure.tflite_inspect import TENSOR_TYPES, _FB, _op_names

# numpy dtypes of the tensor types whose constants the table reads (INT4 is unpacked by hand)
_NUMPY = {"FLOAT32": np.float32, "FLOAT16": np.float16, "INT32": np.int32, "UINT8": np.uint8, "INT64": np.int64,
          "INT16": np.int16, "INT8": np.int8, "FLOAT64": np.float64, "BOOL": np.bool_}
BITS = {"FLOAT32": 32, "FLOAT16": 16, "BFLOAT16": 16, "INT32": 32, "UINT8": 8, "INT64": 64, "INT16": 16,
        "INT8": 8, "INT4": 4, "INT2": 2, "UINT4": 4, "FLOAT64": 64, "BOOL": 8}


@dataclass(frozen=True)
class Tensor:
    index: int
    name: str
    type: str                        # FLOAT32, INT8, ... (TENSOR_TYPES)
    shape: tuple[int, ...]
    scale: tuple[float, ...]         # () when not quantized
    zero_point: tuple[int, ...]
    nbytes: int                      # bytes of its constant data (0: an activation)

    @property
    def constant(self) -> bool:
        return self.nbytes > 0

    @property
    def quantized(self) -> bool:
        return bool(self.scale)


@dataclass(frozen=True)
class Op:
    index: int
    type: str                        # CONV_2D, FULLY_CONNECTED, ... (BUILTIN_OPS)
    inputs: tuple[int, ...]          # tensor indices (-1: an optional input left out)
    outputs: tuple[int, ...]


@dataclass(frozen=True)
class Graph:
    """Subgraph 0 of a .tflite (the one a signature runs)."""

    ops: tuple[Op, ...]
    tensors: tuple[Tensor, ...]
    file_bytes: int
    _content: bytes
    _buffers: tuple[tuple[int, int], ...]        # per tensor: (start, length) of its data in the file

    def tensor(self, index: int) -> Tensor | None:
        return self.tensors[index] if 0 <= index < len(self.tensors) else None

    def constants(self, op: Op) -> list[Tensor]:
        return [t for i in op.inputs if (t := self.tensor(i)) is not None and t.constant]

    def output_names(self, op: Op) -> list[str]:
        return [t.name for i in op.outputs if (t := self.tensor(i)) is not None]

    def constant(self, index: int) -> np.ndarray | None:
        """A constant tensor's values (INT4 unpacked to int8), None for an activation or a
        type numpy cannot hold."""
        t = self.tensor(index)
        if t is None or not t.constant:
            return None
        start, length = self._buffers[index]
        raw = self._content[start:start + length]
        if t.type in ("INT4", "UINT4"):
            b = np.frombuffer(raw, dtype=np.uint8)
            lo, hi = (b & 0x0F).astype(np.int8), (b >> 4).astype(np.int8)
            if t.type == "INT4":
                lo, hi = np.where(lo > 7, lo - 16, lo), np.where(hi > 7, hi - 16, hi)
            return np.stack([lo, hi], axis=-1).reshape(-1)[:max(1, int(np.prod(t.shape or (1,))))]
        dtype = _NUMPY.get(t.type)
        if dtype is None or len(raw) % np.dtype(dtype).itemsize:
            return None
        return np.frombuffer(raw, dtype=dtype)


def read_graph(content: bytes) -> Graph:
    fb = _FB(content)
    model = fb.root()
    opnames = _op_names(fb, model)
    bstart, nbuf = fb.vec(model, 4)
    spans = []
    for i in range(nbuf):
        b = fb.table_at(bstart, i)
        start, n = fb.vec(b, 0)
        offset = fb.scalar(b, 1, "<Q")
        if n:
            spans.append((start, n))
        elif offset > 1:
            spans.append((offset, fb.scalar(b, 2, "<Q")))
        else:
            spans.append((0, 0))
    sgstart, nsg = fb.vec(model, 2)
    if not nsg:
        return Graph((), (), len(content), content, ())
    sg = fb.table_at(sgstart, 0)
    tensors, buffers = [], []
    tstart, nt = fb.vec(sg, 0)
    for i in range(nt):
        t = fb.table_at(tstart, i)
        bidx = fb.scalar(t, 2, "<I")
        span = spans[bidx] if 0 < bidx < len(spans) else (0, 0)
        scale, zero = (), ()
        q = fb.table(t, 4)
        if q:
            s_start, s_n = fb.vec(q, 2)
            scale = tuple(struct.unpack_from(f"<{s_n}f", fb.b, s_start)) if s_n else ()
            z_start, z_n = fb.vec(q, 3)
            zero = tuple(struct.unpack_from(f"<{z_n}q", fb.b, z_start)) if z_n else ()
        tensors.append(Tensor(i, fb.string(t, 3) or "", TENSOR_TYPES.get(fb.scalar(t, 1, "<b"), "?"),
                              tuple(fb.ints(t, 0)), scale, zero, span[1]))
        buffers.append(span)
    ops = []
    ostart, nops = fb.vec(sg, 3)
    for i in range(nops):
        op = fb.table_at(ostart, i)
        idx = fb.scalar(op, 0, "<I")
        ops.append(Op(i, opnames[idx] if idx < len(opnames) else f"?{idx}", tuple(fb.ints(op, 1)),
                      tuple(fb.ints(op, 2))))
    return Graph(tuple(ops), tuple(tensors), len(content), content, tuple(buffers))
