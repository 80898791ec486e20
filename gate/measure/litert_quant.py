"""Post-training quantization of a float .tflite with LiteRT Quantizer (`litert-quantizer`,
import `litert_quantizer`; pure Python on ai_edge_litert, no TensorFlow).

    content = quantize(float_bytes, "static_wi8_ai8", {input_name: (N, ...) array})

Calibration samples go in by input name, each in its input's dtype (int32 token ids stay
int32), one example per sample; calibration runs on one thread (its default is 16) and
its tqdm progress bars are kept off the terminal. The quantizer does not refuse an
already-quantized model (it warns and leaves those tensors as they are), so this does.
Files it would refuse or leave as they are get a rewritten copy first (`prepare`): no
signature, repeated tensor names, float16 weights.
"""
from __future__ import annotations

import os
import warnings
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from gate.errors import ModelError
from gate.measure.litert import make_interpreter, quantize_input, signature_io, signature_key
from gate.measure.tflite_inspect import tflite_kind

STATIC = frozenset({"static_wi8_ai8", "static_wi8_ai16"})
# gate.yml's convert.quantization, when LiteRT Quantizer does it (a committed .tflite, or
# quantizer: litert): the recipe that does what the TFLite converter's mode does.
FOR_MODE = {"dynamic": "dynamic_legacy_wi8_afp32", "int8": "static_wi8_ai8", "int16x8": "static_wi8_ai16"}


def _quiet() -> None:
    os.environ.setdefault("TQDM_DISABLE", "1")     # tqdm >= 4.66 reads it: no "Running Calibration" bars


def _recipe(name: str):
    _quiet()
    from litert_quantizer import recipe

    fn = getattr(recipe, name, None)
    if fn is None or name.startswith("_") or not callable(fn):
        raise ModelError(f"LiteRT Quantizer {version()} has no recipe {name!r}", field="policy.convert.recipe")
    return fn()


def version() -> str:
    from importlib.metadata import version as dist_version

    try:
        return dist_version("litert-quantizer")
    except Exception:  # noqa: BLE001
        return "unknown"


def calibration_data(content: bytes, samples: Mapping[str, np.ndarray]) -> dict:
    """{input name: (N, ...) array} -> {signature key: [{input name: (1, ...) array}, ...]}.
    `content` has a signature (`prepare` gives a signature-less file one)."""
    interp = make_interpreter(content, threads=1, where="float .tflite", allocate=False)
    key = signature_key(interp)
    ins, _ = signature_io(interp)
    missing = [n for n in ins if n not in samples]
    if missing:
        raise ModelError(f"calibration samples lack the model's inputs {missing} (have {sorted(samples)})",
                         field="data.train")
    n = len(next(iter(samples.values())))
    return {key: [{name: quantize_input(np.asarray(samples[name][i:i + 1]), d) for name, d in ins.items()}
                  for i in range(n)]}


@dataclass(frozen=True)
class Prepared:
    """The float32 copy LiteRT Quantizer gets, and what was rewritten to make it."""

    content: bytes
    notes: tuple[str, ...]


def prepare(content: bytes) -> Prepared:
    """A copy the quantizer takes (gate.measure.tflite_rewrite): a signature when the file
    has none (calibration goes through it; named after the input tensors), unique tensor
    names, float16 weights back to float32. The committed file is not changed."""
    from gate.measure.tflite_rewrite import dequantize_float16, unique_tensor_names, with_signature
    from gate.measure.tflite_tensors import has_signature, repeated_names

    notes = []      # each rewrite parses the file in Python: only when the fast stdlib reads say it is needed
    if not has_signature(content):
        content = with_signature(content)
        notes.append("the .tflite has no signature: it was given one over its input and output tensors (named "
                     "after them) for calibration and evaluation")
    content, repeated = unique_tensor_names(content) if repeated_names(content) else (content, [])
    if repeated:
        shown = ", ".join(f"'{n}'" for n in repeated[:5]) + (", ..." if len(repeated) > 5 else "")
        notes.append(f"tensor names repeat in the .tflite ({shown}); LiteRT Quantizer needs unique names, so the "
                     "copy it quantized names them <name>_<tensor index>")
    content, n16 = dequantize_float16(content) if tflite_kind(content).kind == "float16" else (content, 0)
    if n16:
        notes.append(f"the .tflite stores float16 weights: {n16} were turned back into float32 (their exact "
                     "values; the DEQUANTIZE ops removed) and then quantized")
    return Prepared(content, tuple(notes))


QUANTIZABLE = ("float", "float16")   # precisions a recipe takes (float16 through `prepare`)


def recipe_list(name: str) -> list[dict]:
    """A named recipe as LiteRT Quantizer's list of entries (regex, operation, algorithm_key,
    op_config), to extend (gate.measure.fallback adds per-op entries)."""
    return list(_recipe(name))


def quantize(content: bytes, recipe_name: str, samples: Mapping[str, np.ndarray] | None = None, *,
             num_threads: int = 1, notes: list[str] | None = None) -> bytes:
    """Quantize a float (or float16-weight) .tflite with a LiteRT Quantizer recipe; returns
    the new bytes. `notes` gets what `prepare` rewrote."""
    return quantize_with_recipe(content, recipe_list(recipe_name), recipe_name, samples, num_threads=num_threads,
                                notes=notes)[0]


def quantize_with_recipe(content: bytes, recipe: list[dict], recipe_name: str,
                         samples: Mapping[str, np.ndarray] | None = None, calibration=None, *,
                         num_threads: int = 1, notes: list[str] | None = None):
    """(quantized bytes, the calibration result): `recipe` as entries; `calibration` from an
    earlier call on the same float model is reused (no second calibration run). The file
    goes through `prepare` first (deterministic, so a reused calibration still fits);
    `notes` gets what it rewrote."""
    kind = tflite_kind(content).kind
    if kind not in QUANTIZABLE:
        raise ModelError(f"the model is already quantized ({kind}); LiteRT Quantizer expects a float32 model",
                         field="policy.convert")
    _quiet()
    prepared = prepare(content)
    if notes is not None:
        notes.extend(prepared.notes)
    content = prepared.content
    from litert_quantizer import quantizer

    try:
        qt = quantizer.Quantizer(bytearray(content))
        qt.load_quantization_recipe(recipe)
        if qt.need_calibration and calibration is None:
            if not samples:
                raise ModelError(f"recipe {recipe_name} calibrates activation ranges: it needs data.train",
                                 field="data.train")
            calibration = qt.calibrate(calibration_data(content, samples), num_threads=num_threads)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = qt.quantize(calibration if qt.need_calibration else None, enable_progress_report=False)
    except ModelError:
        raise
    except Exception as exc:  # noqa: BLE001 - the quantizer's refusals are about the model
        first = str(exc).strip().splitlines()
        raise ModelError(f"LiteRT Quantizer ({recipe_name}) failed: {type(exc).__name__}: "
                         f"{first[0][:400] if first else ''}", field="policy.convert") from None
    return bytes(result.quantized_model), calibration
