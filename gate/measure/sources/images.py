"""A directory of class subfolders of images, as keras.utils.image_dataset_from_directory
reads it: classes are the sorted folder names (or `class_names`), label = the class's index,
images found recursively inside each class folder (.png .jpg .jpeg .bmp .gif; other files
are ignored, as Keras does). Decoded once into a temporary file; `pixel * scale + offset`
is applied per batch."""
from __future__ import annotations

import numpy as np

from gate.config.sources import SourceRef
from gate.errors import DataError
from gate.measure.sources.base import Spool, affine, digest_files, sample_indices
from gate.measure.sources.imagefiles import IMAGE_SUFFIXES, Decoder, image_format, image_size, input_geometry


def listing(ref: SourceRef) -> tuple[list[str], list[tuple[object, int]]]:
    """(class names, [(image path, label)]) in class order, files sorted within a class."""
    root, field = ref.path, ref.field
    folders = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    names = list(ref.option("class_names") or folders)
    if not names:
        raise DataError("no class subfolders: expected one folder of images per class (as "
                        "keras.utils.image_dataset_from_directory reads them)", file=str(root), field=field,
                        hint=f"{root.name}/<class name>/<image>.png")
    missing = [n for n in names if n not in folders]
    if missing:
        raise DataError(f"class_names lists {missing}, which are not folders here (found {folders})",
                        file=str(root), field=f"{ref.where}.class_names")
    files = []
    for label, name in enumerate(names):
        found = sorted((p for p in (root / name).rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES),
                       key=lambda p: p.relative_to(root).as_posix())
        if not found:
            raise DataError(f"class '{name}' has no images (.png, .jpg, .jpeg, .bmp, .gif)",
                            file=str(root / name), field=field,
                            hint="put at least one image in every class folder, or list the classes to use "
                                 "in class_names")
        files += [(p, label) for p in found]
    return names, files


def check(ref: SourceRef, trusted: bool) -> None:
    """Before TF: the folders, and every image's magic bytes."""
    for path, _ in listing(ref)[1]:
        with open(path, "rb") as f:
            head = f.read(16)
        if image_format(head) is None:
            raise DataError(f"not a readable image: content is none of PNG, JPEG, BMP, GIF (first bytes: "
                            f"{head[:8].hex() or 'empty file'})", file=str(path), field=ref.field,
                            hint="remove the file or re-encode it")


def digest(ref: SourceRef, trusted: bool) -> str:
    names, files = listing(ref)
    options = ref.spec.model_dump(mode="json", exclude={"images"})
    return digest_files(ref.path, [p for p, _ in files], {"classes": names, **options})


def load(ref: SourceRef, facts, trusted: bool) -> dict[str, np.ndarray]:
    names, files = listing(ref)
    pick = sample_indices(len(files), ref.option("max_examples"), ref.option("seed"))
    if pick is not None:
        files = [files[i] for i in pick]
    if len(facts.inputs) != 1:
        raise DataError(f"a folder of images feeds one input; the model has {len(facts.inputs)}",
                        file=str(ref.path), field=ref.field, hint="use tfrecord or python for several inputs")
    height, width, channels = input_geometry(facts.inputs[0], ref.field, str(ref.path))
    blobs = (p.read_bytes() for p, _ in files)
    decode = Decoder(height, width, channels, [image_size(_head(p)) for p, _ in files])
    spool = Spool()
    for (path, _), data in zip(files, blobs):
        spool.add("x", decode_one(decode, data, str(path), ref.field)[None])
    arrays = spool.arrays()
    x = arrays["x"]
    return {"x": affine(x, ref.option("scale"), ref.option("offset")),
            "y": np.array([label for _, label in files], dtype=np.int64)}


def decode_one(decode: Decoder, data: bytes, file: str, field: str) -> np.ndarray:
    try:
        return decode(data)
    except Exception as exc:  # noqa: BLE001 - a decoder failure is the file's fault
        message = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise DataError(f"not a readable image ({type(exc).__name__}: {message})", file=file, field=field) from None


def _head(path, size: int = 65536) -> bytes:
    with open(path, "rb") as f:
        return f.read(size)
