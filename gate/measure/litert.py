"""The LiteRT interpreter (ai_edge_litert; tf.lite.Interpreter is deprecated). No TF."""
from __future__ import annotations

import numpy as np

from gate.errors import ModelError


def make_interpreter(content: bytes, *, threads: int, where: str = "candidate model"):
    from ai_edge_litert.interpreter import Interpreter

    try:
        interp = Interpreter(model_content=content, num_threads=threads)
        interp.allocate_tensors()
    except Exception as exc:  # noqa: BLE001 - an invalid flatbuffer is bad input
        raise ModelError(f"the LiteRT interpreter cannot load this model: {exc}".strip(), file=where) from None
    return interp


def interpreter_with_input(content: bytes, example: np.ndarray, *, threads: int, where: str):
    """An interpreter with one real example set as its input (quantized with the input
    tensor's own scale and zero point), ready to be timed with invoke()."""
    interp = make_interpreter(content, threads=threads, where=where)
    detail = interp.get_input_details()[0]
    shape = tuple(int(d) for d in detail["shape"])
    batch = example.reshape(shape) if example.size == int(np.prod(shape)) else example[:1]
    interp.set_tensor(detail["index"], quantize_input(batch, detail))
    return interp


def litert_version() -> str:
    from importlib.metadata import version

    try:
        return version("ai-edge-litert")
    except Exception:  # noqa: BLE001
        return "unknown"


def quantize_input(x: np.ndarray, detail: dict) -> np.ndarray:
    """Float examples -> the input tensor's dtype, with its scale/zero point when integer."""
    dtype = detail["dtype"]
    if np.issubdtype(dtype, np.integer):
        scale, zero = detail["quantization"]
        if scale:
            info = np.iinfo(dtype)
            q = np.round(x.astype(np.float64) / scale + zero)
            return np.clip(q, info.min, info.max).astype(dtype)
        return x.astype(dtype)
    return x.astype(dtype)


def dequantize_output(y: np.ndarray, detail: dict) -> np.ndarray:
    scale, zero = detail["quantization"]
    if np.issubdtype(y.dtype, np.integer) and scale:
        return (y.astype(np.float32) - zero) * scale
    return y.astype(np.float32)
