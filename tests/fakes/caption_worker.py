"""A captioning run in its own process (for kill/resume tests): python -m tests.fakes.caption_worker BASE_URL IMAGES STORE CONCURRENCY."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from rsrt_utils.captioning.openai_chat import OpenAIChatBackend
from rsrt_utils.captioning.runner import caption_images


def main(base_url: str, image_dir: str, store: str, concurrency: str) -> int:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    pairs = [(p.name, p) for p in sorted(Path(image_dir).glob("*.png"))]
    backend = OpenAIChatBackend(base_url=base_url, backoff_base=0.01, timeout=10.0)
    summary = caption_images(pairs, backend, store, concurrency=int(concurrency), progress=True)
    print(summary.text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main(*sys.argv[1:5]))
