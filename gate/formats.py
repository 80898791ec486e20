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


# -- Git LFS pointers -------------------------------------------------------------------------
# A checkout without LFS (actions/checkout without `lfs: true`, a clone without git-lfs)
# leaves each LFS-tracked file as a small text pointer. Recognised by content, whatever the
# file's name, so a model, a data file or a policy says what happened instead of "not a zip".

LFS_POINTER_PREFIX = b"version https://git-lfs.github.com/spec/v1"
LFS_POINTER_MAX_BYTES = 1024       # pointers are ~130 bytes; real models and data are larger
LFS_MESSAGE = "Git LFS pointer: run `git lfs pull`, or `lfs: true` on actions/checkout"
LFS_HINT = ("the file holds a Git LFS pointer, not its content; in a workflow: "
            "`- uses: actions/checkout@v4` with `with: {lfs: true}`")


def is_lfs_pointer(path: Path) -> bool:
    """Whether the file at `path` is a Git LFS pointer (its first bytes say so)."""
    try:
        if not path.is_file() or path.stat().st_size > LFS_POINTER_MAX_BYTES:
            return False
        with path.open("rb") as f:
            return f.read(len(LFS_POINTER_PREFIX)) == LFS_POINTER_PREFIX
    except OSError:
        return False
