"""The model formats the gate reads, in one table: a file's extension names its format;
a directory holding saved_model.pb is a SavedModel. Config validation, the scanner and
the loader all dispatch on this."""
from __future__ import annotations

from pathlib import Path

MODEL_FILE_FORMATS = {".keras": "keras", ".h5": "h5", ".hdf5": "h5", ".tflite": "tflite"}
SAVEDMODEL = "savedmodel"
SAVEDMODEL_MARKER = "saved_model.pb"
EXPECTED = "a .keras, .h5, .hdf5 or .tflite file, or a SavedModel directory"


def format_of(path: Path) -> str | None:
    """The format `path` is in by its name (a directory: SavedModel when it has
    saved_model.pb), or None."""
    if path.is_dir():
        return SAVEDMODEL if (path / SAVEDMODEL_MARKER).exists() else None
    return MODEL_FILE_FORMATS.get(path.suffix.lower())
