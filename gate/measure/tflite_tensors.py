"""The tensors of a .tflite's main graph, read from the flatbuffer with the standard library
(gate.measure.tflite_inspect's reader; nothing is executed).

    graph = read_graph(content)
    graph.io_label()            # "int8", or "int8 in, float32 out": what the file takes and gives
    policy_effect(ref, cand)    # did the policy change any tensor? if not, why not (the true reason)

`policy_effect` compares the reference and the candidate tensor by tensor (type and
quantization parameters): a quantizing policy that changed nothing is reported as such,
with the reason read from the file (every float weight tensor is small, or the large ones
feed ops the recipe does not quantize), never guessed.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from gate.measure.tflite_inspect import TENSOR_TYPES, _FB, _op_names, buffer_sizes

DYNAMIC_RANGE_MIN_ELEMENTS = 1024   # the TF converter's and LiteRT's legacy dynamic-range cut-off
CUTOFF_MODES = frozenset({"dynamic", "dynamic_legacy_wi8_afp32"})   # the modes that apply it
_NUMPY = {"FLOAT32": "float32", "FLOAT16": "float16", "INT32": "int32", "UINT8": "uint8", "INT64": "int64",
          "BOOL": "bool", "INT16": "int16", "INT8": "int8", "FLOAT64": "float64", "UINT32": "uint32",
          "UINT16": "uint16", "STRING": "string"}


@dataclass(frozen=True)
class Tensor:
    index: int
    name: str
    type: str                 # FLOAT32, INT8, ...
    shape: tuple[int, ...]
    constant: bool            # its buffer holds data (a weight)
    quantized: bool           # has scales

    @property
    def elements(self) -> int:
        n = 1
        for d in self.shape:
            n *= max(int(d), 1)
        return n


@dataclass(frozen=True)
class Graph:
    tensors: tuple[Tensor, ...]
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    ops: tuple[tuple[str, tuple[int, ...], tuple[int, ...]], ...]   # (op name, inputs, outputs)
    subgraphs: int = 1        # the file's; only the main one (0) is read

    def io_types(self) -> tuple[list[str], list[str]]:
        """numpy dtype names of the graph's inputs and outputs, in order."""
        def names(idx):
            return [_NUMPY.get(self.tensors[i].type, self.tensors[i].type.lower()) for i in idx
                    if 0 <= i < len(self.tensors)]
        return names(self.inputs), names(self.outputs)

    def io_label(self) -> str:
        """"int8" when every input and output is int8; "int8 in, float32 out" otherwise."""
        ins, outs = self.io_types()
        kinds_in, kinds_out = sorted(set(ins)), sorted(set(outs))
        if kinds_in == kinds_out and len(kinds_in) == 1:
            return kinds_in[0]
        return f"{'/'.join(kinds_in) or '-'} in, {'/'.join(kinds_out) or '-'} out"

    def consumers(self, tensor: int) -> list[str]:
        return [name for name, ins, _ in self.ops if tensor in ins]

    def signature(self, fold_float16: bool = False) -> Counter:
        """What a quantizing policy changes: tensors by (type, quantized, constant), counted
        (not by name: tfmot steps and the converter rename tensors). `fold_float16`: a float16
        weight read through DEQUANTIZE counts as the float32 weight it stands for (a float16
        file quantized with nothing else changed has changed nothing)."""
        fp16 = {ins[0]: outs[0] for name, ins, outs in self.ops if fold_float16 and name == "DEQUANTIZE"
                and len(ins) == 1 and self.tensors[ins[0]].constant and self.tensors[ins[0]].type == "FLOAT16"}
        stands_for = set(fp16.values())
        used = {i for _, ins, outs in self.ops for i in (*ins, *outs)} | set(self.inputs) | set(self.outputs)
        return Counter(("FLOAT32", False, True) if t.index in stands_for else (t.type, t.quantized, t.constant)
                       for t in self.tensors if t.index not in fp16 and t.index in used)


