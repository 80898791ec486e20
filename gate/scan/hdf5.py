"""`.h5` files: soft and external links, external or virtual datasets, then the
model_config (and training_config) trees."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from gate.errors import ModelError
from gate.scan.config_tree import parse_json, walk_config
from gate.scan.formats import HDF5_SIGNATURE
from gate.scan.keras3 import KERAS3, flavour_of, walk_keras3_config
from gate.scan.limits import ScanLimits, ScanResult


def open_h5(source: Any, file: str) -> Any:
    """h5py.File read-only; a file HDF5 cannot open is a ModelError naming it."""
    import h5py

    try:
        return h5py.File(source, "r")
    except OSError as e:
        raise ModelError(f"HDF5 file cannot be opened: {e}", file=file) from None


def scan_h5(path: Path, size: int, trust: bool, limits: ScanLimits) -> ScanResult:
    file = str(path)
    with open_h5(path, file) as f:
        _check_h5_tree(f, file, limits)
        if "model_config" not in f.attrs:
            hint = ("this looks like model.save_weights() output; save the whole model with "
                    "model.save('model.h5') or model.save('model.keras')")
            raise ModelError("no model_config attribute: weights-only file", file=file,
                             field="model_config", hint=hint)
        config = parse_json(_read_h5_attr(f, "model_config", file, limits), file,
                             "model_config")
        version = f.attrs.get("keras_version")
        version = None if version is None else _as_text(version)[:40]
        try:
            flavour = flavour_of(version, config)
        except ValueError as exc:
            raise ModelError(f"{exc}: refusing a file whose Keras version cannot be told", file=file,
                             field="keras_version", hint="save the model again with the Keras that built it") from None
        if flavour == KERAS3:
            walk = walk_keras3_config(config, file=file, where="model_config", trust=trust, limits=limits,
                                      legacy_h5=True)
        else:
            walk = walk_config(config, file=file, where="model_config", trust=trust, limits=limits)
        notes = list(walk.notes)
        if "training_config" in f.attrs:
            training = parse_json(_read_h5_attr(f, "training_config", file, limits), file,
                                   "training_config")
            if flavour == KERAS3:
                tw = walk_keras3_config(training, file=file, where="training_config", trust=trust,
                                        limits=limits, legacy_h5=True, root_is_model=False)
            else:
                tw = walk_config(training, file=file, where="training_config", trust=trust,
                                 limits=limits, root_is_model=False)
            notes += tw.notes
        if version is not None:
            notes.insert(0, f"saved by Keras {version}")
    return ScanResult("h5", size, walk.classes(), walk.n_layers, tuple(notes), flavour)


def _read_h5_attr(f: Any, name: str, file: str, limits: ScanLimits) -> str:
    """Read a string attribute within max_config_bytes.

    The storage size is exact for fixed-length strings; a variable-length string (what
    h5py and Keras write) lives in the file's heap, so its length is only known after
    reading, which max_file_bytes bounds."""
    too_big = ModelError(f"attribute {name} is over the {limits.max_config_bytes}-byte limit",
                         file=file, field=name)
    if f.attrs.get_id(name).get_storage_size() > limits.max_config_bytes:
        raise too_big
    value = f.attrs[name]
    if not isinstance(value, (str, bytes)):
        raise ModelError(f"attribute {name} is not a string", file=file, field=name)
    if len(value) > limits.max_config_bytes:
        raise too_big
    return _as_text(value)


def _as_text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def check_h5_structure(source: Any, file: str, limits: ScanLimits) -> None:
    """Open an HDF5 file object (e.g. a zip member) and check its links and storage."""
    head = source.read(8)
    if head != HDF5_SIGNATURE:
        raise ModelError("is not an HDF5 file", file=file)
    source.seek(0)
    with open_h5(source, file) as f:
        _check_h5_tree(f, file, limits)


def _check_h5_tree(root: Any, file: str, limits: ScanLimits) -> None:
    """Visit every link without following any but hard links.

    h5py's visititems() silently skips soft and external links, so walk by hand and
    look at each link before resolving it.
    """
    import h5py

    seen = {root.id}
    stack: list[tuple[Any, int]] = [(root, 0)]
    visited = 0
    while stack:
        group, depth = stack.pop()
        if depth > limits.max_depth:
            raise ModelError(f"HDF5 groups nested deeper than {limits.max_depth}", file=file,
                             field=group.name)
        for name in group:
            visited += 1
            if visited > limits.max_objects:
                raise ModelError(f"HDF5 file has more than {limits.max_objects} objects",
                                 file=file)
            where = f"{group.name.rstrip('/')}/{name}"
            link = group.get(name, getlink=True)
            if isinstance(link, h5py.ExternalLink):
                raise ModelError(
                    f"HDF5 external link at {where} points to '{link.filename}:{link.path}'; "
                    "loading would open another file", file=file, field=where)
            if isinstance(link, h5py.SoftLink):
                raise ModelError(f"HDF5 soft link at {where} -> '{link.path}' is not allowed",
                                 file=file, field=where)
            if not isinstance(link, h5py.HardLink):
                raise ModelError(f"HDF5 link of unknown type at {where}", file=file,
                                 field=where)
            obj = group.get(name)
            if isinstance(obj, h5py.Dataset):
                _check_h5_dataset(obj, where, file)
            elif isinstance(obj, h5py.Group) and obj.id not in seen:
                seen.add(obj.id)
                stack.append((obj, depth + 1))


def _check_h5_dataset(dset: Any, where: str, file: str) -> None:
    if dset.external:
        targets = ", ".join(str(e[0]) for e in dset.external)
        raise ModelError(f"HDF5 dataset {where} stores its data in external file(s) "
                         f"{targets}", file=file, field=where)
    if dset.is_virtual:
        raise ModelError(f"HDF5 dataset {where} is a virtual dataset (maps other files)",
                         file=file, field=where)


