"""Inspect a model file without executing or deserializing it.

The scan runs before anything hands the file to Keras or TensorFlow. It looks only at
bytes, zip metadata, HDF5 structure and JSON configs, and refuses (with `ModelError`)
anything that could run code, read other files, or exhaust memory or disk when loaded:

* `.keras` (zip): member count, total size, compression ratio, path traversal, symlink
  members; then the `config.json` object tree and the structure of `model.weights.h5`.
* `.h5` / `.hdf5`: soft and external links, external or virtual dataset storage, then
  the `model_config` (and `training_config`) object trees.
* SavedModel directories: a TensorFlow program, so refused unless trust_model_code.
* `.tflite`: the "TFL3" identifier and the bounds of the flatbuffer's top-level tables.

In a config tree every dict with a `class_name` is something Keras will look up and
instantiate. Each must name an allowlisted built-in Keras / tf_keras / tfmot class, with
a `module` inside the allowed packages; Lambda-style layers and serialized Python code
are refused unless the base branch sets trust_model_code.

Only the standard library and (lazily, for HDF5) h5py are imported: never TensorFlow or Keras.
"""
from __future__ import annotations

import json
import mmap
import os
import re
import shutil
import stat
import struct
import tempfile
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gate.errors import ModelError

KIB = 1024
MIB = 1024 * KIB
GIB = 1024 * MIB

TRUST_HINT = ("if you trust this model's code, set trust_model_code: true in the base "
              "branch's config")


@dataclass(frozen=True)
class ScanLimits:
    """Upper bounds the scan enforces before anything is extracted or parsed."""

    max_members: int = 10_000                 # zip members in a .keras file
    max_uncompressed_bytes: int = 2 * GIB     # sum of declared member sizes
    max_ratio: float = 200.0                  # uncompressed / compressed, per member
    max_config_bytes: int = 64 * MIB          # config.json / model_config JSON text
    max_depth: int = 64                       # JSON nesting depth, HDF5 group depth
    max_file_bytes: int = 2 * GIB             # the model file (or SavedModel directory)
    max_objects: int = 200_000                # HDF5 links visited, TFLite tables


@dataclass(frozen=True)
class ScanResult:
    """What the scan saw. layer_classes and n_layers cover the root model and every layer
    nested under `layers`, `layer`, `forward_layer`, `backward_layer`, `cell`, `cells`
    (a wrapper and the layer it wraps count separately); empty for tflite/savedmodel."""

    format: str                       # "keras" | "h5" | "savedmodel" | "tflite"
    file_bytes: int
    layer_classes: tuple[str, ...]    # sorted class names of the model and its layers
    n_layers: int                     # layer objects below the root model (nested included)
    notes: tuple[str, ...] = ()


# --------------------------------------------------------------------------- allowlist
# Static on purpose: importing Keras to build it would defeat the point of the scan.

_LAYERS = frozenset("""
    Activation ActivityRegularization Add AdditiveAttention AlphaDropout Attention Average
    AveragePooling1D AveragePooling2D AveragePooling3D AvgPool1D AvgPool2D AvgPool3D
    BatchNormalization Bidirectional CategoryEncoding CenterCrop Concatenate
    Conv1D Conv1DTranspose Conv2D Conv2DTranspose Conv3D Conv3DTranspose
    ConvLSTM1D ConvLSTM2D ConvLSTM3D Convolution1D Convolution1DTranspose Convolution2D
    Convolution2DTranspose Convolution3D Convolution3DTranspose
    Cropping1D Cropping2D Cropping3D Dense DepthwiseConv1D DepthwiseConv2D Discretization
    Dot Dropout ELU EinsumDense Embedding Flatten GRU GRUCell GaussianDropout GaussianNoise
    GlobalAveragePooling1D GlobalAveragePooling2D GlobalAveragePooling3D
    GlobalAvgPool1D GlobalAvgPool2D GlobalAvgPool3D GlobalMaxPool1D GlobalMaxPool2D
    GlobalMaxPool3D GlobalMaxPooling1D GlobalMaxPooling2D GlobalMaxPooling3D
    GroupNormalization HashedCrossing Hashing Identity InputLayer IntegerLookup LSTM LSTMCell
    LayerNormalization LeakyReLU LocallyConnected1D LocallyConnected2D Masking
    MaxPool1D MaxPool2D MaxPool3D MaxPooling1D MaxPooling2D MaxPooling3D Maximum Minimum
    MultiHeadAttention Multiply Normalization PReLU Permute RNN RandomBrightness
    RandomContrast RandomCrop RandomFlip RandomFourierFeatures RandomHeight RandomRotation
    RandomTranslation RandomWidth RandomZoom ReLU RepeatVector Rescaling Reshape Resizing
    SeparableConv1D SeparableConv2D SeparableConvolution1D SeparableConvolution2D
    SimpleRNN SimpleRNNCell Softmax SpatialDropout1D SpatialDropout2D SpatialDropout3D
    SpectralNormalization StackedRNNCells StringLookup Subtract SyncBatchNormalization
    TextVectorization ThresholdedReLU TimeDistributed UnitNormalization
    UpSampling1D UpSampling2D UpSampling3D ZeroPadding1D ZeroPadding2D ZeroPadding3D
    LayerScale StochasticDepth
""".split())  # the last two are tf_keras.applications.convnext building blocks

