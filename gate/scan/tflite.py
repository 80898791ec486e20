"""`.tflite` files: the bounds of the flatbuffer's top-level tables."""
from __future__ import annotations

import mmap
import struct
from pathlib import Path
from typing import Any

from gate.errors import ModelError
from gate.scan.limits import ScanLimits, ScanResult

# Field slots of the tflite schema's root `Model` table.
_TFL_VECTOR_FIELDS = {1: "operator_codes", 2: "subgraphs", 4: "buffers", 6: "metadata",
                      7: "signature_defs"}


def scan_tflite(path: Path, size: int, _trust: bool, limits: ScanLimits) -> ScanResult:
    file = str(path)
    if size < 32:
        raise ModelError(f"file is only {size} bytes: too small to be a TFLite model "
                         "(truncated?)", file=file)
    with path.open("rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as buf:
        fb = _Flatbuffer(buf, size, file)
        model = fb.root_table()
        version = fb.scalar(model, 0, "<I", 0)
        counts = {name: fb.vector_len(model, slot) for slot, name in _TFL_VECTOR_FIELDS.items()}
        if fb.field_pos(model, 3):
            fb.string_len(model, 3)   # description
        if counts["subgraphs"] == 0:
            raise ModelError("TFLite model has no subgraphs", file=file)
        if sum(counts.values()) > limits.max_objects:
            raise ModelError(f"TFLite model declares {sum(counts.values())} top-level tables, "
                             f"over the limit of {limits.max_objects}", file=file)
        for slot in _TFL_VECTOR_FIELDS:
            for i in range(counts[_TFL_VECTOR_FIELDS[slot]]):
                table = fb.vector_table(model, slot, i)
                if slot == 4:
                    _check_tflite_buffer(fb, table, i, size)
    notes = (f"tflite schema version {version}, {counts['subgraphs']} subgraph(s), "
             f"{counts['operator_codes']} operator code(s), {counts['buffers']} buffer(s)",)
    return ScanResult("tflite", size, (), 0, notes)


def _check_tflite_buffer(fb: _Flatbuffer, buffer: int, index: int, size: int) -> None:
    fb.vector_len(buffer, 0, elem_size=1)   # inline data
    offset = fb.scalar(buffer, 1, "<Q", 0)  # offset > 1: data stored after the flatbuffer
    length = fb.scalar(buffer, 2, "<Q", 0)
    if offset > 1 and offset + length > size:
        fb.fail(f"buffer {index} lies past the end of the file")


class _Flatbuffer:
    """Bounds-checked reads of flatbuffer tables; any overrun means a truncated file."""

    def __init__(self, buf: Any, size: int, file: str):
        self.buf, self.size, self.file = buf, size, file

    def fail(self, what: str) -> None:
        raise ModelError(f"TFLite flatbuffer is malformed or truncated: {what}",
                         file=self.file)

    def _read(self, fmt: str, pos: int) -> int:
        n = struct.calcsize(fmt)
        if pos < 0 or pos + n > self.size:
            self.fail(f"offset {pos} is outside the {self.size}-byte file")
        return struct.unpack_from(fmt, self.buf, pos)[0]

    def root_table(self) -> int:
        return self._table_at(self._read("<I", 0))

    def _table_at(self, pos: int) -> int:
        vtable = pos - self._read("<i", pos)
        vt_len = self._read("<H", vtable)
        obj_len = self._read("<H", vtable + 2)
        if vt_len < 4 or vt_len % 2 or vtable + vt_len > self.size or pos + obj_len > self.size:
            self.fail(f"table at offset {pos} has an invalid vtable")
        return pos

    def field_pos(self, table: int, slot: int) -> int:
        vtable = table - self._read("<i", table)
        vt_len = self._read("<H", vtable)
        entry = 4 + 2 * slot
        if entry >= vt_len:
            return 0
        off = self._read("<H", vtable + entry)
        return table + off if off else 0

    def scalar(self, table: int, slot: int, fmt: str, default: int) -> int:
        pos = self.field_pos(table, slot)
        return self._read(fmt, pos) if pos else default

    def _vector(self, table: int, slot: int) -> tuple[int, int]:
        pos = self.field_pos(table, slot)
        if not pos:
            return 0, 0
        vec = pos + self._read("<I", pos)
        return vec, self._read("<I", vec)

    def vector_len(self, table: int, slot: int, elem_size: int = 4) -> int:
        vec, n = self._vector(table, slot)
        if vec and vec + 4 + n * elem_size > self.size:
            self.fail(f"vector at offset {vec} ({n} elements) runs past the end of the file")
        return n

    def string_len(self, table: int, slot: int) -> int:
        vec, n = self._vector(table, slot)
        if vec and vec + 4 + n + 1 > self.size:
            self.fail(f"string at offset {vec} runs past the end of the file")
        return n

    def vector_table(self, table: int, slot: int, index: int) -> int:
        vec, _ = self._vector(table, slot)
        elem = vec + 4 + 4 * index
        return self._table_at(elem + self._read("<I", elem))


