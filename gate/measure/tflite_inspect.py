"""Is a .tflite float or quantized, and how? Read from the flatbuffer with the standard
library only (nothing is executed, no interpreter).

Constant tensors (their buffer holds data: the weights) and the others (activations),
their types and quantization parameters decide (`tflite_kind`):

  float          constants FLOAT32 (+ INT32 shapes), no quantization parameters
  float16        FLOAT16 constants (dequantized at load or run)
  dynamic_range  INT8/INT4 weight constants with scales, FLOAT32 activations (dynamic-range
                 or weight-only quantization, by the TF converter or LiteRT Quantizer); a few
                 int8 activations are allowed (an int8 embedding table's GATHER output)
  int8           quantized INT8/UINT8 activations outnumber FLOAT32 ones (full integer)
  int16x8        quantized INT16 activations outnumber FLOAT32 ones

Also the op producing each output tensor (`output_activations`: SOFTMAX -> "softmax",
LOGISTIC -> "sigmoid"), which tells a classifier from a regression head.
"""
from __future__ import annotations

import struct
from collections import Counter
from dataclasses import dataclass, field

PRECISION_LABELS = {"float": "float32", "float16": "float16", "dynamic_range": "dynamic range int8",
                    "int8": "int8", "int16x8": "int16x8"}
_OUTPUT_ACTIVATIONS = {"SOFTMAX": "softmax", "LOGISTIC": "sigmoid", "TANH": "tanh", "RELU": "relu",
                       "RELU6": "relu6"}

TENSOR_TYPES = {0: "FLOAT32", 1: "FLOAT16", 2: "INT32", 3: "UINT8", 4: "INT64", 5: "STRING",
                6: "BOOL", 7: "INT16", 8: "COMPLEX64", 9: "INT8", 10: "FLOAT64",
                11: "COMPLEX128", 12: "UINT64", 13: "RESOURCE", 14: "VARIANT", 15: "UINT32",
                16: "UINT16", 17: "INT4", 18: "BFLOAT16", 19: "INT2", 20: "UINT4",
                21: "FLOAT8_E4M3FN", 22: "FLOAT8_E5M2"}
