"""TFRecord files of tf.train.Example records, read in pure Python (framing and the
Example protobuf), so a missing feature is found before TF is imported. A bytes feature
holding an encoded image is decoded (TF) like a folder image; int64/float lists are
reshaped to the model input. GZIP-compressed files are read too."""
from __future__ import annotations

import gzip
import struct
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from gate.config.sources import SourceRef
from gate.errors import DataError
from gate.measure.sources.base import Spool, affine, digest_files, sample_indices
from gate.measure.sources.imagefiles import Decoder, image_format, image_size, input_geometry

GZIP_MAGIC = b"\x1f\x8b"


def _open(path: Path, compression: str):
    if compression == "gzip":
        return gzip.open(path, "rb")
    if compression == "auto":
        with open(path, "rb") as f:
            if f.read(2) == GZIP_MAGIC:
                return gzip.open(path, "rb")
    return open(path, "rb")


def records(path: Path, compression: str, field: str) -> Iterator[bytes]:
    """Each record's bytes (length, masked crc, data, masked crc; the crcs are not checked)."""
    try:
        with _open(path, compression) as f:
            while True:
                head = f.read(12)
                if not head:
                    return
                if len(head) < 12:
                    raise DataError("truncated TFRecord (a record header is cut short)", file=str(path), field=field)
                (length,) = struct.unpack("<Q", head[:8])
                data = f.read(length)
                if len(data) < length or len(f.read(4)) < 4:
                    raise DataError("truncated TFRecord (a record is cut short)", file=str(path), field=field)
                yield data
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise DataError(f"not a readable TFRecord file ({type(exc).__name__}: {exc})", file=str(path),
                        field=field, hint="set compression: gzip or none if auto guessed wrong") from None


# -- the tf.train.Example protobuf, by hand (wire format) ---------------------------------------

def _varint(buf: bytes, i: int) -> tuple[int, int]:
    shift = result = 0
    while True:
        b = buf[i]
        i += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result, i
        shift += 7


def _fields(buf: bytes) -> Iterator[tuple[int, int, object]]:
    i, n = 0, len(buf)
    while i < n:
        key, i = _varint(buf, i)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, i = _varint(buf, i)
        elif wire == 1:
            value, i = buf[i:i + 8], i + 8
        elif wire == 2:
            length, i = _varint(buf, i)
            value, i = buf[i:i + length], i + length
        elif wire == 5:
            value, i = buf[i:i + 4], i + 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        yield number, wire, value


def parse_example(buf: bytes) -> dict[str, tuple[str, object]]:
    """{feature name: (kind, values)}: kind bytes (list of bytes), float or int64 (numpy arrays)."""
    out: dict[str, tuple[str, object]] = {}
    for num, _, features in _fields(buf):
        if num != 1:
            continue
        for fnum, _, entry in _fields(features):
            if fnum != 1:
                continue
            name, value = "", b""
            for enum, _, v in _fields(entry):
                if enum == 1:
                    name = v.decode("utf-8", "replace")
                elif enum == 2:
                    value = v
            out[name] = _feature(value)
    return out


def _feature(buf: bytes) -> tuple[str, object]:
    for num, _, lst in _fields(buf):
        if num == 1:
            return "bytes", [v for n, _, v in _fields(lst) if n == 1]
        if num == 2:
            parts = [v for n, _, v in _fields(lst) if n == 1]
            return "float", np.frombuffer(b"".join(parts), dtype="<f4")
        if num == 3:
            values: list[int] = []
            for n, wire, v in _fields(lst):
                if n != 1:
                    continue
                if wire == 2:
                    i = 0
                    while i < len(v):
                        x, i = _varint(v, i)
                        values.append(x)
                else:
                    values.append(v)
            return "int64", np.array(values, dtype=np.uint64).astype(np.int64)
    return "float", np.zeros(0, np.float32)


# -- the source -----------------------------------------------------------------------------

def _wanted(ref: SourceRef, facts=None) -> dict[str, str]:
    """{array key: feature}: x (one input) or input names; y or y.<output>."""
    x, y = ref.option("x"), ref.option("y")
    keys = {"x": x} if isinstance(x, str) else dict(x)
    if isinstance(y, str):
        keys["y"] = y
    elif isinstance(y, dict):
        keys.update({f"y.{k}": v for k, v in y.items()})
    return keys


def _field_of(ref: SourceRef, key: str) -> str:
    if key in ("x", "y"):
        return f"{ref.where}.{key}"
    return f"{ref.where}.{'y' if key.startswith('y.') else 'x'}.{key.removeprefix('y.')}"


def _example(ref: SourceRef, path: Path, index: int, data: bytes) -> dict:
    try:
        return parse_example(data)
    except (ValueError, IndexError, UnicodeDecodeError) as exc:
        raise DataError(f"record {index} is not a tf.train.Example ({exc})", file=str(path), field=ref.field) from None


def _require(ref: SourceRef, path: Path, index: int, example: dict) -> None:
    for key, feature in _wanted(ref).items():
        if feature not in example:
            raise DataError(f"feature '{feature}' is not in record {index}; its features: {sorted(example)}",
                            file=str(path), field=_field_of(ref, key),
                            hint="name a feature the records hold (tf.train.Example keys)")


