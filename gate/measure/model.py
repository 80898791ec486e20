"""Load the committed model and describe it (formats: gate.formats).

Every file is scanned first without executing anything (gate.scan: no Lambda, no
foreign classes, no HDF5 links, no zip bombs; SavedModels only with trust_model_code).
The scan tells which Keras wrote a .keras/.h5: tf_keras files load with tf_keras,
Keras 3 files with Keras 3 (`keras.saving.load_model`), both with safe_mode=True. A
committed .tflite is kept as bytes.

Inputs and outputs are described by name (Keras input layer names and output names, or
a .tflite's signature names): data is keyed by them and the interpreter is fed by them.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from gate.errors import ModelError
from gate.formats import EXPECTED, format_of

KERAS3, TF_KERAS, TFLITE, SAVEDMODEL = "keras3", "tf_keras", "tflite", "savedmodel"


@dataclass(frozen=True)
class TensorSpec:
    name: str
    shape: tuple[int | None, ...]
    dtype: str
    activation: str | None = None     # outputs: softmax | sigmoid | linear | ... when known
    quantized: bool = False           # an integer tensor with a scale: real values go in, quantized
    layer: str | None = None          # Keras outputs: the layer that produces it (dict outputs are named by key)

    def to_dict(self) -> dict:
        out = {"name": self.name, "shape": list(self.shape), "dtype": self.dtype}
        if self.activation:
            out["activation"] = self.activation
        if self.quantized:
            out["quantized"] = True
        return out


@dataclass(frozen=True)
class ModelFacts:
    format: str
    path: str
    file_bytes: int
    params: int | None
    layers: int            # Keras layers, or TFLite ops
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    flavour: str = TF_KERAS            # keras3 | tf_keras | tflite | savedmodel
    precision: str | None = None       # a .tflite's: float | float16 | dynamic_range | int8 | int16x8

    @property
    def input_shape(self) -> tuple[int | None, ...]:
        return self.inputs[0].shape

    @property
    def n_classes(self) -> int:
        last = self.outputs[0].shape[-1]
        return int(last) if last else 1

    @property
    def input_names(self) -> list[str]:
        return [t.name for t in self.inputs]

    @property
    def output_names(self) -> list[str]:
        return [t.name for t in self.outputs]

    @property
    def output_layers(self) -> list[str | None]:
        return [t.layer for t in self.outputs]

    def to_dict(self) -> dict:
        out = {"format": self.format, "path": self.path, "file_bytes": self.file_bytes,
               "params": self.params, "layers": self.layers, "flavour": self.flavour,
               "inputs": [t.to_dict() for t in self.inputs], "outputs": [t.to_dict() for t in self.outputs]}
        if self.precision:
            out["precision"] = self.precision
        return out


@dataclass(frozen=True)
class LoadedModel:
    facts: ModelFacts
    keras: Any = field(default=None, repr=False)          # tf_keras or Keras 3 model, or None for .tflite
    tflite: bytes | None = field(default=None, repr=False)
    notes: tuple[str, ...] = ()                           # how it was loaded, when that is worth saying

    @property
    def is_tflite(self) -> bool:
        return self.keras is None

    @property
    def is_keras3(self) -> bool:
        return self.facts.flavour == KERAS3


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


def _dtype(t: Any) -> str:
    d = getattr(t, "dtype", "float32")
    return str(getattr(d, "name", d))


def _activation(layer: Any) -> str | None:
    """The activation a layer ends with, when it says (Dense(activation=...), Softmax, Activation)."""
    cls = type(layer).__name__
    if cls == "Softmax":
        return "softmax"
    act = getattr(layer, "activation", None)
    name = getattr(act, "__name__", None) if act is not None else None
    if isinstance(act, str):
        name = act
    return name


def _history_layer(tensor: Any) -> Any:
    history = getattr(tensor, "_keras_history", None)
    return history[0] if history is not None else None


def keras_io(model: Any) -> tuple[list[tuple[str, Any]], list[tuple[str, Any]]]:
    """(input name, tensor) and (output name, tensor) pairs, in Keras order. Inputs are
    named after their InputLayer; outputs after their layer, or their key for dict outputs."""
    inputs = [(getattr(_history_layer(t), "name", None) or t.name.split(":")[0], t) for t in model.inputs]
    output = getattr(model, "output", None)
    if isinstance(output, dict):
        outputs = list(output.items())
    else:
        names = list(getattr(model, "output_names", None) or [])
        tensors = list(model.outputs)
        if len(names) != len(tensors):
            names = [getattr(_history_layer(t), "name", None) or f"output_{i}" for i, t in enumerate(tensors)]
        outputs = list(zip(names, tensors))
    return inputs, outputs


def keras_facts(model: Any, path: Path, fmt: str, flavour: str) -> ModelFacts:
    inputs, outputs = keras_io(model)
    return ModelFacts(
        format=fmt, path=str(path), file_bytes=_bytes_of(path), params=int(model.count_params()),
        layers=len(model.layers), flavour=flavour,
        inputs=tuple(TensorSpec(n, _shape(t.shape), _dtype(t)) for n, t in inputs),
        outputs=tuple(TensorSpec(n, _shape(t.shape), "float32", _activation(_history_layer(t)),
                                 layer=getattr(_history_layer(t), "name", None)) for n, t in outputs))


def natural_key(name: str) -> list:
    """output_2 before output_10."""
    return [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", name)]


def tflite_facts(content: bytes, path: Path) -> ModelFacts:
    from gate.measure.litert import make_interpreter, signature_io
    from gate.measure.tflite_inspect import output_activations, tflite_kind

    interp = make_interpreter(content, threads=1, where=str(path))
    ins, outs = signature_io(interp, where=str(path))
    activations = output_activations(content)

    def spec(name: str, d: dict, activation: str | None = None) -> TensorSpec:
        sig = d.get("shape_signature")
        shape = sig if sig is not None and len(sig) else d["shape"]
        quantized = bool((d.get("quantization") or (0.0, 0))[0])
        return TensorSpec(name, _shape(shape), d["dtype"].__name__, activation, quantized)

    try:
        n_ops = len(interp._get_ops_details())  # noqa: SLF001 - the only op count the API offers
    except Exception:  # noqa: BLE001
        n_ops = 0
    return ModelFacts(format="tflite", path=str(path), file_bytes=len(content), params=None, layers=n_ops,
                      inputs=tuple(spec(n, d) for n, d in ins.items()),
                      outputs=tuple(spec(n, d, activations.get(d["index"]))
                                    for n, d in sorted(outs.items(), key=lambda kv: natural_key(kv[0]))),
                      flavour=TFLITE, precision=tflite_kind(content).kind)


def load_model(path: Path, *, trust_model_code: bool = False) -> LoadedModel:
    """Load a model file safely: scan it without executing anything (gate.scan), then
    load. Raises ModelError naming the file on any failure."""
    from gate.scan import scan_model

    fmt = detect_format(path)
    scan = scan_model(path, trust_model_code=trust_model_code)
    if fmt == "tflite":
        content = path.read_bytes()
        return LoadedModel(tflite_facts(content, path), tflite=content)
    flavour = SAVEDMODEL if fmt == SAVEDMODEL else (scan.flavour or TF_KERAS)
    if flavour == KERAS3:
        return _load_keras3(path, fmt)
    from gate.measure.tfenv import keras

    if fmt == SAVEDMODEL:
        from gate.measure.savedmodel import is_keras_savedmodel

        if not is_keras_savedmodel(path):
            return _load_plain(path)
    k = keras()
    notes: tuple[str, ...] = ()
    try:
        if fmt == "keras":
            model = load_tf_keras_zip(path, k)
        else:
            from gate.measure.savedmodel import load_without_failing_compile

            model, note = load_without_failing_compile(
                path, k, "Keras SavedModel" if fmt == SAVEDMODEL else f"{fmt} model")
            notes = (note,) if note else ()
    except ModelError:
        raise
    except Exception as exc:  # noqa: BLE001 - every loader failure is the model's fault
        raise ModelError(f"cannot load the {fmt} model: {type(exc).__name__}: {_first_line(exc)}",
                         file=str(path), field="model") from None
    if not isinstance(model, (k.Sequential, k.Model)) or not getattr(model, "inputs", None):
        if fmt == SAVEDMODEL:     # a subclassed model saved as a SavedModel: served through its signature
            return _load_plain(path)
        raise ModelError(f"loaded object is not a Keras Sequential/functional model ({type(model).__name__})",
                         file=str(path), field="model")
    return LoadedModel(keras_facts(model, path, fmt, flavour), keras=model, notes=notes)


def _load_plain(path: Path) -> LoadedModel:
    """A plain TF SavedModel as a LoadedModel holding its float32 conversion (gate.measure.savedmodel)."""
    from gate.measure.savedmodel import convert_plain, plain_note

    content, key = convert_plain(path)
    facts = replace(tflite_facts(content, path), format=SAVEDMODEL, flavour=SAVEDMODEL, file_bytes=_bytes_of(path))
    return LoadedModel(facts, tflite=content, notes=(plain_note(path.name, key),))


WEIGHTS_H5, CONFIG_JSON = "model.weights.h5", "config.json"


def load_tf_keras_zip(path: Path, k: Any) -> Any:
    """tf_keras' `load_model` of a .keras file, without its slow part: it reads
    model.weights.h5 through zipfile, and h5py's random reads seek backwards in a zip
    member, which Python 3.11's zipfile serves by reading the member again from its start
    (a 95 MB ResNet50: 14.6 s, 3.0 s from an extracted file). Same steps as tf_keras'
    saving_lib.load_model (config -> deserialize with safe_mode -> compile -> state),
    with the weights file extracted first; Keras 3 does the same itself. A file with
    assets or .npz weights goes through load_model as it is."""
    import json
    import shutil
    import tempfile
    import zipfile

    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
        if WEIGHTS_H5 not in names or CONFIG_JSON not in names or len(names) > 3:
            return k.models.load_model(path, compile=True, safe_mode=True)
        config = json.loads(zf.read(CONFIG_JSON))
        with tempfile.TemporaryDirectory(prefix="gate-weights-") as tmp:
            weights = Path(tmp) / WEIGHTS_H5
            with zf.open(WEIGHTS_H5) as src, open(weights, "wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
            from gate.measure.tfenv import tf_keras_v3_loading

            with tf_keras_v3_loading():
                model = k.saving.deserialize_keras_object(config, safe_mode=True)
                model.load_weights(weights)
    return model


def _load_keras3(path: Path, fmt: str) -> LoadedModel:
    from gate.measure.tfenv import keras3

    k3 = keras3()
    try:
        model = k3.saving.load_model(path, compile=True, safe_mode=True)
    except Exception as exc:  # noqa: BLE001 - every loader failure is the model's fault
        raise ModelError(f"cannot load the Keras 3 {fmt} model: {type(exc).__name__}: {_first_line(exc)}",
                         file=str(path), field="model") from None
    if not isinstance(model, k3.Model) or not getattr(model, "inputs", None):
        raise ModelError(f"the Keras 3 file holds no Sequential/functional model ({type(model).__name__})",
                         file=str(path), field="model",
                         hint="subclassed models have no config to rebuild from: build it with the functional API")
    return LoadedModel(keras_facts(model, path, fmt, KERAS3), keras=model)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:500] if text else ""