def read_graph(content: bytes) -> Graph:
    fb = _FB(content)
    model = fb.root()
    sizes = buffer_sizes(fb, model)
    sgstart, nsg = fb.vec(model, 2)
    if not nsg:
        return Graph((), (), (), ())
    sg = fb.table_at(sgstart, 0)
    tstart, nt = fb.vec(sg, 0)
    tensors = []
    for i in range(nt):
        t = fb.table_at(tstart, i)
        bidx = fb.scalar(t, 2, "<I")
        q = fb.table(t, 4)
        tensors.append(Tensor(i, fb.string(t, 3) or f"tensor_{i}", TENSOR_TYPES.get(fb.scalar(t, 1, "<b"), "?"),
                              tuple(fb.ints(t, 0)), 0 < bidx < len(sizes) and sizes[bidx] > 0,
                              bool(q and fb.vec(q, 2)[1])))
    opnames = _op_names(fb, model)
    ostart, nops = fb.vec(sg, 3)
    ops = []
    for i in range(nops):
        op = fb.table_at(ostart, i)
        idx = fb.scalar(op, 0, "<I")
        ops.append((opnames[idx] if idx < len(opnames) else f"?{idx}", tuple(fb.ints(op, 1)), tuple(fb.ints(op, 2))))
    return Graph(tuple(tensors), tuple(fb.ints(sg, 1)), tuple(fb.ints(sg, 2)), tuple(ops), nsg)


def has_signature(content: bytes) -> bool:
    """Whether the file has a SignatureDef (Model.signature_defs, slot 7)."""
    fb = _FB(content)
    return fb.vec(fb.root(), 7)[1] > 0


def repeated_names(content: bytes) -> bool:
    names = [t.name for t in read_graph(content).tensors]
    return len(set(names)) != len(names)


def io_label(content: bytes) -> str:
    """The io types of a .tflite, read from the file itself."""
    return read_graph(content).io_label()


@dataclass(frozen=True)
class PolicyEffect:
    changed: int          # tensors whose type or quantization differ from the reference
    reason: str           # when nothing changed: why, read from the file

    @property
    def none(self) -> bool:
        return self.changed == 0


def policy_effect(reference: bytes, candidate: bytes, what: str) -> PolicyEffect:
    """How many tensors `what` (a mode or recipe) changed in type or quantization; when none,
    the reason read from the reference's weights."""
    ref, cand = read_graph(reference), read_graph(candidate)
    # Folded only when the reference itself stores float16 weights: from a float32 reference,
    # float16 weights are exactly what a float16 policy changes.
    fold = any(t.constant and t.type == "FLOAT16" for t in ref.tensors)
    a, b = ref.signature(fold), cand.signature(fold)
    changed = sum(((a - b) + (b - a)).values())
    if changed:
        return PolicyEffect(changed, "")
    return PolicyEffect(0, _why_unchanged(ref, what))


def _why_unchanged(graph: Graph, what: str) -> str:
    weights = [t for t in graph.tensors if t.constant and t.type == "FLOAT32" and len(t.shape) >= 2]
    if not weights:
        kinds = Counter(t.type for t in graph.tensors if t.constant)
        elsewhere = (f"; its other {graph.subgraphs - 1} subgraph(s) (control flow bodies) were not read"
                     if graph.subgraphs > 1 else "")
        return (f"{what} changed no tensor: the main graph has no float32 weight tensor to quantize (its "
                "constants: " + (", ".join(f"{n} {k}" for k, n in kinds.most_common()) or "none") + f"){elsewhere}")
    largest = max(weights, key=lambda t: t.elements)
    cutoff = what in CUTOFF_MODES
    big = [t for t in weights if t.elements >= DYNAMIC_RANGE_MIN_ELEMENTS] if cutoff else weights
    if not big:
        return (f"{what} changed no tensor: every float32 weight tensor has fewer than "
                f"{DYNAMIC_RANGE_MIN_ELEMENTS} values (the largest, '{largest.name}', has {largest.elements:,}), "
                "and this dynamic-range mode leaves smaller ones float")
    ops = Counter(op for t in big for op in graph.consumers(t.index)) or Counter({"no op": 1})
    size = f" of >= {DYNAMIC_RANGE_MIN_ELEMENTS} values" if cutoff else ""
    return (f"{what} changed no tensor: {len(big)} float32 weight tensor(s){size} (the largest, "
            f"'{largest.name}', has {largest.elements:,} values) feed "
            + ", ".join(f"{op} x{n}" for op, n in ops.most_common())
            + f", which {what} left float")
