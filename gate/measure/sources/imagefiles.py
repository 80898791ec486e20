"""Encoded image bytes: the format by its magic bytes and the size from its header (pure
Python, before TF), and the decoding the way keras.utils.image_dataset_from_directory does it
(tf.io.decode_image with the model's channels, bilinear tf.image.resize to the model's size)."""
from __future__ import annotations

import struct

import numpy as np

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif")     # what Keras reads from class folders
COLOR_MODES = {1: "grayscale", 3: "rgb", 4: "rgba"}


def image_format(head: bytes) -> str | None:
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head.startswith(b"BM"):
        return "bmp"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "gif"
    return None


def image_size(data: bytes) -> tuple[int, int] | None:
    """(height, width) from the header, or None when the header cannot say."""
    fmt = image_format(data[:8])
    try:
        if fmt == "png" and data[12:16] == b"IHDR":
            w, h = struct.unpack(">II", data[16:24])
            return h, w
        if fmt == "gif":
            w, h = struct.unpack("<HH", data[6:10])
            return h, w
        if fmt == "bmp":
            w, h = struct.unpack("<ii", data[18:26])
            return abs(h), w
        if fmt == "jpeg":
            i = 2
            while i + 9 < len(data):
                if data[i] != 0xFF:
                    return None
                marker = data[i + 1]
                if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
                    i += 2
                    continue
                length = struct.unpack(">H", data[i + 2:i + 4])[0]
                if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
                    h, w = struct.unpack(">HH", data[i + 5:i + 9])
                    return h, w
                i += 2 + length
    except struct.error:
        return None
    return None


def input_geometry(spec, where: str, file: str) -> tuple[int | None, int | None, int]:
    """(height, width, channels) of an image input (N, H, W, C)."""
    from gate.errors import DataError

    shape = tuple(spec.shape)
    if len(shape) != 4 or shape[-1] not in COLOR_MODES:
        raise DataError(f"images need a model input of shape (N, height, width, 1|3|4); input '{spec.name}' is "
                        f"{shape}", file=file, field=where,
                        hint="use an .npz, a CSV or tfrecord float features for non-image models")
    return shape[1], shape[2], int(shape[3])


class Decoder:
    """Decodes encoded images to the model's geometry, as Keras' image_dataset_from_directory
    does. Stores uint8 when no image needs resizing (exactly Keras' values, a quarter of the
    bytes), float32 otherwise."""

    def __init__(self, height: int | None, width: int | None, channels: int, sizes: list):
        from gate.measure.tfenv import tf

        self.tf = tf()
        known = [s for s in sizes if s is not None]
        if (height is None or width is None) and known:
            height, width = known[0]
        self.height, self.width, self.channels = height, width, channels
        self.resize = any(s is None or s != (height, width) for s in sizes)

    @property
    def dtype(self):
        return np.float32 if self.resize else np.uint8

    def __call__(self, data: bytes) -> np.ndarray:
        tf = self.tf
        img = tf.io.decode_image(data, channels=self.channels, expand_animations=False)
        if self.resize:
            img = tf.image.resize(img, (self.height, self.width), method="bilinear")
        return img.numpy()