_MODELS = frozenset({"Sequential", "Functional", "Model"})

_TFMOT = frozenset("""
    PruneLowMagnitude ConstantSparsity PolynomialDecay
    ClusterWeights ClusterWeightsMHA ClusterWeightsRNN
    QuantizeWrapper QuantizeWrapperV2 QuantizeLayer QuantizeAnnotate
    QuantizeAwareActivation NoOpActivation OutputOnlyConfig FixedQuantizeConfig
    AllValuesQuantizer FixedQuantizer LastValueQuantizer MovingAverageQuantizer NoQuantizer
    Default8BitQuantizeConfig Default8BitConvQuantizeConfig Default8BitOutputQuantizeConfig
    Default8BitActivationQuantizeConfig Default8BitConvTransposeQuantizeConfig
    Default8BitQuantizeConfigRNN NoOpQuantizeConfig
    DefaultNBitQuantizeConfig DefaultNBitConvQuantizeConfig DefaultNBitOutputQuantizeConfig
    DefaultNBitActivationQuantizeConfig DefaultNBitConvTransposeQuantizeConfig
    DefaultNBitQuantizeConfigRNN
    ClusterPreserveDefault8BitConvWeightsQuantizer ClusterPreserveDefault8BitWeightsQuantizer
    ClusterPreserveDefaultWeightsQuantizer PrunePreserveDefault8BitConvWeightsQuantizer
    PrunePreserveDefault8BitWeightsQuantizer PrunePreserveDefaultWeightsQuantizer
""".split())

_INITIALIZERS = frozenset("""
    Constant GlorotNormal GlorotUniform HeNormal HeUniform Identity LecunNormal LecunUniform
    Ones Orthogonal RandomNormal RandomUniform TruncatedNormal VarianceScaling Zeros
    constant glorot_normal glorot_uniform he_normal he_uniform identity lecun_normal
    lecun_uniform ones orthogonal random_normal random_uniform truncated_normal
    variance_scaling zeros
""".split())

_REGULARIZERS_CONSTRAINTS = frozenset("""
    L1 L2 L1L2 OrthogonalRegularizer l1 l2 l1_l2 orthogonal_regularizer
    MaxNorm MinMaxNorm NonNeg RadialConstraint UnitNorm
    max_norm min_max_norm non_neg radial_constraint unit_norm
""".split())

_TRAINING = frozenset("""
    SGD Adam AdamW Adamax Adadelta Adafactor Adagrad Ftrl Lion Nadam RMSprop
    LossScaleOptimizer Policy
    CosineDecay CosineDecayRestarts ExponentialDecay InverseTimeDecay PiecewiseConstantDecay
    BinaryCrossentropy BinaryFocalCrossentropy CategoricalCrossentropy
    CategoricalFocalCrossentropy CategoricalHinge CosineSimilarity Hinge Huber KLDivergence
    LogCosh MeanAbsoluteError MeanAbsolutePercentageError MeanSquaredError
    MeanSquaredLogarithmicError Poisson SparseCategoricalCrossentropy SquaredHinge
    AUC Accuracy BinaryAccuracy BinaryIoU CategoricalAccuracy F1Score FBetaScore
    FalseNegatives FalsePositives IoU LogCoshError Mean MeanIoU MeanMetricWrapper
    MeanRelativeError MeanTensor OneHotIoU OneHotMeanIoU Precision PrecisionAtRecall
    R2Score Recall RecallAtPrecision RootMeanSquaredError SensitivityAtSpecificity
    SparseCategoricalAccuracy SparseTopKCategoricalAccuracy SpecificityAtSensitivity Sum
    TopKCategoricalAccuracy TrueNegatives TruePositives
""".split())

ALLOWED_CLASSES: frozenset[str] = (_LAYERS | _MODELS | _TFMOT | _INITIALIZERS
                                   | _REGULARIZERS_CONSTRAINTS | _TRAINING)

# Built-in functions a {"class_name": "function", "config": NAME} reference may name.
BUILTIN_FUNCTIONS = frozenset("""
    elu exponential gelu hard_sigmoid hard_silu hard_swish leaky_relu linear log_softmax
    mish relu relu6 selu sigmoid silu softmax softplus softsign swish tanh
    KLD MAE MAPE MSE MSLE binary_accuracy binary_crossentropy binary_focal_crossentropy
    categorical_accuracy categorical_crossentropy categorical_focal_crossentropy
    categorical_hinge cosine_similarity hinge huber kl_divergence kld
    kullback_leibler_divergence log_cosh logcosh mae mape mean_absolute_error
    mean_absolute_percentage_error mean_squared_error mean_squared_logarithmic_error mse
    msle poisson sparse_categorical_accuracy sparse_categorical_crossentropy
    sparse_top_k_categorical_accuracy squared_hinge top_k_categorical_accuracy
""".split())

