"""Proxies of a `.tflite`, for gating next to latency: parameters, non-zero parameters,
unique values and MACs are read from the file and never flake; peak memory is measured
(a fresh process loads and runs the model once) and moves a little.

`proxies(content)` reads the flatbuffer itself (LiteRT's generated schema,
`ai_edge_litert.schema_py_generated`, public in the wheel) rather than the interpreter's
private `_get_ops_details()`: the file says which tensors are constants (a non-empty
buffer) and carries op options such as BATCH_MATMUL's adjoint flags, and its ops are the
model's, not the XNNPACK `DELEGATE` node that replaces them once the interpreter runs.

- ``parameters``: elements of constant weight tensors - float and integer-quantized
  constants, plus the int32 biases of conv / fully connected ops; other int32/int64
  constants (reshape shapes, axes, paddings) are graph plumbing and not counted. A sparse
  constant counts its dense shape.
- ``nonzero_parameters``: stored values != 0. TFLite's int8 weights are symmetric (zero
  point 0), so a pruned weight is 0 in every mode.
- ``unique_values``: distinct values over all parameters (clustering shows here);
  ``max_unique_per_tensor`` the most in one tensor.
- ``macs``: multiply-accumulates of CONV_2D, DEPTHWISE_CONV_2D, FULLY_CONNECTED,
  TRANSPOSE_CONV and BATCH_MATMUL, from the static tensor shapes (batch as stored,
  normally 1). Ops in control-flow bodies are counted once.
- memory: LiteRT 2.3.0 exposes no arena or peak-memory figure in Python (neither the
  Interpreter wrapper nor CompiledModel has one), so `memory()` starts a fresh Python
  process, resets its peak (``/proc/self/clear_refs``) and reads ``/proc/self/status``
  (VmRSS, VmHWM) across Interpreter() + allocate_tensors() + one invoke(): XNNPACK's
  packed weights, the activation arena, allocator slack, and about 3.4 MB of one-off
  runtime state (a 3 KB model reads 3.5 MB, MobileNetV2-0.35 15.7 MB, identical over
  repeats here). Measured in this process instead it read 0 for MobileNet: freed pages
  are reused. The only figures here that are not guaranteed deterministic; None where
  /proc or the child process fails, or with measure_memory=False.
- int4 and other packed sub-byte constants are not counted.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from gate.errors import ModelError

_DTYPES = {0: np.float32, 1: np.float16, 2: np.int32, 3: np.uint8, 4: np.int64, 7: np.int16, 9: np.int8,
           10: np.float64, 16: np.uint16, 15: np.uint32, 12: np.uint64}
_INDEX_TYPES = {2, 4}                      # int32, int64: parameters only as a bias
_CONV, _DEPTHWISE, _FC, _TRANSPOSE_CONV, _BATCH_MATMUL = 3, 4, 9, 67, 126
_BIAS_INPUT = {_CONV: 2, _DEPTHWISE: 2, _FC: 2, _TRANSPOSE_CONV: 3}


@dataclass(frozen=True)
class Proxies:
    parameters: int
    nonzero_parameters: int
    unique_values: int
    max_unique_per_tensor: int
    macs: int
    macs_by_op: dict            # op name -> MACs
    rss_delta_bytes: int | None     # resident growth when loaded and run once (not deterministic)
    peak_delta_bytes: int | None    # peak resident growth over the same span
    memory_method: str

    @property
    def sparsity(self) -> float:
        return 1 - self.nonzero_parameters / self.parameters if self.parameters else 0.0

    def to_dict(self) -> dict:
        return {**asdict(self), "sparsity": self.sparsity}


def _model(content: bytes):
    from ai_edge_litert import schema_py_generated as schema

    try:
        if not schema.Model.ModelBufferHasIdentifier(content, 0):
            raise ValueError("no TFL3 identifier")
        return schema, schema.Model.GetRootAs(content, 0)
    except Exception as exc:  # noqa: BLE001 - anything unreadable is bad input
        raise ModelError(f"not a TFLite flatbuffer: {exc}") from None


def _opcode(model, op) -> int:
    code = model.OperatorCodes(op.OpcodeIndex())
    return max(code.BuiltinCode(), code.DeprecatedBuiltinCode())


def _constant(content: bytes, model, tensor) -> np.ndarray | None:
    """The stored values of a constant tensor, or None for activations and unknown types."""
    buf = model.Buffers(tensor.Buffer())
    dtype = _DTYPES.get(tensor.Type())
    if buf is None or dtype is None:
        return None
    if buf.Offset() > 1:  # models over 2 GB keep buffers after the flatbuffer
        data = content[buf.Offset():buf.Offset() + buf.Size()]
    elif buf.DataLength():
        data = buf.DataAsNumpy().tobytes()
    else:
        return None
    return np.frombuffer(data, dtype=dtype)


def _shape(tensor) -> tuple[int, ...]:
    return tuple(int(d) for d in tensor.ShapeAsNumpy()) if tensor.ShapeLength() else ()


def _macs(schema, code: int, op, shapes: dict[int, tuple[int, ...]]) -> int:
    ins, outs = op.InputsAsNumpy(), op.OutputsAsNumpy()
    out = shapes.get(int(outs[0]), ())
    if code == _CONV:                      # filter [out_c, kh, kw, in_c / groups]
        f = shapes[int(ins[1])]
        return math.prod(out) * f[1] * f[2] * f[3]
    if code == _DEPTHWISE:                 # filter [1, kh, kw, out_c]
        f = shapes[int(ins[1])]
        return math.prod(out) * f[1] * f[2]
    if code == _FC:                        # weights [units, in]
        return math.prod(out) * shapes[int(ins[1])][1]
    if code == _TRANSPOSE_CONV:            # inputs: output_shape, filter [out_c, kh, kw, in_c], input
        f, x = shapes[int(ins[1])], shapes[int(ins[2])]
        return math.prod(x) * f[0] * f[1] * f[2]
    if code == _BATCH_MATMUL:              # [..., M, K] x [..., K, N]
        a = shapes[int(ins[0])]
        adj_x = False
        if op.BuiltinOptions() is not None:
            opts = schema.BatchMatMulOptions()
            opts.Init(op.BuiltinOptions().Bytes, op.BuiltinOptions().Pos)
            adj_x = bool(opts.AdjX())
        return math.prod(out) * (a[-2] if adj_x else a[-1])
    return 0


_OP_NAMES = {_CONV: "CONV_2D", _DEPTHWISE: "DEPTHWISE_CONV_2D", _FC: "FULLY_CONNECTED",
             _TRANSPOSE_CONV: "TRANSPOSE_CONV", _BATCH_MATMUL: "BATCH_MATMUL"}


def static_proxies(content: bytes) -> dict:
    """Everything but memory: parameters, unique values, MACs (sizes: gate.measure.sizes)."""
    schema, model = _model(content)
    params = nonzero = max_unique = 0
    uniques: list[np.ndarray] = []
    macs: dict[str, int] = {}
    seen: set[int] = set()                  # buffers shared by several tensors count once
    for s in range(model.SubgraphsLength()):
        graph = model.Subgraphs(s)
        tensors = [graph.Tensors(i) for i in range(graph.TensorsLength())]
        shapes = {i: _shape(t) for i, t in enumerate(tensors)}
        bias_of: set[int] = set()
        for k in range(graph.OperatorsLength()):
            op = graph.Operators(k)
            code = _opcode(model, op)
            if code in _OP_NAMES:
                macs[_OP_NAMES[code]] = macs.get(_OP_NAMES[code], 0) + _macs(schema, code, op, shapes)
            pos = _BIAS_INPUT.get(code)
            if pos is not None and op.InputsLength() > pos and op.Inputs(pos) >= 0:
                bias_of.add(int(op.Inputs(pos)))
        for i, t in enumerate(tensors):
            if t.Buffer() in seen or (t.Type() in _INDEX_TYPES and i not in bias_of):
                continue
            values = _constant(content, model, t)
            if values is None or values.size == 0:
                continue
            seen.add(t.Buffer())
            params += math.prod(shapes[i]) if t.Sparsity() is not None else values.size
            nonzero += int(np.count_nonzero(values))
            u = np.unique(values.astype(np.float64))
            max_unique = max(max_unique, u.size)
            uniques.append(u)
    unique = int(np.unique(np.concatenate(uniques)).size) if uniques else 0
    return {"parameters": params,
            "nonzero_parameters": nonzero, "unique_values": unique, "max_unique_per_tensor": max_unique,
            "macs": sum(macs.values()), "macs_by_op": macs}


_CHILD = r"""
import json, sys
import numpy as np
def status():
    out = {}
    with open("/proc/self/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(value.split()[0]) * 1024
    return out
content = sys.stdin.buffer.read()
from ai_edge_litert.interpreter import Interpreter
try:
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset the peak (VmHWM) to the current resident set
    reset = True
except OSError:
    reset = False
before = status()
interp = Interpreter(model_content=content, num_threads=int(sys.argv[1]))
interp.allocate_tensors()
d = interp.get_input_details()[0]
interp.set_tensor(d["index"], np.zeros(d["shape"], dtype=d["dtype"]))
interp.invoke()
after = status()
print(json.dumps({"rss": after["VmRSS"] - before["VmRSS"],
                  "peak": after["VmHWM"] - before["VmRSS"] if reset else None}))
"""


def memory(content: bytes, threads: int = 1, timeout_s: float = 120.0) -> dict | None:
    """Resident-memory growth of a fresh Python process across Interpreter() +
    allocate_tensors() + one invoke(): ``{"rss": bytes, "peak": bytes or None}`` (peak
    None where it cannot be reset), or None where /proc or the child fails. A fresh
    process, because in this one freed pages are reused and the growth can read 0."""
    import json
    import subprocess
    import sys

    try:
        done = subprocess.run([sys.executable, "-P", "-c", _CHILD, str(threads)], input=content, capture_output=True,
                              timeout=timeout_s, check=True)
        return json.loads(done.stdout.decode().strip().splitlines()[-1])
    except (OSError, subprocess.SubprocessError, ValueError, IndexError):
        return None


def proxies(content: bytes, *, measure_memory: bool = True, threads: int = 1) -> Proxies:
    """Deterministic proxies of a .tflite, plus (if `measure_memory`) its memory when loaded."""
    static = static_proxies(content)
    mem = memory(content, threads) if measure_memory else None
    method = ("fresh process, /proc/self/status VmRSS and VmHWM (reset via clear_refs) across Interpreter() + "
              "allocate_tensors() + invoke(); includes LiteRT/XNNPACK runtime state; not deterministic"
              if mem else "not measured")
    return Proxies(**static, rss_delta_bytes=mem["rss"] if mem else None,
                   peak_delta_bytes=mem.get("peak") if mem else None, memory_method=method)