def check(ref: SourceRef, trusted: bool) -> None:
    """Before TF: every file readable, the first record of each holds the named features."""
    compression = ref.option("compression")
    for path in ref.files:
        for index, data in enumerate(records(path, compression, ref.field)):
            _require(ref, path, index, _example(ref, path, index, data))
            break
        else:
            raise DataError("the file holds no records", file=str(path), field=ref.field)


def digest(ref: SourceRef, trusted: bool) -> str:
    options = ref.spec.model_dump(mode="json", exclude={"tfrecord"})
    root = Path(*_common(ref.files))
    return digest_files(root, ref.files, options)


def _common(files: tuple[Path, ...]) -> tuple[str, ...]:
    parts = [p.parent.parts for p in files]
    common = []
    for items in zip(*parts):
        if len(set(items)) != 1:
            break
        common.append(items[0])
    return tuple(common)


def _all_records(ref: SourceRef) -> Iterator[tuple[Path, int, bytes]]:
    for path in ref.files:
        for index, data in enumerate(records(path, ref.option("compression"), ref.field)):
            yield path, index, data


def load(ref: SourceRef, facts, trusted: bool) -> dict[str, np.ndarray]:
    wanted = _wanted(ref)
    total = sum(1 for _ in _all_records(ref))
    pick = sample_indices(total, ref.option("max_examples"), ref.option("seed"))
    chosen = None if pick is None else set(int(i) for i in pick)
    specs = {t.name: t for t in facts.inputs}
    input_keys = [k for k in wanted if not k.startswith("y")]
    spool, decoders, targets = Spool(), {}, {k: [] for k in wanted if k.startswith("y")}
    scaled: set[str] = set()
    for n, (path, index, data) in enumerate(_all_records(ref)):
        if chosen is not None and n not in chosen:
            continue
        example = _example(ref, path, index, data)
        _require(ref, path, index, example)
        for key in input_keys:
            spec = specs.get(key) if key != "x" else (facts.inputs[0] if len(facts.inputs) == 1 else None)
            kind, values = example[wanted[key]]
            where = _field_of(ref, key)
            if kind == "bytes":
                if spec is None:
                    raise DataError(f"'{key}' names no input of the model (inputs: {sorted(specs)})",
                                    file=str(path), field=where)
                if key not in decoders:
                    decoders[key] = _decoder(ref, spec, where, str(path))
                blob = values[0] if values else b""
                if image_format(blob[:16]) is None:
                    raise DataError(f"record {index}: feature '{wanted[key]}' is a bytes feature but not an encoded "
                                    "PNG/JPEG/BMP/GIF image", file=str(path), field=where)
                from gate.measure.sources.images import decode_one

                spool.add(key, decode_one(decoders[key], blob, f"{path} (record {index})", where)[None])
                scaled.add(key)
            else:
                spool.add(key, _shaped(values, spec, ref, path, index, key, where)[None])
        for key in targets:
            kind, values = example[wanted[key]]
            if kind == "bytes":
                raise DataError(f"target feature '{wanted[key]}' is a bytes feature; expected int64 class ids or "
                                "float values", file=str(path), field=_field_of(ref, key))
            targets[key].append(values)
    arrays = spool.arrays()
    out: dict[str, np.ndarray] = {}
    for key in input_keys:
        a = arrays[key]
        out[key] = affine(a, ref.option("scale"), ref.option("offset")) if key in scaled else a
    for key, rows in targets.items():
        width = {len(r) for r in rows}
        if len(width) != 1:
            raise DataError(f"feature '{wanted[key]}' holds {sorted(width)} values in different records; expected the "
                            "same count in every record", file=str(ref.path), field=_field_of(ref, key))
        stacked = np.stack(rows)
        out[key] = stacked[:, 0] if stacked.shape[1] == 1 else stacked
    return out


def _decoder(ref: SourceRef, spec, where: str, file: str) -> Decoder:
    height, width, channels = input_geometry(spec, where, file)
    sizes = []
    for path, index, data in _all_records(ref):
        kind, values = parse_example(data).get(_wanted(ref)[_key_of(ref, where)], ("", []))
        sizes.append(image_size(values[0][:65536]) if kind == "bytes" and values else None)
    return Decoder(height, width, channels, sizes)


def _key_of(ref: SourceRef, where: str) -> str:
    for key in _wanted(ref):
        if _field_of(ref, key) == where:
            return key
    return "x"


def _shaped(values: np.ndarray, spec, ref: SourceRef, path: Path, index: int, key: str, where: str) -> np.ndarray:
    if spec is None:
        return np.asarray(values)
    shape = tuple(spec.shape[1:])
    dtype = np.dtype(spec.dtype) if spec.dtype in np.sctypeDict and not spec.quantized else np.dtype(np.float32)
    if np.issubdtype(dtype, np.floating):
        dtype = np.dtype(np.float32)
    if any(d is None for d in shape):
        return np.asarray(values, dtype=dtype)
    need = int(np.prod(shape, dtype=np.int64))
    if values.size != need:
        raise DataError(f"record {index}: feature '{_wanted(ref)[key]}' has {values.size} values, input "
                        f"'{spec.name}' takes {need} (shape {shape})", file=str(path), field=where)
    return np.asarray(values).reshape(shape).astype(dtype)