# Layers that carry code. Refused unless the base branch sets trust_model_code.
CODE_LAYERS: dict[str, str] = {
    "Lambda": "Lambda layers run arbitrary Python code when loaded",
    "TFOpLambda": ("TFOpLambda layers call whichever TensorFlow function the file names "
                   "(e.g. tf.io.write_file) when the model is rebuilt"),
    "SlicingOpLambda": ("SlicingOpLambda layers call whichever TensorFlow function the file "
                        "names when the model is rebuilt"),
}

# Refused always: Keras 3 layers that wrap foreign code or files; tf_keras cannot load them.
FOREIGN_LAYERS: dict[str, str] = {
    "TFSMLayer": "TFSMLayer loads and runs a SavedModel from a path outside the file",
    "TorchModuleWrapper": "TorchModuleWrapper unpickles a PyTorch module (arbitrary code)",
    "JaxLayer": "JaxLayer wraps arbitrary Python functions",
    "FlaxLayer": "FlaxLayer wraps arbitrary Python code",
}

# Data markers Keras decodes into values, not classes.
_DATA_MARKERS = frozenset({"__tensor__", "__numpy__", "__bytes__", "__tuple__",
                           "__ellipsis__", "TensorShape"})
_TYPE_SPECS = frozenset({"TensorSpec", "RaggedTensorSpec", "SparseTensorSpec"})

# Dict keys that hold (references to) Python code, anywhere in a config.
CODE_KEYS = frozenset({"function", "function_type", "__lambda__", "__python_function__"})

ALLOWED_MODULE_ROOTS = ("keras", "tf_keras", "tensorflow_model_optimization")
# Exact modules outside those roots that built-in applications write (EfficientNetV2
# serializes tf.constant_initializer as tensorflow.python.ops.init_ops_v2.Constant).
ALLOWED_EXACT_MODULES = frozenset({"tensorflow.python.ops.init_ops_v2"})

# Keys under which a config nests a layer (counted for n_layers / layer_classes).
LAYER_KEYS = frozenset({"layers", "layer", "forward_layer", "backward_layer",
                        "cell", "cells"})

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_REGISTERED_PACKAGES = frozenset({"Custom", "keras", "tf_keras"})

EXTENSIONS = {".keras": "keras", ".h5": "h5", ".hdf5": "h5", ".tflite": "tflite"}
HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
ZIP_SIGNATURES = (b"PK\x03\x04", b"PK\x05\x06")
TFLITE_IDENTIFIER = b"TFL3"
_RATIO_MIN_BYTES = 1 * MIB   # members smaller than this cannot make a meaningful bomb
_METADATA_MAX_BYTES = 1 * MIB
_KERAS_EXPECTED_MEMBERS = ("config.json", "metadata.json", "model.weights.h5")

_CONTENT_NAMES = {"keras": "a zip archive (a .keras file?)", "h5": "HDF5 (an .h5 file?)",
                  "tflite": "a TFLite flatbuffer (a .tflite file?)"}
_EXPECTED_CONTENT = {
    "keras": "a .keras file is a zip archive written by model.save('x.keras')",
    "h5": "an .h5 file starts with the HDF5 signature \\x89HDF\\r\\n\\x1a\\n",
    "tflite": "a .tflite file has the identifier 'TFL3' at bytes 4..8",
}

# What zipfile, zlib, h5py and mmap raise on damaged files. ModelError is none of these.
_CORRUPTION_ERRORS = (OSError, RuntimeError, ValueError, KeyError, EOFError, struct.error,
                      zipfile.BadZipFile, zlib.error)


# --------------------------------------------------------------------------- entry point

def scan_model(path: str | Path, *, trust_model_code: bool = False,
               limits: ScanLimits = ScanLimits()) -> ScanResult:
    """Inspect `path` statically; return what was found or raise ModelError."""
    path = Path(path)
    if path.name == "saved_model.pb" and path.is_file():
        path = path.parent
    if not path.exists():
        raise ModelError("model file does not exist", file=str(path))
    if path.is_dir():
        return _scan_savedmodel(path, trust_model_code, limits)

    fmt, size = _check_file(path, limits)
    scanner = {"keras": _scan_keras, "h5": _scan_h5, "tflite": _scan_tflite}[fmt]
    try:
        return scanner(path, size, trust_model_code, limits)
    except _CORRUPTION_ERRORS as e:   # zip / HDF5 libraries on damaged input
        raise ModelError(f"{fmt} file is corrupt or truncated ({type(e).__name__}: {e})",
                         file=str(path)) from None


# --------------------------------------------------------------------------- file checks

