"""How a model file's content is recognised (signatures); what each format should be is
gate.formats' table."""
from __future__ import annotations

from gate.formats import FORMATS

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
ZIP_SIGNATURES = (b"PK\x03\x04", b"PK\x05\x06")
TFLITE_IDENTIFIER = b"TFL3"
CONTENT_NAMES = {f.name: f.content for f in FORMATS if f.extensions}          # from gate.formats' table
EXPECTED_CONTENT = {f.name: f.expected_content for f in FORMATS if f.extensions}
