"""`.npz` files: each array read without pickle; an uncompressed member (np.savez) is
memory-mapped where it sits in the zip, a compressed one (np.savez_compressed) is read
whole, one array at a time."""
from __future__ import annotations

import hashlib
import struct
import zipfile
from pathlib import Path

import numpy as np

from gate.config.sources import SourceRef
from gate.errors import DataError

LOCAL_HEADER = struct.Struct("<4s2B4HL2L2H")      # zip local file header (30 bytes)


def check(ref: SourceRef, trusted: bool) -> None:
    if not zipfile.is_zipfile(ref.path):
        raise DataError("not a readable .npz file (expected a zip archive of arrays, as np.savez writes)",
                        file=str(ref.path), field=ref.where)


def digest(ref: SourceRef, trusted: bool) -> str:
    """The file's sha256 (as reports have always shown it), with the sample when one is set."""
    with open(ref.path, "rb") as f:
        sha = hashlib.file_digest(f, "sha256").hexdigest()
    most, seed = ref.option("max_examples"), ref.option("seed")
    return sha if most is None else f"{sha}:{most}:{seed}"


def read(path: Path, where: str) -> dict[str, np.ndarray]:
    """Every array of the .npz by key: memmaps for stored members, arrays for compressed ones."""
    file = str(path)
    if not zipfile.is_zipfile(path):
        raise DataError("not a readable .npz file (expected a zip archive of arrays, as np.savez writes)",
                        file=file, field=where)
    arrays: dict[str, np.ndarray] = {}
    try:
        with zipfile.ZipFile(path) as zf, np.load(path, allow_pickle=False) as npz:
            for key in npz.files:
                mapped = _memmap_member(path, zf, key + ".npy")
                arrays[key] = mapped if mapped is not None else npz[key]
    except (zipfile.BadZipFile, EOFError, OSError, KeyError) as exc:
        raise DataError(f"not a readable .npz file ({type(exc).__name__}: {exc})", file=file, field=where) from None
    except ValueError as exc:  # object arrays need pickle; refused
        raise DataError(f"cannot read arrays without pickle: {exc}", file=file, field=where,
                        hint="store numeric arrays, not Python objects") from None
    return arrays


def _memmap_member(path: Path, zf: zipfile.ZipFile, name: str) -> np.ndarray | None:
    """The member as a read-only memmap into the zip file, or None (compressed, or a layout
    np.memmap cannot express)."""
    try:
        info = zf.getinfo(name)
    except KeyError:
        return None
    if info.compress_type != zipfile.ZIP_STORED or info.file_size == 0:
        return None
    with open(path, "rb") as f:
        f.seek(info.header_offset)
        header = f.read(LOCAL_HEADER.size)
        if len(header) != LOCAL_HEADER.size or header[:4] != b"PK\x03\x04":
            return None
        name_len, extra_len = struct.unpack("<HH", header[26:30])
        f.seek(info.header_offset + LOCAL_HEADER.size + name_len + extra_len)
        try:
            major, _ = np.lib.format.read_magic(f)
            read_header = np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
            shape, fortran, dtype = read_header(f)
        except ValueError:
            return None
        offset = f.tell()
    if dtype.hasobject:
        raise ValueError(f"array {name[:-4]!r} holds Python objects")
    if int(np.prod(shape, dtype=np.int64)) == 0:
        return None
    return np.memmap(path, dtype=dtype, mode="r", shape=shape, order="F" if fortran else "C", offset=offset)


def load(ref: SourceRef, facts, trusted: bool) -> dict[str, np.ndarray]:
    return read(ref.path, ref.where)
