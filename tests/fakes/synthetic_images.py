"""Small synthetic images for captioning tests (made on the fly; never committed)."""

from __future__ import annotations

from pathlib import Path


def make_images(folder: Path, n: int, size: int = 24, prefix: str = "scene") -> list[tuple[str, Path]]:
    """`n` distinct PNG images; returns (image_id, path) pairs."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    pairs = []
    for i in range(n):
        path = folder / f"{prefix}_{i}.png"
        image = Image.new("RGB", (size, size), ((37 * i) % 256, (91 * i) % 256, (13 * i + 50) % 256))
        image.putpixel((i % size, (i // size) % size), (255, 255, 255))
        image.putpixel((size - 1, size - 1), (i % 256, (i // 256) % 256, (i // 65536) % 256))  # distinct for any n
        image.save(path)
        pairs.append((path.name, path))
    return pairs
