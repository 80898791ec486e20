"""The value range a quantized .tflite was calibrated for, per input, and a warning when the
eval inputs lie far outside it (the eval set preprocessed differently from the data the
model was calibrated on: 0..255 against 0..1). Read from the flatbuffer through the
interpreter: an int8/int16 input's own scale and zero point, or for a float input the
QUANTIZE op that takes it."""
from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from gate.measure.litert import make_interpreter

RANGE_FACTOR = 10.0     # eval span more than this many times the calibrated span: "wildly" apart


def calibrated_ranges(content: bytes) -> dict[int, tuple[float, float]]:
    """{input position: (low, high)} of the real values each quantized input can represent."""
    interp = make_interpreter(content, threads=1, where="candidate .tflite")
    details = {d["index"]: d for d in interp.get_tensor_details()}
    inputs = [d["index"] for d in interp.get_input_details()]
    quantizing = {}
    for op in interp._get_ops_details():        # noqa: SLF001 - the only API listing ops and their tensors
        if op.get("op_name") == "QUANTIZE" and len(op["inputs"]) == 1:
            quantizing[int(op["inputs"][0])] = int(op["outputs"][0])
    out = {}
    for position, index in enumerate(inputs):
        tensor = details.get(quantizing.get(index, index))
        if tensor is None:
            continue
        params = tensor.get("quantization_parameters") or {}
        scales, zeros = params.get("scales", []), params.get("zero_points", [])
        if len(scales) != 1 or not np.issubdtype(np.dtype(tensor["dtype"]), np.integer):
            continue
        info = np.iinfo(np.dtype(tensor["dtype"]))
        scale, zero = float(scales[0]), int(zeros[0]) if len(zeros) else 0
        out[position] = (scale * (info.min - zero), scale * (info.max - zero))
    return out


def calibration_notes(content: bytes, eval_ranges: Mapping[str, tuple[float, float]],
                      input_keys: list[str], file: str) -> list[str]:
    """Warnings for eval inputs (by array key, in input order) far outside the calibrated range."""
    try:
        ranges = calibrated_ranges(content)
    except Exception:  # noqa: BLE001 - a figure we cannot read is no warning, never an error
        return []
    notes = []
    for position, (low, high) in ranges.items():
        if position >= len(input_keys) or input_keys[position] not in eval_ranges:
            continue
        elo, ehi = eval_ranges[input_keys[position]]
        span, espan = max(high - low, 1e-12), ehi - elo
        if ehi < low or elo > high or espan > RANGE_FACTOR * span:
            notes.append(f"warning: eval inputs '{input_keys[position]}' range {elo:.4g}..{ehi:.4g}, but {file} was "
                         f"calibrated for {low:.4g}..{high:.4g}: values outside it are clipped; is the same "
                         "preprocessing (scale, offset) applied to the eval data?")
    return notes
