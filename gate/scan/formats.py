"""How a model file's content is recognised (signatures), and what each format should be."""
from __future__ import annotations

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
ZIP_SIGNATURES = (b"PK\x03\x04", b"PK\x05\x06")
TFLITE_IDENTIFIER = b"TFL3"
CONTENT_NAMES = {"keras": "a zip archive (a .keras file?)", "h5": "HDF5 (an .h5 file?)",
                  "tflite": "a TFLite flatbuffer (a .tflite file?)"}
EXPECTED_CONTENT = {
    "keras": "a .keras file is a zip archive written by model.save('x.keras')",
    "h5": "an .h5 file starts with the HDF5 signature \\x89HDF\\r\\n\\x1a\\n",
    "tflite": "a .tflite file has the identifier 'TFL3' at bytes 4..8",
}

