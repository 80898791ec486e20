"""A CSV file with a header row, for tabular models: `y` names the target column(s), `x`
the input columns (default: every other column), in the order the model's input takes
them. Read in memory (a table of numbers is small next to the model)."""
from __future__ import annotations

import csv

import numpy as np

from gate.config.sources import SourceRef
from gate.errors import DataError
from gate.measure.sources.base import digest_file, sample_indices


def _targets(ref: SourceRef) -> list[str]:
    y = ref.option("y")
    return [] if y is None else [y] if isinstance(y, str) else list(y)


def header(ref: SourceRef) -> tuple[list[str], list[str], list[str]]:
    """(header, x columns, y columns); a column that is not there names the field."""
    try:
        with open(ref.path, newline="", encoding="utf-8-sig") as f:
            row = next(csv.reader(f), None)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"not a readable CSV file ({type(exc).__name__}: {exc})", file=str(ref.path),
                        field=ref.field) from None
    if not row:
        raise DataError("the CSV file is empty (expected a header row naming the columns)", file=str(ref.path),
                        field=ref.field)
    names = [c.strip() for c in row]
    ys = _targets(ref)
    xs = list(ref.option("x") or [c for c in names if c not in ys])
    for what, wanted in (("y", ys), ("x", xs)):
        missing = [c for c in wanted if c not in names]
        if missing:
            raise DataError(f"column {missing[0]!r} is not in the CSV header; its columns: {names}",
                            file=str(ref.path), field=f"{ref.where}.{what}", hint="name columns of the header row")
    if not xs:
        raise DataError("no input columns: every column is a target", file=str(ref.path), field=f"{ref.where}.x")
    return names, xs, ys


def check(ref: SourceRef, trusted: bool) -> None:
    header(ref)


def digest(ref: SourceRef, trusted: bool) -> str:
    return digest_file(ref.path, ref.spec.model_dump(mode="json", exclude={"csv"}))


def load(ref: SourceRef, facts, trusted: bool) -> dict[str, np.ndarray]:
    names, xs, ys = header(ref)
    cols = {c: names.index(c) for c in xs + ys}
    rows: list[list[float]] = []
    with open(ref.path, newline="", encoding="utf-8-sig") as f:
        reader = csv.reader(f)
        next(reader)
        for line, row in enumerate(reader, start=2):
            if not row or all(not c.strip() for c in row):
                continue
            values = []
            for c in xs + ys:
                i = cols[c]
                text = row[i].strip() if i < len(row) else ""
                try:
                    values.append(float(text))
                except ValueError:
                    raise DataError(f"line {line}: column {c!r} holds {text!r}, not a number", file=str(ref.path),
                                    field=f"{ref.where}.{'y' if c in ys else 'x'}") from None
            rows.append(values)
    if not rows:
        raise DataError("the CSV file has a header but no rows", file=str(ref.path), field=ref.field)
    table = np.array(rows, dtype=np.float64)
    pick = sample_indices(len(table), ref.option("max_examples"), ref.option("seed"))
    if pick is not None:
        table = table[pick]
    x = table[:, :len(xs)]
    dtype = facts.inputs[0].dtype if len(facts.inputs) == 1 else "float32"
    x = x.astype(np.float32) if not (dtype in np.sctypeDict and np.issubdtype(np.dtype(dtype), np.integer)) else x
    out = {"x": x}
    if ys:
        y = table[:, len(xs):]
        out["y"] = y[:, 0] if y.shape[1] == 1 else y
    return out
