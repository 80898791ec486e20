"""SavedModel directories: a TensorFlow program, so refused unless trust_model_code."""
from __future__ import annotations

import os
import stat
from pathlib import Path

from gate.errors import ModelError
from gate.formats import EXPECTED, MODEL_FILE_FORMATS
from gate.scan.limits import ScanLimits, ScanResult


def scan_savedmodel(path: Path, trust: bool, limits: ScanLimits) -> ScanResult:
    file = str(path)
    if not (path / "saved_model.pb").is_file():
        raise ModelError("directory is not a SavedModel (no saved_model.pb)", file=file,
                         hint=f"pass {EXPECTED}")
    if not trust:
        raise ModelError(
            "a SavedModel is a TensorFlow program; set trust_model_code in the base "
            "branch's config to load it", file=file,
            hint=f"or export the model to a file ({', '.join(MODEL_FILE_FORMATS)})")
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


