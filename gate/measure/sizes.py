"""A .tflite's size as the gate reports it: raw bytes, gzip level 9 (what a download
costs; pruning and clustering show only here) and the sha256. Computed once per model."""
from __future__ import annotations

import gzip
import hashlib
from dataclasses import dataclass


@dataclass(frozen=True)
class FileSizes:
    bytes_raw: int
    bytes_gzip: int
    sha256: str

    @classmethod
    def of(cls, content: bytes) -> "FileSizes":
        return cls(len(content), len(gzip.compress(content, compresslevel=9, mtime=0)),
                   hashlib.sha256(content).hexdigest())

    def get(self, measure: str) -> int:
        """`measure` as gate.yml spells it: raw | gzip."""
        return self.bytes_raw if measure == "raw" else self.bytes_gzip

    def to_dict(self) -> dict:
        return {"bytes_raw": self.bytes_raw, "bytes_gzip": self.bytes_gzip, "sha256": self.sha256}
