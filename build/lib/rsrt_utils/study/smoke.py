"""A tiny synthetic benchmark the tests (and the notebooks' default parameters) make themselves.

Six scene classes of drawn 64x64 scenes; every test image has a near-identical *twin* in the
train split that carries exactly the same five human captions, and each image's captions name a
landmark no other image has. So with a 1-nearest-neighbour captioner every test image receives
its own captions: the expected recalls are known in advance (100 % for R@1/5/10 both ways).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from ..fileutil import NotOurFolder

SMOKE_CLASSES = {
    "farmland": (120, 170, 60), "forest": (30, 90, 40), "pond": (40, 90, 170),
    "industrial": (130, 130, 135), "beach": (225, 205, 150), "parking": (70, 70, 75),
}
LANDMARKS = ["lighthouse", "granary", "windmill", "water tower", "chapel", "silo", "barn", "pier", "radio mast",
             "greenhouse", "quarry", "orchard", "helipad", "reservoir", "stable", "kiosk", "pavilion", "dam"]
DIRECTIONS = ["north", "south", "east", "west", "north-west", "south-east"]
COLOURS = {"red": (200, 40, 40), "white": (240, 240, 240), "yellow": (230, 210, 40), "black": (15, 15, 15)}
TEST_PER_CLASS, EXTRA_TRAIN_PER_CLASS, SIZE = 3, 2, 64
DONE_MARK = "SMOKE_COMPLETE.json"


def _scene(rng: np.random.Generator, base: tuple, colour: tuple) -> Image.Image:
    pixels = np.clip(np.array(base, dtype=float) + rng.normal(0, 12, (SIZE, SIZE, 3)), 0, 255).astype(np.uint8)
    image = Image.fromarray(pixels)
    draw = ImageDraw.Draw(image)
    for _ in range(3):
        x, y = rng.integers(4, SIZE - 20, size=2)
        w, h = rng.integers(8, 18, size=2)
        draw.rectangle([int(x), int(y), int(x + w), int(y + h)], fill=colour)
    return image


def _twin(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    pixels = np.asarray(image, dtype=float) + rng.normal(0, 3, (SIZE, SIZE, 3))
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def _captions(scene_class: str, landmark: str, direction: str, colour: str) -> list[str]:
    return [
        f"a {scene_class} scene with a {landmark} in the {direction}",
        f"{colour} blocks lie across the {scene_class} area near the {landmark}",
        f"the {landmark} stands on the {direction} side of this {scene_class} area",
        f"several {colour} patches surround a {landmark} in a {scene_class} region",
        f"an aerial view of {scene_class} land where a {landmark} is visible",
    ]


def make_smoke_dataset(root: Path, seed: int = 0) -> Path:
    """Write the smoke benchmark (AMFMN text layout + JPEG images) into root; returns root.

    Idempotent: a complete dataset (marked by SMOKE_COMPLETE.json) is left as it is.
    """
    root = Path(root)
    if (root / DONE_MARK).is_file():
        return root
    staging = root.with_name(root.name + f".staging-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    (staging / "images").mkdir(parents=True)
    rng = np.random.default_rng(seed)
    splits: dict[str, list[tuple[str, list[str]]]] = {"test": [], "train": []}
    landmark_iter = iter(LANDMARKS)
    colour_names = list(COLOURS)
    for scene_class, base in SMOKE_CLASSES.items():
        for n in range(TEST_PER_CLASS + EXTRA_TRAIN_PER_CLASS):
            colour = colour_names[int(rng.integers(len(colour_names)))]
            image = _scene(rng, base, COLOURS[colour])
            if n < TEST_PER_CLASS:
                captions = _captions(scene_class, next(landmark_iter), DIRECTIONS[int(rng.integers(len(DIRECTIONS)))], colour)
                name = f"{scene_class}_{n + 1}.jpg"
                image.save(staging / "images" / name, quality=95)
                splits["test"].append((name, captions))
                twin_name = f"{scene_class}_{100 + n + 1}.jpg"
                _twin(image, rng).save(staging / "images" / twin_name, quality=95)
                splits["train"].append((twin_name, captions))
            else:
                captions = [f"a plain {scene_class} scene with {colour} patches", f"{scene_class} land seen from above",
                            f"an ordinary {scene_class} area", f"some {colour} shapes in a {scene_class} scene",
                            f"a {scene_class} region without landmarks"]
                name = f"{scene_class}_{200 + n}.jpg"
                image.save(staging / "images" / name, quality=95)
                splits["train"].append((name, captions))
    for split, items in splits.items():
        (staging / f"{split}_caps.txt").write_text("".join(c + "\n" for _, caps in items for c in caps), encoding="utf-8")
        (staging / f"{split}_filename.txt").write_text("".join(name + "\n" for name, _ in items), encoding="utf-8")
    (staging / DONE_MARK).write_text(json.dumps({"seed": seed, "classes": list(SMOKE_CLASSES)}))
    if root.is_dir() and not any(root.iterdir()):
        root.rmdir()
    elif root.exists():  # never ours: a finished smoke dataset carries DONE_MARK
        shutil.rmtree(staging, ignore_errors=True)
        raise NotOurFolder(f"{root} exists without {DONE_MARK}: rsrt did not make it, so it is never replaced; move it "
                           "away, then rerun")
    staging.rename(root)
    return root
