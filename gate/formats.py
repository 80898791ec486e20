"""The model formats the gate reads, in one table: a file's extension names its format;
a directory holding saved_model.pb is a SavedModel. Config validation, the scanner and
the loader all dispatch on this, and every message that lists the formats says EXPECTED."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ModelFormat:
    name: str                      # as report.json's model.format says it
    extensions: tuple[str, ...]    # () : a directory
    content: str                   # what the file is, as the scanner recognises it
    expected_content: str          # how to tell, for an error's hint


FORMATS = (
    ModelFormat("keras", (".keras",), "a zip archive (a .keras file?)",
                "a .keras file is a zip archive written by model.save('x.keras')"),
    ModelFormat("h5", (".h5", ".hdf5"), "HDF5 (an .h5 file?)",
                "an .h5 file starts with the HDF5 signature \\x89HDF\\r\\n\\x1a\\n"),
    ModelFormat("tflite", (".tflite",), "a TFLite flatbuffer (a .tflite file?)",
                "a .tflite file has the identifier 'TFL3' at bytes 4..8"),
    ModelFormat("savedmodel", (), "a SavedModel directory", "a SavedModel directory holds saved_model.pb"),
)
BY_NAME = {f.name: f for f in FORMATS}
MODEL_FILE_FORMATS = {ext: f.name for f in FORMATS for ext in f.extensions}
SAVEDMODEL = "savedmodel"
SAVEDMODEL_MARKER = "saved_model.pb"
EXPECTED = f"a {', '.join(list(MODEL_FILE_FORMATS)[:-1])} or {list(MODEL_FILE_FORMATS)[-1]} file, or a SavedModel directory"


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