# BuiltinOperator codes, from the tflite schema (schema_py_generated.py, ai-edge-litert 2.3.0).
BUILTIN_OPS = {
    0: 'ADD', 1: 'AVERAGE_POOL_2D', 2: 'CONCATENATION', 3: 'CONV_2D', 4: 'DEPTHWISE_CONV_2D',
    5: 'DEPTH_TO_SPACE', 6: 'DEQUANTIZE', 7: 'EMBEDDING_LOOKUP', 8: 'FLOOR', 9: 'FULLY_CONNECTED',
    10: 'HASHTABLE_LOOKUP', 11: 'L2_NORMALIZATION', 12: 'L2_POOL_2D', 13: 'LOCAL_RESPONSE_NORMALIZATION', 14: 'LOGISTIC',
    15: 'LSH_PROJECTION', 16: 'LSTM', 17: 'MAX_POOL_2D', 18: 'MUL', 19: 'RELU',
    20: 'RELU_N1_TO_1', 21: 'RELU6', 22: 'RESHAPE', 23: 'RESIZE_BILINEAR', 24: 'RNN',
    25: 'SOFTMAX', 26: 'SPACE_TO_DEPTH', 27: 'SVDF', 28: 'TANH', 29: 'CONCAT_EMBEDDINGS',
    30: 'SKIP_GRAM', 31: 'CALL', 32: 'CUSTOM', 33: 'EMBEDDING_LOOKUP_SPARSE', 34: 'PAD',
    35: 'UNIDIRECTIONAL_SEQUENCE_RNN', 36: 'GATHER', 37: 'BATCH_TO_SPACE_ND', 38: 'SPACE_TO_BATCH_ND', 39: 'TRANSPOSE',
    40: 'MEAN', 41: 'SUB', 42: 'DIV', 43: 'SQUEEZE', 44: 'UNIDIRECTIONAL_SEQUENCE_LSTM',
    45: 'STRIDED_SLICE', 46: 'BIDIRECTIONAL_SEQUENCE_RNN', 47: 'EXP', 48: 'TOPK_V2', 49: 'SPLIT',
    50: 'LOG_SOFTMAX', 51: 'DELEGATE', 52: 'BIDIRECTIONAL_SEQUENCE_LSTM', 53: 'CAST', 54: 'PRELU',
    55: 'MAXIMUM', 56: 'ARG_MAX', 57: 'MINIMUM', 58: 'LESS', 59: 'NEG',
    60: 'PADV2', 61: 'GREATER', 62: 'GREATER_EQUAL', 63: 'LESS_EQUAL', 64: 'SELECT',
    65: 'SLICE', 66: 'SIN', 67: 'TRANSPOSE_CONV', 68: 'SPARSE_TO_DENSE', 69: 'TILE',
    70: 'EXPAND_DIMS', 71: 'EQUAL', 72: 'NOT_EQUAL', 73: 'LOG', 74: 'SUM',
    75: 'SQRT', 76: 'RSQRT', 77: 'SHAPE', 78: 'POW', 79: 'ARG_MIN',
    80: 'FAKE_QUANT', 81: 'REDUCE_PROD', 82: 'REDUCE_MAX', 83: 'PACK', 84: 'LOGICAL_OR',
    85: 'ONE_HOT', 86: 'LOGICAL_AND', 87: 'LOGICAL_NOT', 88: 'UNPACK', 89: 'REDUCE_MIN',
    90: 'FLOOR_DIV', 91: 'REDUCE_ANY', 92: 'SQUARE', 93: 'ZEROS_LIKE', 94: 'FILL',
    95: 'FLOOR_MOD', 96: 'RANGE', 97: 'RESIZE_NEAREST_NEIGHBOR', 98: 'LEAKY_RELU', 99: 'SQUARED_DIFFERENCE',
    100: 'MIRROR_PAD', 101: 'ABS', 102: 'SPLIT_V', 103: 'UNIQUE', 104: 'CEIL',
    105: 'REVERSE_V2', 106: 'ADD_N', 107: 'GATHER_ND', 108: 'COS', 109: 'WHERE',
    110: 'RANK', 111: 'ELU', 112: 'REVERSE_SEQUENCE', 113: 'MATRIX_DIAG', 114: 'QUANTIZE',
    115: 'MATRIX_SET_DIAG', 116: 'ROUND', 117: 'HARD_SWISH', 118: 'IF', 119: 'WHILE',
    120: 'NON_MAX_SUPPRESSION_V4', 121: 'NON_MAX_SUPPRESSION_V5', 122: 'SCATTER_ND', 123: 'SELECT_V2', 124: 'DENSIFY',
    125: 'SEGMENT_SUM', 126: 'BATCH_MATMUL', 127: 'PLACEHOLDER_FOR_GREATER_OP_CODES', 128: 'CUMSUM', 129: 'CALL_ONCE',
    130: 'BROADCAST_TO', 131: 'RFFT2D', 132: 'CONV_3D', 133: 'IMAG', 134: 'REAL',
    135: 'COMPLEX_ABS', 136: 'HASHTABLE', 137: 'HASHTABLE_FIND', 138: 'HASHTABLE_IMPORT', 139: 'HASHTABLE_SIZE',
    140: 'REDUCE_ALL', 141: 'CONV_3D_TRANSPOSE', 142: 'VAR_HANDLE', 143: 'READ_VARIABLE', 144: 'ASSIGN_VARIABLE',
    145: 'BROADCAST_ARGS', 146: 'RANDOM_STANDARD_NORMAL', 147: 'BUCKETIZE', 148: 'RANDOM_UNIFORM', 149: 'MULTINOMIAL',
    150: 'GELU', 151: 'DYNAMIC_UPDATE_SLICE', 152: 'RELU_0_TO_1', 153: 'UNSORTED_SEGMENT_PROD', 154: 'UNSORTED_SEGMENT_MAX',
    155: 'UNSORTED_SEGMENT_SUM', 156: 'ATAN2', 157: 'UNSORTED_SEGMENT_MIN', 158: 'SIGN', 159: 'BITCAST',
    160: 'BITWISE_XOR', 161: 'RIGHT_SHIFT', 162: 'STABLEHLO_LOGISTIC', 163: 'STABLEHLO_ADD', 164: 'STABLEHLO_DIVIDE',
    165: 'STABLEHLO_MULTIPLY', 166: 'STABLEHLO_MAXIMUM', 167: 'STABLEHLO_RESHAPE', 168: 'STABLEHLO_CLAMP', 169: 'STABLEHLO_CONCATENATE',
    170: 'STABLEHLO_BROADCAST_IN_DIM', 171: 'STABLEHLO_CONVOLUTION', 172: 'STABLEHLO_SLICE', 173: 'STABLEHLO_CUSTOM_CALL', 174: 'STABLEHLO_REDUCE',
    175: 'STABLEHLO_ABS', 176: 'STABLEHLO_AND', 177: 'STABLEHLO_COSINE', 178: 'STABLEHLO_EXPONENTIAL', 179: 'STABLEHLO_FLOOR',
    180: 'STABLEHLO_LOG', 181: 'STABLEHLO_MINIMUM', 182: 'STABLEHLO_NEGATE', 183: 'STABLEHLO_OR', 184: 'STABLEHLO_POWER',
    185: 'STABLEHLO_REMAINDER', 186: 'STABLEHLO_RSQRT', 187: 'STABLEHLO_SELECT', 188: 'STABLEHLO_SUBTRACT', 189: 'STABLEHLO_TANH',
    190: 'STABLEHLO_SCATTER', 191: 'STABLEHLO_COMPARE', 192: 'STABLEHLO_CONVERT', 193: 'STABLEHLO_DYNAMIC_SLICE', 194: 'STABLEHLO_DYNAMIC_UPDATE_SLICE',
    195: 'STABLEHLO_PAD', 196: 'STABLEHLO_IOTA', 197: 'STABLEHLO_DOT_GENERAL', 198: 'STABLEHLO_REDUCE_WINDOW', 199: 'STABLEHLO_SORT',
    200: 'STABLEHLO_WHILE', 201: 'STABLEHLO_GATHER', 202: 'STABLEHLO_TRANSPOSE', 203: 'DILATE', 204: 'STABLEHLO_RNG_BIT_GENERATOR',
    205: 'REDUCE_WINDOW', 206: 'STABLEHLO_COMPOSITE', 207: 'STABLEHLO_SHIFT_LEFT', 208: 'STABLEHLO_CBRT', 209: 'STABLEHLO_CASE',
}




