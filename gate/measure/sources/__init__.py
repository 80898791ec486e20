"""Data sources for data.train / data.eval, one module per kind (gate.config.sources says
what was asked for): npz, images (class folders), tfrecord, csv, python (the team's loader).

Each module has three functions:
- `check(ref, trusted)`: what can be checked before TF (the parent runs it; exit 2 on any
  problem, naming the file and the field);
- `digest(ref, trusted)`: the content digest the cache key uses;
- `load(ref, facts, trusted)`: the arrays keyed like an .npz (`x` / input names, `y` /
  `y.<output>`), inputs possibly memory-mapped or lazily scaled (gate.measure.sources.base).
"""
from __future__ import annotations

from types import ModuleType

from gate.config.sources import SourceRef
from gate.measure.sources import csv, images, npz, pyloader, tfrecord

MODULES: dict[str, ModuleType] = {"npz": npz, "images": images, "tfrecord": tfrecord, "csv": csv,
                                  "python": pyloader}


def check(ref: SourceRef, trusted: bool) -> None:
    MODULES[ref.kind].check(ref, trusted)


def digest(ref: SourceRef, trusted: bool) -> str:
    return MODULES[ref.kind].digest(ref, trusted)


def load(ref: SourceRef, facts, trusted: bool) -> dict:
    return MODULES[ref.kind].load(ref, facts, trusted)