def _check_file(path: Path, limits: ScanLimits) -> tuple[str, int]:
    """Regular file, known extension, sane size, content matching the extension."""
    st = path.stat()
    if not stat.S_ISREG(st.st_mode):
        raise ModelError("not a regular file (device, pipe or socket?)", file=str(path))
    ext = path.suffix.lower()
    if ext not in EXTENSIONS:
        raise ModelError(
            f"unknown model extension '{path.suffix}'", file=str(path),
            hint="expected .keras, .h5, .hdf5, .tflite or a SavedModel directory")
    if st.st_size == 0:
        raise ModelError("file is empty (0 bytes)", file=str(path))
    if st.st_size > limits.max_file_bytes:
        raise ModelError(f"file is {st.st_size} bytes, over the {limits.max_file_bytes}-byte "
                         "limit", file=str(path))
    with path.open("rb") as f:
        head = f.read(8)
    expected = EXTENSIONS[ext]
    found = _sniff(head)
    if found != expected:
        what = (_CONTENT_NAMES.get(found)
                or f"none of zip, HDF5 or TFLite (first bytes: {head.hex()})")
        raise ModelError(f"extension '{path.suffix}' says {expected} but the content is {what}",
                         file=str(path), hint=_EXPECTED_CONTENT[expected])
    return expected, st.st_size


def _sniff(head: bytes) -> str | None:
    if head.startswith(HDF5_SIGNATURE):
        return "h5"
    if head[:4] in ZIP_SIGNATURES:
        return "keras"
    if len(head) >= 8 and head[4:8] == TFLITE_IDENTIFIER:
        return "tflite"
    return None


# --------------------------------------------------------------------------- .keras

def _scan_keras(path: Path, size: int, trust: bool, limits: ScanLimits) -> ScanResult:
    file = str(path)
    notes: list[str] = []
    try:
        zf = zipfile.ZipFile(path, "r")
    except (zipfile.BadZipFile, OSError, ValueError) as e:
        raise ModelError(f"not a readable zip archive: {e}", file=file,
                         hint=_EXPECTED_CONTENT["keras"]) from None
    with zf:
        infos = _check_zip_members(zf, file, limits)
        names = {i.filename for i in infos}
        if "config.json" not in names:
            raise ModelError("no config.json in the archive; not a Keras v3 model file",
                             file=file, field="config.json")
        for expected in _KERAS_EXPECTED_MEMBERS[1:]:
            if expected not in names:
                notes.append(f"archive has no {expected}")
        for other in sorted(names - set(_KERAS_EXPECTED_MEMBERS)):
            if not other.startswith("assets/") and other != "model.weights.npz":
                notes.append(f"unexpected archive member '{other}'")
        notes += _read_metadata(zf, file, names)
        config = _parse_json(_read_member(zf, "config.json", limits.max_config_bytes, file),
                             file, "config.json")
        walk = _walk_config(config, file=file, where="config.json", trust=trust,
                            limits=limits)
        if "model.weights.h5" in names:
            _check_zipped_h5(zf, "model.weights.h5", f"{file}!model.weights.h5", limits)
    return ScanResult("keras", size, walk.classes(), walk.n_layers, tuple(notes + walk.notes))


def _check_zip_members(zf: zipfile.ZipFile, file: str,
                       limits: ScanLimits) -> list[zipfile.ZipInfo]:
    infos = zf.infolist()
    if len(infos) > limits.max_members:
        raise ModelError(f"archive has {len(infos)} members, over the limit of "
                         f"{limits.max_members}", file=file)
    total, seen = 0, set()
    for info in infos:
        name = info.filename
        _check_member_name(name, file)
        if name in seen:
            raise ModelError(f"archive member '{name}' appears twice", file=file)
        seen.add(name)
        if stat.S_ISLNK(info.external_attr >> 16):
            raise ModelError(f"archive member '{name}' is a symbolic link", file=file)
        if info.flag_bits & 0x1:
            raise ModelError(f"archive member '{name}' is encrypted", file=file)
        total += info.file_size
        if total > limits.max_uncompressed_bytes:
            raise ModelError(f"archive expands to more than {limits.max_uncompressed_bytes} "
                             "bytes (zip bomb?)", file=file)
        if info.file_size > _RATIO_MIN_BYTES:
            ratio = info.file_size / max(info.compress_size, 1)
            if ratio > limits.max_ratio:
                raise ModelError(
                    f"archive member '{name}' expands {ratio:.0f}x ({info.compress_size} -> "
                    f"{info.file_size} bytes), over the {limits.max_ratio:g}x limit "
                    "(zip bomb?)", file=file)
    return infos


def _check_zipped_h5(zf: zipfile.ZipFile, name: str, file: str, limits: ScanLimits) -> None:
    """HDF5 reads seek back and forth: fine on a stored member, quadratic on a deflated
    one, so a compressed member is first copied (its declared size is already bounded)."""
    info = zf.getinfo(name)
    with zf.open(info) as member:
        if info.compress_type == zipfile.ZIP_STORED:
            _check_h5_structure(member, file, limits)
            return
        with tempfile.TemporaryFile() as copy:
            shutil.copyfileobj(member, copy, 1 * MIB)
            copy.seek(0)
            _check_h5_structure(copy, file, limits)


