"""What every data source shares: lazily scaled arrays, a disk spool for decoded examples,
the seeded sample, content digests and chunked reads (numpy only, no TF).

A source hands `gate.measure.data` a mapping of arrays keyed like an .npz (`x` or input
names, `y` or `y.<output>`). Targets are small and live in memory; inputs may be
`np.memmap`s (an uncompressed .npz member, or examples decoded once into a temporary file)
or `Scaled` views of them, so the gate's peak memory is bounded by the batch and the model,
not by the size of the eval set. Consumers slice batches (`a[lo:hi]`) and call np.asarray.
"""
from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

CHUNK_BYTES = 32 << 20          # rows per chunked read: about 32 MiB of inputs


class Scaled:
    """`base * scale + offset` as float32, computed per slice (base: uint8 pixels on disk)."""

    def __init__(self, base, scale: float, offset: float):
        self.base, self.scale, self.offset = base, float(scale), float(offset)

    shape = property(lambda self: self.base.shape)
    ndim = property(lambda self: self.base.ndim)
    dtype = np.dtype(np.float32)
    size = property(lambda self: self.base.size)

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, index):
        part = self.base[index]
        if isinstance(index, slice):
            return Scaled(part, self.scale, self.offset)
        return self._apply(np.asarray(part))

    def _apply(self, a: np.ndarray) -> np.ndarray:
        out = a.astype(np.float32)
        if self.scale != 1.0:
            out *= np.float32(self.scale)
        if self.offset != 0.0:
            out += np.float32(self.offset)
        return out

    def __array__(self, dtype=None, copy=None):
        out = self._apply(np.asarray(self.base))
        return out if dtype is None else out.astype(dtype)


def affine(base, scale: float, offset: float):
    """`base` as the model sees it: a lazy Scaled view (no copy of the whole set)."""
    return Scaled(base, scale, offset)


def rows_per_chunk(a) -> int:
    per_row = max(int(np.prod(a.shape[1:], dtype=np.int64)) * 4, 1)
    return max(1, CHUNK_BYTES // per_row)


def chunks(a) -> Iterator[np.ndarray]:
    """The rows of `a` in chunks of about CHUNK_BYTES, each as an ndarray."""
    step = rows_per_chunk(a)
    for lo in range(0, len(a), step):
        yield np.asarray(a[lo:lo + step])


def is_lazy(a) -> bool:
    return not isinstance(a, np.ndarray) or isinstance(a, np.memmap)


def sample_indices(n: int, max_examples: int | None, seed: int | None) -> np.ndarray | None:
    """Which of n examples to read: all (None), the first max_examples, or a seeded sample
    of max_examples (sorted: file order is kept)."""
    if max_examples is None or max_examples >= n:
        return None
    if seed is None:
        return np.arange(max_examples)
    return np.sort(np.random.default_rng(seed).choice(n, size=max_examples, replace=False))


class Spool:
    """Examples appended batch by batch to anonymous temporary files, read back as memmaps."""

    def __init__(self):
        self._files: dict[str, tuple] = {}      # key -> (file, dtype, row shape, rows)

    def add(self, key: str, batch: np.ndarray) -> None:
        batch = np.ascontiguousarray(batch)
        if key not in self._files:
            self._files[key] = (tempfile.TemporaryFile(prefix="gate-data-"), batch.dtype, batch.shape[1:], 0)
        f, dtype, shape, rows = self._files[key]
        if batch.dtype != dtype or batch.shape[1:] != shape:
            raise ValueError(f"{key}: an example has shape {batch.shape[1:]} ({batch.dtype}), the first had "
                             f"{shape} ({dtype})")
        f.write(batch.tobytes())
        self._files[key] = (f, dtype, shape, rows + len(batch))

    def arrays(self) -> dict[str, np.ndarray]:
        out = {}
        for key, (f, dtype, shape, rows) in self._files.items():
            f.flush()
            if rows == 0 or int(np.prod(shape, dtype=np.int64)) * dtype.itemsize == 0:
                out[key] = np.zeros((rows, *shape), dtype)
            else:
                out[key] = np.memmap(f, dtype=dtype, mode="r", shape=(rows, *shape))
        return out


def digest_files(root: Path, files: Iterable[Path], extra: dict | None = None) -> str:
    """sha256 over each file's path relative to `root` and its bytes, in sorted order:
    a renamed root directory keeps the digest, a changed byte or label folder changes it."""
    h = hashlib.sha256()
    if extra:
        h.update(repr(sorted(extra.items())).encode())
    for p in sorted(files, key=lambda p: p.relative_to(root).as_posix()):
        h.update(p.relative_to(root).as_posix().encode() + b"\0")
        with open(p, "rb") as f:
            h.update(hashlib.file_digest(f, "sha256").digest())
    return h.hexdigest()


def digest_file(path: Path, extra: dict | None = None) -> str:
    """sha256 over the options and one file's bytes (not its name)."""
    h = hashlib.sha256(repr(sorted((extra or {}).items())).encode())
    with open(path, "rb") as f:
        h.update(hashlib.file_digest(f, "sha256").digest())
    return h.hexdigest()


def digest_arrays(h: "hashlib._Hash", arrays: dict[str, np.ndarray]) -> None:
    for key in sorted(arrays):
        a = arrays[key]
        h.update(f"{key}:{a.dtype}:{a.shape}".encode())
        for part in chunks(a):
            h.update(np.ascontiguousarray(part).tobytes())
