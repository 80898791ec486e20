"""Where `data.train` / `data.eval` come from (docs/configuration.md, "Data sources"):
the typed mapping forms of gate.yml and their resolution to absolute paths (no TF, no numpy).

- a path: an `.npz` file, or a directory of class subfolders of images;
- `{npz: FILE}`, `{images: DIR, scale, offset, class_names}`,
  `{tfrecord: GLOB, x: FEATURE | {input: FEATURE}, y: FEATURE | {output: FEATURE}, scale, offset,
  compression}`, `{csv: FILE, y: COLUMN(S), x: [COLUMNS]}`, `{python: "FILE.py:FUNCTION"}`;
- every form takes `max_examples` (and `seed`: a seeded random sample instead of the first N).

Reading the examples is gate.measure.sources; this module only says what was asked for.
"""
from __future__ import annotations

import glob
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Annotated, Literal, Union

from pydantic import BeforeValidator, Discriminator, Field, Tag

from gate.config.strict import Strict

KINDS = ("npz", "images", "tfrecord", "csv", "python")


def _number(value: object) -> object:
    """1/255 (a YAML string) -> 0.00392...; numbers pass through."""
    if isinstance(value, str):
        try:
            return float(Fraction(value.strip().replace(" ", "")))
        except (ValueError, ZeroDivisionError):
            raise ValueError(f"not a number or a fraction like 1/255: {value!r}") from None
    if isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


Number = Annotated[float, BeforeValidator(_number)]
Names = Union[str, dict[str, str]]


class Sampled(Strict):
    max_examples: int | None = Field(None, ge=1, description="Read at most this many examples.")
    seed: int | None = Field(None, ge=0, description="With max_examples: a random sample drawn with this seed "
                                                      "(sorted, so the same files give the same sample) instead of "
                                                      "the first N.")


class Affine(Sampled):
    scale: Number = Field(1.0, description="Pixels become pixel * scale + offset (1/255 for [0, 1]).")
    offset: Number = Field(0.0, description="Added after scale (-1 with scale 1/127.5 for [-1, 1]).")


class NpzSource(Sampled):
    npz: str = Field(..., description=".npz with arrays x (or one per input name) and y (or y.<output>).")


class ImagesSource(Affine):
    images: str = Field(..., description="Directory of class subfolders of PNG/JPEG/BMP/GIF images.")
    class_names: list[str] | None = Field(None, min_length=1, description="Class order (default: sorted folder "
                                                                           "names, as Keras does).")


class TFRecordSource(Affine):
    tfrecord: str = Field(..., description="Glob of TFRecord files of tf.train.Example records.")
    x: Names = Field(..., description="The input feature (or {input name: feature} for several inputs).")
    y: Names | None = Field(None, description="The target feature (or {output name: feature}).")
    compression: Literal["auto", "gzip", "none"] = Field(
        "auto", description="auto: GZIP when the file starts with the gzip magic bytes.")


class CsvSource(Sampled):
    csv: str = Field(..., description="CSV file with a header row.")
    y: str | list[str] | None = Field(None, description="Target column(s); none: no targets.")
    x: list[str] | None = Field(None, min_length=1, description="Input columns (default: every other column).")


class PythonSource(Sampled):
    python: str = Field(..., pattern=r"^[^:]+\.py:[A-Za-z_][A-Za-z0-9_]*$",
                        description="FILE.py:FUNCTION returning a tf.data.Dataset of (x, y) or x, or numpy "
                                    "arrays. Runs code: needs trust_model_code (from the base branch).")


def _kind(value: object) -> str | None:
    if isinstance(value, str):
        return "path"
    if isinstance(value, Strict):
        return next((f"{k} source" for k in KINDS if hasattr(value, k)), None)
    if isinstance(value, dict):
        found = [k for k in KINDS if k in value]
        return f"{found[0]} source" if len(found) == 1 else None
    return None


SourceSpec = Annotated[
    Union[Annotated[str, Tag("path")], Annotated[NpzSource, Tag("npz source")], Annotated[ImagesSource, Tag("images source")],
          Annotated[TFRecordSource, Tag("tfrecord source")], Annotated[CsvSource, Tag("csv source")],
          Annotated[PythonSource, Tag("python source")]],
    Discriminator(_kind, custom_error_type="data_source",
                  custom_error_message="expected a path, or a mapping with exactly one of the keys "
                                       "npz, images, tfrecord, csv, python")]

# One mapping form, as SourceRef keeps it: typed by its kind, so a GateConfig sent to the
# worker in its Job (gate.run.protocol) comes back with the same class, not a bare Strict.
SourceForm = Annotated[
    Union[Annotated[NpzSource, Tag("npz source")], Annotated[ImagesSource, Tag("images source")],
          Annotated[TFRecordSource, Tag("tfrecord source")], Annotated[CsvSource, Tag("csv source")],
          Annotated[PythonSource, Tag("python source")]],
    Discriminator(_kind)]


@dataclass(frozen=True)
class SourceRef:
    """One split's source, resolved: its kind, the spec as written, the absolute paths."""

    kind: str                  # one of KINDS
    spec: SourceForm           # the typed mapping (a bare path becomes {npz: ...} or {images: ...})
    path: Path                 # the file, directory, loader file, or the glob's first match
    files: tuple[Path, ...]    # tfrecord: every file the glob matches, sorted; else (path,)
    where: str                 # "data.eval"
    function: str | None = None   # python: the loader function's name

    @property
    def field(self) -> str:
        return f"{self.where}.{self.kind}"

    def option(self, name: str, default=None):
        return getattr(self.spec, name, default)

    def describe(self) -> dict:
        return {"kind": self.kind, **self.spec.model_dump(mode="json", exclude_none=True)}


def as_spec(value: str | Strict) -> Strict:
    """A bare path: a directory is images in class folders, anything else an .npz."""
    if not isinstance(value, str):
        return value
    return ImagesSource(images=value) if value.endswith("/") else NpzSource(npz=value)


def resolve(value: str | Strict, root: Path, where: str) -> tuple[SourceRef | None, str | None]:
    """The SourceRef, or (None, why) when a path does not exist. Paths are relative to root."""
    spec = as_spec(value)
    kind = next(k for k in KINDS if hasattr(spec, k))
    raw = getattr(spec, kind)
    if kind == "python":
        raw, function = raw.rsplit(":", 1)
    else:
        function = None
    if kind == "tfrecord":
        pattern = str(root / raw)
        files = tuple(sorted(Path(p).resolve() for p in glob.glob(pattern, recursive=True) if Path(p).is_file()))
        if not files:
            return None, f"no file matches {raw!r}"
        return SourceRef(kind, spec, files[0], files, where), None
    path = (root / raw).resolve()
    if not path.exists():
        return None, f"not found: {path}"
    if isinstance(value, str) and path.is_dir() and kind == "npz":
        spec, kind = ImagesSource(images=value), "images"
    if kind == "images" and not path.is_dir():
        return None, f"expected a directory of class subfolders, found a file: {path}"
    if kind != "images" and path.is_dir():
        return None, f"is a directory, expected a file: {path}"
    return SourceRef(kind, spec, path, (path,), where, function), None