def _check_member_name(name: str, file: str) -> None:
    parts = re.split(r"[/\\]", name)
    if (name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name) or ".." in parts
            or "\x00" in name):
        raise ModelError(f"archive member '{name}' has an absolute or parent-directory "
                         "path (path traversal)", file=file)


def _read_member(zf: zipfile.ZipFile, name: str, max_bytes: int, file: str) -> bytes:
    info = zf.getinfo(name)
    if info.file_size > max_bytes:
        raise ModelError(f"{name} is {info.file_size} bytes, over the {max_bytes}-byte limit",
                         file=file, field=name)
    try:
        with zf.open(info) as f:
            data = f.read(max_bytes + 1)
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, NotImplementedError) as e:
        raise ModelError(f"cannot read {name} from the archive: {e}", file=file,
                         field=name) from None
    if len(data) > max_bytes:
        raise ModelError(f"{name} is over the {max_bytes}-byte limit", file=file, field=name)
    return data


def _read_metadata(zf: zipfile.ZipFile, file: str, names: set[str]) -> list[str]:
    if "metadata.json" not in names:
        return []
    meta = _parse_json(_read_member(zf, "metadata.json", _METADATA_MAX_BYTES, file),
                       file, "metadata.json")
    if isinstance(meta, dict) and isinstance(meta.get("keras_version"), str):
        return [f"saved by Keras {meta['keras_version']}"]
    return []


def _parse_json(data: bytes | str, file: str, where: str) -> Any:
    try:
        text = data.decode("utf-8") if isinstance(data, bytes) else data
        return json.loads(text)
    except (UnicodeDecodeError, ValueError) as e:
        raise ModelError(f"{where} is not valid JSON: {e}", file=file, field=where) from None
    except RecursionError:
        raise ModelError(f"{where} is nested too deeply to parse", file=file,
                         field=where) from None


# --------------------------------------------------------------------------- .h5

def _open_h5(source: Any, file: str) -> Any:
    """h5py.File read-only; a file HDF5 cannot open is a ModelError naming it."""
    import h5py

    try:
        return h5py.File(source, "r")
    except OSError as e:
        raise ModelError(f"HDF5 file cannot be opened: {e}", file=file) from None


def _scan_h5(path: Path, size: int, trust: bool, limits: ScanLimits) -> ScanResult:
    file = str(path)
    with _open_h5(path, file) as f:
        _check_h5_tree(f, file, limits)
        if "model_config" not in f.attrs:
            hint = ("this looks like model.save_weights() output; save the whole model with "
                    "model.save('model.h5') or model.save('model.keras')")
            raise ModelError("no model_config attribute: weights-only file", file=file,
                             field="model_config", hint=hint)
        config = _parse_json(_read_h5_attr(f, "model_config", file, limits), file,
                             "model_config")
        walk = _walk_config(config, file=file, where="model_config", trust=trust,
                            limits=limits)
        notes = list(walk.notes)
        if "training_config" in f.attrs:
            training = _parse_json(_read_h5_attr(f, "training_config", file, limits), file,
                                   "training_config")
            tw = _walk_config(training, file=file, where="training_config", trust=trust,
                              limits=limits, root_is_model=False)
            notes += tw.notes
        version = f.attrs.get("keras_version")
        if version is not None:
            notes.insert(0, f"saved by Keras {_as_text(version)}")
    return ScanResult("h5", size, walk.classes(), walk.n_layers, tuple(notes))


def _read_h5_attr(f: Any, name: str, file: str, limits: ScanLimits) -> str:
    """Read a string attribute within max_config_bytes.

    The storage size is exact for fixed-length strings; a variable-length string (what
    h5py and Keras write) lives in the file's heap, so its length is only known after
    reading, which max_file_bytes bounds."""
    too_big = ModelError(f"attribute {name} is over the {limits.max_config_bytes}-byte limit",
                         file=file, field=name)
    if f.attrs.get_id(name).get_storage_size() > limits.max_config_bytes:
        raise too_big
    value = f.attrs[name]
    if not isinstance(value, (str, bytes)):
        raise ModelError(f"attribute {name} is not a string", file=file, field=name)
    if len(value) > limits.max_config_bytes:
        raise too_big
    return _as_text(value)


def _as_text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _check_h5_structure(source: Any, file: str, limits: ScanLimits) -> None:
    """Open an HDF5 file object (e.g. a zip member) and check its links and storage."""
    head = source.read(8)
    if head != HDF5_SIGNATURE:
        raise ModelError("is not an HDF5 file", file=file)
    source.seek(0)
    with _open_h5(source, file) as f:
        _check_h5_tree(f, file, limits)