class _FB:
    """Unchecked reads of flatbuffer tables (gate.scan.tflite checked the bounds first)."""

    def __init__(self, buf: bytes):
        self.b = memoryview(buf)

    def u32(self, p: int) -> int:
        return struct.unpack_from("<I", self.b, p)[0]

    def i32(self, p: int) -> int:
        return struct.unpack_from("<i", self.b, p)[0]

    def root(self) -> int:
        return self.u32(0)

    def field(self, t: int, slot: int) -> int:
        vt = t - self.i32(t)
        vlen = struct.unpack_from("<H", self.b, vt)[0]
        e = 4 + 2 * slot
        if e >= vlen:
            return 0
        off = struct.unpack_from("<H", self.b, vt + e)[0]
        return t + off if off else 0

    def scalar(self, t: int, slot: int, fmt: str, default: int = 0) -> int:
        p = self.field(t, slot)
        return struct.unpack_from(fmt, self.b, p)[0] if p else default

    def vec(self, t: int, slot: int) -> tuple[int, int]:
        p = self.field(t, slot)
        if not p:
            return 0, 0
        v = p + self.u32(p)
        return v + 4, self.u32(v)

    def table_at(self, start: int, i: int) -> int:
        e = start + 4 * i
        return e + self.u32(e)

    def table(self, t: int, slot: int) -> int:
        p = self.field(t, slot)
        return p + self.u32(p) if p else 0

    def string(self, t: int, slot: int) -> str | None:
        p = self.field(t, slot)
        if not p:
            return None
        s = p + self.u32(p)
        return bytes(self.b[s + 4:s + 4 + self.u32(s)]).decode("utf-8", "replace")

    def ints(self, t: int, slot: int) -> list[int]:
        start, n = self.vec(t, slot)
        return [self.i32(start + 4 * i) for i in range(n)]


@dataclass(frozen=True)
class TfliteKind:
    kind: str                       # float | float16 | dynamic_range | int8 | int16x8
    const_types: dict = field(default_factory=dict)
    quantized_consts: dict = field(default_factory=dict)
    quantized_activations: dict = field(default_factory=dict)
    activation_types: dict = field(default_factory=dict)
    ops: dict = field(default_factory=dict)

    @property
    def quantized(self) -> bool:
        return self.kind != "float"

    @property
    def label(self) -> str:
        return PRECISION_LABELS.get(self.kind, self.kind)

    def to_dict(self) -> dict:
        return {"kind": self.kind, "const_types": self.const_types, "quantized_consts": self.quantized_consts,
                "quantized_activations": self.quantized_activations, "ops": self.ops}


def _op_names(fb: _FB, model: int) -> list[str]:
    start, n = fb.vec(model, 1)
    names = []
    for i in range(n):
        oc = fb.table_at(start, i)
        code = max(fb.scalar(oc, 0, "<b"), fb.scalar(oc, 3, "<i"))
        custom = fb.string(oc, 1)
        names.append(custom if code == 32 and custom else BUILTIN_OPS.get(code, f"op{code}"))
    return names


