"""The entry point: regular file, known extension, sane size, content matching the
extension; then the format's own scanner."""
from __future__ import annotations

import stat
import struct
import zipfile
import zlib
from pathlib import Path

from gate.errors import ModelError
from gate.formats import EXPECTED, LFS_HINT, LFS_MESSAGE, MODEL_FILE_FORMATS, is_lfs_pointer
from gate.scan.formats import (
    CONTENT_NAMES,
    EXPECTED_CONTENT,
    HDF5_SIGNATURE,
    TFLITE_IDENTIFIER,
    ZIP_SIGNATURES,
)
from gate.scan.hdf5 import scan_h5
from gate.scan.keras_zip import scan_keras
from gate.scan.limits import ScanLimits, ScanResult
from gate.scan.savedmodel import scan_savedmodel
from gate.scan.tflite import scan_tflite

# What zipfile, zlib, h5py and mmap raise on damaged files. ModelError is none of these.
_CORRUPTION_ERRORS = (OSError, RuntimeError, ValueError, KeyError, EOFError, struct.error,
                      zipfile.BadZipFile, zlib.error)



def scan_model(path: str | Path, *, trust_model_code: bool = False,
               limits: ScanLimits = ScanLimits()) -> ScanResult:
    """Inspect `path` statically; return what was found or raise ModelError."""
    path = Path(path)
    if path.name == "saved_model.pb" and path.is_file():
        path = path.parent
    if not path.exists():
        raise ModelError("model file does not exist", file=str(path))
    if path.is_dir():
        return scan_savedmodel(path, trust_model_code, limits)

    fmt, size = _check_file(path, limits)
    scanner = {"keras": scan_keras, "h5": scan_h5, "tflite": scan_tflite}[fmt]
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
    if ext not in MODEL_FILE_FORMATS:
        raise ModelError(
            f"unknown model extension '{path.suffix}'", file=str(path),
            hint=f"expected {EXPECTED}")
    if st.st_size == 0:
        raise ModelError("file is empty (0 bytes)", file=str(path))
    if st.st_size > limits.max_file_bytes:
        raise ModelError(f"file is {st.st_size} bytes, over the {limits.max_file_bytes}-byte "
                         "limit", file=str(path))
    if is_lfs_pointer(path):
        raise ModelError(LFS_MESSAGE, file=str(path), field="model", hint=LFS_HINT)
    with path.open("rb") as f:
        head = f.read(8)
    expected = MODEL_FILE_FORMATS[ext]
    found = _sniff(head)
    if found != expected:
        what = (CONTENT_NAMES.get(found)
                or f"none of zip, HDF5 or TFLite (first bytes: {head.hex()})")
        raise ModelError(f"extension '{path.suffix}' says {expected} but the content is {what}",
                         file=str(path), hint=EXPECTED_CONTENT[expected])
    return expected, st.st_size


def _sniff(head: bytes) -> str | None:
    if head.startswith(HDF5_SIGNATURE):
        return "h5"
    if head[:4] in ZIP_SIGNATURES:
        return "keras"
    if len(head) >= 8 and head[4:8] == TFLITE_IDENTIFIER:
        return "tflite"
    return None