def _check_h5_tree(root: Any, file: str, limits: ScanLimits) -> None:
    """Visit every link without following any but hard links.

    h5py's visititems() silently skips soft and external links, so walk by hand and
    look at each link before resolving it.
    """
    import h5py

    seen = {root.id}
    stack: list[tuple[Any, int]] = [(root, 0)]
    visited = 0
    while stack:
        group, depth = stack.pop()
        if depth > limits.max_depth:
            raise ModelError(f"HDF5 groups nested deeper than {limits.max_depth}", file=file,
                             field=group.name)
        for name in group:
            visited += 1
            if visited > limits.max_objects:
                raise ModelError(f"HDF5 file has more than {limits.max_objects} objects",
                                 file=file)
            where = f"{group.name.rstrip('/')}/{name}"
            link = group.get(name, getlink=True)
            if isinstance(link, h5py.ExternalLink):
                raise ModelError(
                    f"HDF5 external link at {where} points to '{link.filename}:{link.path}'; "
                    "loading would open another file", file=file, field=where)
            if isinstance(link, h5py.SoftLink):
                raise ModelError(f"HDF5 soft link at {where} -> '{link.path}' is not allowed",
                                 file=file, field=where)
            if not isinstance(link, h5py.HardLink):
                raise ModelError(f"HDF5 link of unknown type at {where}", file=file,
                                 field=where)
            obj = group.get(name)
            if isinstance(obj, h5py.Dataset):
                _check_h5_dataset(obj, where, file)
            elif isinstance(obj, h5py.Group) and obj.id not in seen:
                seen.add(obj.id)
                stack.append((obj, depth + 1))


def _check_h5_dataset(dset: Any, where: str, file: str) -> None:
    if dset.external:
        targets = ", ".join(str(e[0]) for e in dset.external)
        raise ModelError(f"HDF5 dataset {where} stores its data in external file(s) "
                         f"{targets}", file=file, field=where)
    if dset.is_virtual:
        raise ModelError(f"HDF5 dataset {where} is a virtual dataset (maps other files)",
                         file=file, field=where)


# --------------------------------------------------------------------------- SavedModel

def _scan_savedmodel(path: Path, trust: bool, limits: ScanLimits) -> ScanResult:
    file = str(path)
    if not (path / "saved_model.pb").is_file():
        raise ModelError("directory is not a SavedModel (no saved_model.pb)", file=file,
                         hint="pass a .keras, .h5 or .tflite file, or a SavedModel directory")
    if not trust:
        raise ModelError(
            "a SavedModel is a TensorFlow program; set trust_model_code in the base "
            "branch's config to load it", file=file,
            hint="or export the model as .keras, .h5 or .tflite")
    total = _dir_size(path, limits, file)
    return ScanResult("savedmodel", total, (), 0,
                      ("SavedModel not inspected: loaded because trust_model_code is set",))


def _dir_size(path: Path, limits: ScanLimits, file: str) -> int:
    total = 0
    for dirpath, _dirs, files in os.walk(path):   # does not follow symlinked directories
        for name in files:
            st = os.lstat(os.path.join(dirpath, name))
            total += st.st_size if stat.S_ISREG(st.st_mode) else 0
            if total > limits.max_file_bytes:
                raise ModelError(f"SavedModel is over the {limits.max_file_bytes}-byte limit",
                                 file=file)
    return total


# --------------------------------------------------------------------------- .tflite

# Field slots of the tflite schema's root `Model` table.
_TFL_VECTOR_FIELDS = {1: "operator_codes", 2: "subgraphs", 4: "buffers", 6: "metadata",
                      7: "signature_defs"}


