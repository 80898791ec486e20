"""Load the committed model and describe it (formats: gate.formats).

Every file is scanned first without executing anything (gate.scan: no Lambda, no
foreign classes, no HDF5 links, no zip bombs; SavedModels only with trust_model_code),
then Keras formats load with tf_keras and safe_mode=True; a committed .tflite is kept as
bytes (it skips optimization and is benchmarked/evaluated as it is).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gate.errors import ModelError
from gate.formats import EXPECTED, format_of


@dataclass(frozen=True)
class TensorSpec:
    name: str
    shape: tuple[int | None, ...]
    dtype: str

    def to_dict(self) -> dict:
        return {"name": self.name, "shape": list(self.shape), "dtype": self.dtype}


@dataclass(frozen=True)
class ModelFacts:
    format: str
    path: str
    file_bytes: int
    params: int | None
    layers: int            # Keras layers, or TFLite ops
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]

    @property
    def input_shape(self) -> tuple[int | None, ...]:
        return self.inputs[0].shape

    @property
    def n_classes(self) -> int:
        last = self.outputs[0].shape[-1]
        return int(last) if last else 1

    def to_dict(self) -> dict:
        return {"format": self.format, "path": self.path, "file_bytes": self.file_bytes,
                "params": self.params, "layers": self.layers,
                "inputs": [t.to_dict() for t in self.inputs], "outputs": [t.to_dict() for t in self.outputs]}


@dataclass(frozen=True)
class LoadedModel:
    facts: ModelFacts
    keras: Any = field(default=None, repr=False)          # tf_keras.Model, or None for .tflite
    tflite: bytes | None = field(default=None, repr=False)

    @property
    def is_tflite(self) -> bool:
        return self.keras is None


def detect_format(path: Path) -> str:
    fmt = format_of(path)
    if fmt is None:
        if path.is_dir():
            raise ModelError("directory is not a SavedModel (no saved_model.pb)", file=str(path), field="model")
        raise ModelError(f"expected {EXPECTED}; received {path.name}", file=str(path), field="model")
    return fmt


def _bytes_of(path: Path) -> int:
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size


def _shape(shape: Any) -> tuple[int | None, ...]:
    return tuple(None if d is None or d == -1 else int(d) for d in shape)


def _single(specs: Any, what: str, path: Path) -> Any:
    if isinstance(specs, list):
        if len(specs) != 1:
            raise ModelError(f"model-gate scores single-{what} classifiers; this model has {len(specs)} {what}s",
                             file=str(path), field="model")
        return specs[0]
    return specs


def keras_facts(model: Any, path: Path, fmt: str) -> ModelFacts:
    in_shape = _single(model.input_shape, "input", path)
    out_shape = _single(model.output_shape, "output", path)
    in_dtype = getattr(model.inputs[0], "dtype", "float32") if model.inputs else "float32"
    return ModelFacts(
        format=fmt, path=str(path), file_bytes=_bytes_of(path), params=int(model.count_params()),
        layers=len(model.layers),
        inputs=(TensorSpec(model.inputs[0].name if model.inputs else "input", _shape(in_shape), str(getattr(in_dtype, "name", in_dtype))),),
        outputs=(TensorSpec(model.outputs[0].name if model.outputs else "output", _shape(out_shape), "float32"),))


def tflite_facts(content: bytes, path: Path) -> ModelFacts:
    from gate.measure.litert import make_interpreter

    interp = make_interpreter(content, threads=1, where=str(path))
    ins, outs = interp.get_input_details(), interp.get_output_details()
    _single(ins, "input", path)
    _single(outs, "output", path)

    def spec(d: dict) -> TensorSpec:
        sig = d.get("shape_signature")
        shape = sig if sig is not None and len(sig) else d["shape"]
        return TensorSpec(d["name"], _shape(shape), d["dtype"].__name__)

    try:
        n_ops = len(interp._get_ops_details())  # noqa: SLF001 - the only op count the API offers
    except Exception:  # noqa: BLE001
        n_ops = 0
    return ModelFacts(format="tflite", path=str(path), file_bytes=len(content), params=None, layers=n_ops,
                      inputs=(spec(ins[0]),), outputs=(spec(outs[0]),))


def load_model(path: Path, *, trust_model_code: bool = False) -> LoadedModel:
    """Load a model file safely: scan it without executing anything (gate.scan), then
    load. Raises ModelError naming the file on any failure."""
    from gate.scan import scan_model

    fmt = detect_format(path)
    scan_model(path, trust_model_code=trust_model_code)
    if fmt == "tflite":
        content = path.read_bytes()
        return LoadedModel(tflite_facts(content, path), tflite=content)
    from gate.measure.tfenv import keras

    k = keras()
    try:
        if fmt == "keras":
            model = k.models.load_model(path, compile=True, safe_mode=True)
        else:
            model = k.models.load_model(path, compile=True)
    except Exception as exc:  # noqa: BLE001 - every loader failure is the model's fault
        raise ModelError(f"cannot load the {fmt} model: {type(exc).__name__}: {_first_line(exc)}",
                         file=str(path), field="model") from None
    if not isinstance(model, (k.Sequential, k.Model)) or not getattr(model, "inputs", None):
        raise ModelError(f"loaded object is not a Keras Sequential/functional model ({type(model).__name__})",
                         file=str(path), field="model")
    return LoadedModel(keras_facts(model, path, fmt), keras=model)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:500] if text else ""
