"""Post-training quantization of a float .tflite with LiteRT Quantizer (`litert-quantizer`,
import `litert_quantizer`; pure Python on ai_edge_litert, no TensorFlow).

    content = quantize(float_bytes, "static_wi8_ai8", {input_name: (N, ...) array})

Calibration samples go in by input name, each in its input's dtype (int32 token ids stay
int32), one example per sample; calibration runs on one thread (its default is 16) and
its tqdm progress bars are kept off the terminal. The quantizer does not refuse an
already-quantized model (it warns and leaves those tensors as they are), so this does.
"""
from __future__ import annotations

import os
import warnings
from collections.abc import Mapping

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
    """{input name: (N, ...) array} -> {signature key: [{input name: (1, ...) array}, ...]}."""
    interp = make_interpreter(content, threads=1, where="float .tflite")
    key = signature_key(interp)
    if key is None:
        raise ModelError("LiteRT Quantizer calibrates through the model's signature; this .tflite has none",
                         field="policy.convert")
    ins, _ = signature_io(interp)
    missing = [n for n in ins if n not in samples]
    if missing:
        raise ModelError(f"calibration samples lack the model's inputs {missing} (have {sorted(samples)})",
                         field="data.train")
    n = len(next(iter(samples.values())))
    return {key: [{name: quantize_input(np.asarray(samples[name][i:i + 1]), d) for name, d in ins.items()}
                  for i in range(n)]}


def recipe_list(name: str) -> list[dict]:
    """A named recipe as LiteRT Quantizer's list of entries (regex, operation, algorithm_key,
    op_config), to extend (gate.measure.fallback adds per-op entries)."""
    return list(_recipe(name))


def quantize(content: bytes, recipe_name: str, samples: Mapping[str, np.ndarray] | None = None, *,
             num_threads: int = 1) -> bytes:
    """Quantize a float .tflite with a LiteRT Quantizer recipe; returns the new bytes."""
    return quantize_with_recipe(content, recipe_list(recipe_name), recipe_name, samples, num_threads=num_threads)[0]


def quantize_with_recipe(content: bytes, recipe: list[dict], recipe_name: str,
                         samples: Mapping[str, np.ndarray] | None = None, calibration=None, *,
                         num_threads: int = 1):
    """(quantized bytes, the calibration result): `recipe` as entries; `calibration` from an
    earlier call on the same float model is reused (no second calibration run)."""
    kind = tflite_kind(content).kind
    if kind != "float":
        raise ModelError(f"the model is already quantized ({kind}); LiteRT Quantizer expects a float32 model",
                         field="policy.convert")
    _quiet()
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