def _scan_tflite(path: Path, size: int, _trust: bool, limits: ScanLimits) -> ScanResult:
    file = str(path)
    if size < 32:
        raise ModelError(f"file is only {size} bytes: too small to be a TFLite model "
                         "(truncated?)", file=file)
    with path.open("rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as buf:
        fb = _Flatbuffer(buf, size, file)
        model = fb.root_table()
        version = fb.scalar(model, 0, "<I", 0)
        counts = {name: fb.vector_len(model, slot) for slot, name in _TFL_VECTOR_FIELDS.items()}
        if fb.field_pos(model, 3):
            fb.string_len(model, 3)   # description
        if counts["subgraphs"] == 0:
            raise ModelError("TFLite model has no subgraphs", file=file)
        if sum(counts.values()) > limits.max_objects:
            raise ModelError(f"TFLite model declares {sum(counts.values())} top-level tables, "
                             f"over the limit of {limits.max_objects}", file=file)
        for slot in _TFL_VECTOR_FIELDS:
            for i in range(counts[_TFL_VECTOR_FIELDS[slot]]):
                table = fb.vector_table(model, slot, i)
                if slot == 4:
                    _check_tflite_buffer(fb, table, i, size)
    notes = (f"tflite schema version {version}, {counts['subgraphs']} subgraph(s), "
             f"{counts['operator_codes']} operator code(s), {counts['buffers']} buffer(s)",)
    return ScanResult("tflite", size, (), 0, notes)


def _check_tflite_buffer(fb: _Flatbuffer, buffer: int, index: int, size: int) -> None:
    fb.vector_len(buffer, 0, elem_size=1)   # inline data
    offset = fb.scalar(buffer, 1, "<Q", 0)  # offset > 1: data stored after the flatbuffer
    length = fb.scalar(buffer, 2, "<Q", 0)
    if offset > 1 and offset + length > size:
        fb.fail(f"buffer {index} lies past the end of the file")


class _Flatbuffer:
    """Bounds-checked reads of flatbuffer tables; any overrun means a truncated file."""

    def __init__(self, buf: Any, size: int, file: str):
        self.buf, self.size, self.file = buf, size, file

    def fail(self, what: str) -> None:
        raise ModelError(f"TFLite flatbuffer is malformed or truncated: {what}",
                         file=self.file)

    def _read(self, fmt: str, pos: int) -> int:
        n = struct.calcsize(fmt)
        if pos < 0 or pos + n > self.size:
            self.fail(f"offset {pos} is outside the {self.size}-byte file")
        return struct.unpack_from(fmt, self.buf, pos)[0]

    def root_table(self) -> int:
        return self._table_at(self._read("<I", 0))

    def _table_at(self, pos: int) -> int:
        vtable = pos - self._read("<i", pos)
        vt_len = self._read("<H", vtable)
        obj_len = self._read("<H", vtable + 2)
        if vt_len < 4 or vt_len % 2 or vtable + vt_len > self.size or pos + obj_len > self.size:
            self.fail(f"table at offset {pos} has an invalid vtable")
        return pos

    def field_pos(self, table: int, slot: int) -> int:
        vtable = table - self._read("<i", table)
        vt_len = self._read("<H", vtable)
        entry = 4 + 2 * slot
        if entry >= vt_len:
            return 0
        off = self._read("<H", vtable + entry)
        return table + off if off else 0

    def scalar(self, table: int, slot: int, fmt: str, default: int) -> int:
        pos = self.field_pos(table, slot)
        return self._read(fmt, pos) if pos else default

    def _vector(self, table: int, slot: int) -> tuple[int, int]:
        pos = self.field_pos(table, slot)
        if not pos:
            return 0, 0
        vec = pos + self._read("<I", pos)
        return vec, self._read("<I", vec)

    def vector_len(self, table: int, slot: int, elem_size: int = 4) -> int:
        vec, n = self._vector(table, slot)
        if vec and vec + 4 + n * elem_size > self.size:
            self.fail(f"vector at offset {vec} ({n} elements) runs past the end of the file")
        return n

    def string_len(self, table: int, slot: int) -> int:
        vec, n = self._vector(table, slot)
        if vec and vec + 4 + n + 1 > self.size:
            self.fail(f"string at offset {vec} runs past the end of the file")
        return n

    def vector_table(self, table: int, slot: int, index: int) -> int:
        vec, _ = self._vector(table, slot)
        elem = vec + 4 + 4 * index
        return self._table_at(elem + self._read("<I", elem))


# --------------------------------------------------------------------------- config walk

@dataclass
class _Walk:
    file: str
    where: str               # "config.json", "model_config", ...
    trust: bool
    limits: ScanLimits
    layer_classes: set[str] = field(default_factory=set)
    n_layers: int = 0
    notes: list[str] = field(default_factory=list)

    def classes(self) -> tuple[str, ...]:
        return tuple(sorted(self.layer_classes))

    def refuse(self, message: str, hint: str | None = None) -> None:
        raise ModelError(message, file=self.file, field=self.where, hint=hint)


def _walk_config(config: Any, *, file: str, where: str, trust: bool, limits: ScanLimits,
                 root_is_model: bool = True) -> _Walk:
    walk = _Walk(file, where, trust, limits)
    if root_is_model:
        if not isinstance(config, dict) or not isinstance(config.get("class_name"), str):
            walk.refuse(f"{where} does not describe a Keras object (no class_name at the top)")
        walk.layer_classes.add(_strip_package(config["class_name"]))
    _visit(config, "", 0, None, walk)
    return walk


def _visit(node: Any, path: str, depth: int, parent_key: str | None, walk: _Walk) -> None:
    if depth > walk.limits.max_depth:
        walk.refuse(f"config nests deeper than {walk.limits.max_depth} levels at {path}")
    if isinstance(node, dict):
        if "class_name" in node:
            _check_object(node, path, walk)
            if parent_key in LAYER_KEYS:
                walk.n_layers += 1
                walk.layer_classes.add(_strip_package(node["class_name"]))
        if not walk.trust:
            _check_code_keys(node, path, walk)
        for key, value in node.items():
            _visit(value, f"{path}.{key}" if path else str(key), depth + 1, key, walk)
    elif isinstance(node, list):
        for i, value in enumerate(node):
            _visit(value, f"{path}[{i}]", depth + 1, parent_key, walk)


def _describe(obj: dict, path: str) -> str:
    config = obj.get("config")
    name = obj.get("name") or (config.get("name") if isinstance(config, dict) else None)
    what = f"layer '{_clip(name)}'" if isinstance(name, str) else "object"
    return f"{what} (class {_clip(obj.get('class_name'))}) at {path or 'the top level'}"


def _clip(value: object, limit: int = 100) -> str:
    """Keep attacker-controlled strings from flooding error messages."""
    text = str(value)
    return text if len(text) <= limit else text[:limit] + "..."


def _check_object(obj: dict, path: str, walk: _Walk) -> None:
    cls = obj["class_name"]
    if not isinstance(cls, str):
        walk.refuse(f"class_name at {path or 'the top level'} is not a string")
    if cls in _DATA_MARKERS:
        return
    if cls in ("__typespec__", "TypeSpec"):
        return _check_typespec(obj, path, walk)
    if cls == "__lambda__":
        return _code_found(walk, f"serialized Python lambda at {path}",
                           "it is Python bytecode that runs when loaded")
    if cls == "function":
        return _check_function_ref(obj, path, walk)

    name = _strip_package(cls)
    if not _IDENTIFIER.match(name):
        walk.refuse(f"{_describe(obj, path)} is not allowed: '{_clip(cls)}' is not a Keras class "
                    "name (dotted or non-identifier names can point at arbitrary Python)")
    if name in CODE_LAYERS:
        why = CODE_LAYERS[name]
        config = obj.get("config")
        if isinstance(config, dict) and isinstance(config.get("function"), str):
            why += f"; this one calls tf.{_clip(config['function'])}"
        _code_found(walk, _describe(obj, path), why)
    elif name in FOREIGN_LAYERS:
        walk.refuse(f"{_describe(obj, path)} is not allowed: {FOREIGN_LAYERS[name]}")
    elif name not in ALLOWED_CLASSES:
        walk.refuse(f"{_describe(obj, path)} is not allowed: '{_clip(cls)}' is not a built-in "
                    "Keras, tf_keras or tensorflow_model_optimization class",
                    hint="custom classes need Python code the gate does not load; "
                         "rebuild the model from built-in layers")
    _check_module(obj, path, walk)
    _check_registered_name(obj, path, walk)


def _strip_package(cls: str) -> str:
    """'Custom>Adam' (tf_keras registered-name style) -> 'Adam'; other packages kept."""
    package, sep, name = cls.partition(">")
    return name if sep and package in _REGISTERED_PACKAGES else cls


def _module_allowed(module: str) -> bool:
    return (module in ALLOWED_EXACT_MODULES
            or any(module == root or module.startswith(root + ".")
                   for root in ALLOWED_MODULE_ROOTS))


def _check_module(obj: dict, path: str, walk: _Walk) -> None:
    module = obj.get("module")
    if module is None:
        return
    if not isinstance(module, str) or not _module_allowed(module):
        walk.refuse(f"{_describe(obj, path)} is not allowed: module '{_clip(module)}' is outside "
                    f"{', '.join(ALLOWED_MODULE_ROOTS)} (Keras would import it)")


def _check_registered_name(obj: dict, path: str, walk: _Walk) -> None:
    registered = obj.get("registered_name")
    if registered is None:
        return
    name = _strip_package(registered) if isinstance(registered, str) else None
    if name != _strip_package(obj["class_name"]) and name not in ALLOWED_CLASSES:
        walk.refuse(f"{_describe(obj, path)} is not allowed: registered_name "
                    f"'{_clip(registered)}' is not a built-in Keras, tf_keras or "
                    "tensorflow_model_optimization class")


def _check_function_ref(obj: dict, path: str, walk: _Walk) -> None:
    fn = obj.get("config")
    module = obj.get("module")
    registered = obj.get("registered_name")
    where = f"function reference '{_clip(fn)}' at {path}"
    if module is not None and module != "builtins" and not (
            isinstance(module, str) and _module_allowed(module)):
        walk.refuse(f"{where} is not allowed: module '{_clip(module)}' is outside "
                    f"{', '.join(ALLOWED_MODULE_ROOTS)} (Keras would import it)")
    if not isinstance(fn, str) or fn not in BUILTIN_FUNCTIONS:
        walk.refuse(f"{where} is not allowed: only built-in Keras activations, losses and "
                    "metrics may be referenced",
                    hint="custom functions need Python code the gate does not load")
    if registered not in (None, "function", fn):
        walk.refuse(f"{where} is not allowed: registered_name '{_clip(registered)}' does not "
                    "match")


def _check_typespec(obj: dict, path: str, walk: _Walk) -> None:
    if obj["class_name"] == "TypeSpec":
        spec = str(obj.get("type_spec", "")).removeprefix("tf.")
        ok = spec in _TYPE_SPECS
    else:
        module = obj.get("module")
        spec = str(obj.get("spec_name"))
        ok = (spec in _TYPE_SPECS and isinstance(module, str)
              and module.startswith("tensorflow.python."))
    if not ok:
        walk.refuse(f"type spec '{_clip(spec)}' at {path} is not allowed")


def _check_code_keys(node: dict, path: str, walk: _Walk) -> None:
    for key in CODE_KEYS.intersection(node):
        walk.refuse(f"key '{key}' at {path + '.' if path else ''}{key} references Python "
                    "code, which the gate does not load", hint=TRUST_HINT)


def _code_found(walk: _Walk, what: str, why: str) -> None:
    if walk.trust:
        walk.notes.append(f"{what} carries code; allowed because trust_model_code is set")
        return
    walk.refuse(f"{what} is not allowed: {why}", hint=TRUST_HINT)