def buffer_sizes(fb: "_FB", model: int) -> list[int]:
    """Bytes of each buffer of the model: its data vector, or (files over 2 GB) the
    size of the data stored after the flatbuffer (offset > 1)."""
    bstart, nbuf = fb.vec(model, 4)
    sizes = []
    for i in range(nbuf):
        b = fb.table_at(bstart, i)
        _, n = fb.vec(b, 0)
        sizes.append(n or (fb.scalar(b, 2, "<Q") if fb.scalar(b, 1, "<Q") > 1 else 0))
    return sizes


def tflite_kind(content: bytes) -> TfliteKind:
    fb = _FB(content)
    model = fb.root()
    buf_bytes = buffer_sizes(fb, model)
    opnames = _op_names(fb, model)
    const_types, act_types, quant_act, quant_const, ops = Counter(), Counter(), Counter(), Counter(), Counter()
    sgstart, nsg = fb.vec(model, 2)
    for s in range(nsg):
        sg = fb.table_at(sgstart, s)
        tstart, nt = fb.vec(sg, 0)
        for i in range(nt):
            t = fb.table_at(tstart, i)
            ttype = TENSOR_TYPES.get(fb.scalar(t, 1, "<b"), "?")
            bidx = fb.scalar(t, 2, "<I")
            q = fb.table(t, 4)
            has_scale = bool(q and fb.vec(q, 2)[1])
            if 0 < bidx < len(buf_bytes) and buf_bytes[bidx] > 0:
                const_types[ttype] += 1
                if has_scale:
                    quant_const[ttype] += 1
            else:
                act_types[ttype] += 1
                if has_scale:
                    quant_act[ttype] += 1
        ostart, nops = fb.vec(sg, 3)
        for i in range(nops):
            idx = fb.scalar(fb.table_at(ostart, i), 0, "<I")
            ops[opnames[idx] if idx < len(opnames) else f"?{idx}"] += 1
    q8 = quant_act.get("INT8", 0) + quant_act.get("UINT8", 0)
    f32 = act_types.get("FLOAT32", 0)
    if quant_act.get("INT16", 0) > f32:
        kind = "int16x8"
    elif q8 > f32:
        kind = "int8"
    elif quant_const.get("INT8") or quant_const.get("INT4") or const_types.get("INT4"):
        kind = "dynamic_range"
    elif const_types.get("FLOAT16"):
        kind = "float16"
    else:
        kind = "float"
    return TfliteKind(kind, dict(const_types), dict(quant_const), dict(quant_act), dict(act_types), dict(ops))


def output_activations(content: bytes) -> dict[int, str]:
    """Subgraph 0's output tensor index -> the activation of the op that produces it
    (through a trailing DEQUANTIZE/QUANTIZE/RESHAPE), for the ops that say one."""
    fb = _FB(content)
    model = fb.root()
    opnames = _op_names(fb, model)
    sgstart, nsg = fb.vec(model, 2)
    if not nsg:
        return {}
    sg = fb.table_at(sgstart, 0)
    producer: dict[int, tuple[str, list[int]]] = {}
    ostart, nops = fb.vec(sg, 3)
    for i in range(nops):
        op = fb.table_at(ostart, i)
        idx = fb.scalar(op, 0, "<I")
        name = opnames[idx] if idx < len(opnames) else "?"
        for out in fb.ints(op, 2):
            producer[out] = (name, fb.ints(op, 1))
    result = {}
    for out in fb.ints(sg, 2):
        tensor, hops = out, 0
        while tensor in producer and producer[tensor][0] in ("DEQUANTIZE", "QUANTIZE", "RESHAPE") and hops < 4:
            inputs = producer[tensor][1]
            tensor, hops = (inputs[0] if inputs else -1), hops + 1
        name = producer.get(tensor, ("",))[0]
        if name in _OUTPUT_ACTIVATIONS:
            result[out] = _OUTPUT_ACTIVATIONS[name]
        elif name in ("FULLY_CONNECTED", "CONV_2D", "ADD") and producer[tensor]:
            result[out] = _fused_activation(fb, ostart, nops, tensor, name)
    return {k: v for k, v in result.items() if v}


_FUSED_SLOT = {"FULLY_CONNECTED": 0, "ADD": 0, "CONV_2D": 3}   # fused_activation_function in their options


def _fused_activation(fb: _FB, ostart: int, nops: int, tensor: int, op_name: str) -> str | None:
    """A FULLY_CONNECTED/CONV_2D/ADD output with no fused activation is linear."""
    for i in range(nops):
        op = fb.table_at(ostart, i)
        if tensor in fb.ints(op, 2):
            options = fb.table(op, 4)   # Operator.builtin_options
            code = fb.scalar(options, _FUSED_SLOT[op_name], "<b") if options else 0
            return {0: "linear", 1: "relu", 3: "relu6"}.get(code)
    return None
