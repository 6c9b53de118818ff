"""Image files that cannot or should not be decoded, made by the tests (seeded, tiny on disk)."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np


def png_claiming(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height pixels but holds only a few bytes of data (a decompression bomb's
    header, without the bomb)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit greyscale
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\x00" * 16))
            + chunk(b"IEND", b""))


def random_bytes(n: int = 4096, seed: int = 0) -> bytes:
    return np.random.default_rng(seed).integers(0, 256, n, dtype=np.uint8).tobytes()


def truncated_jpeg(size: int = 128, keep: float = 0.5, seed: int = 0) -> bytes:
    """The first `keep` share of a JPEG of noise: its header reads, its pixels do not decode."""
    import io

    from PIL import Image

    noise = np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(noise).save(buffer, format="JPEG", quality=95)
    data = buffer.getvalue()
    return data[:int(len(data) * keep)]


def plant_bad_files(folder: Path) -> dict[str, str]:
    """Write one file of each kind of bad image into `folder`; {file name: the word its failure reason holds}."""
    folder.mkdir(parents=True, exist_ok=True)
    files = {"corrupt.jpg": (random_bytes(), "decoded"), "empty.png": (b"", "empty"),
             "truncated.jpg": (truncated_jpeg(), "truncated"), "bomb.png": (png_claiming(20000, 20000), "limit")}
    for name, (data, _) in files.items():
        (folder / name).write_bytes(data)
    return {name: word for name, (_, word) in files.items()}
