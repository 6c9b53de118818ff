"""The prompts: the authors' five-variant RSRT prompt, a stricter retry instruction, the image-query prompt.

The wording follows the authors' rules (analyse only what is visible; top = North, bottom = South,
left = West, right = East; no exact percentages; strict JSON with exactly five variants).
Any change to a prompt's text must bump its version: the version is part of every cache key.
"""

from __future__ import annotations

from .backend import MODES
from .schema import N_VARIANTS

VARIANTS_PROMPT_VERSION = "rsrt-variants-v1"
IMAGE_QUERY_PROMPT_VERSION = "rsrt-image-query-v1"
STRICT_RETRY_VERSION = "strict-v1"
PROMPT_VERSION = f"{VARIANTS_PROMPT_VERSION}+{IMAGE_QUERY_PROMPT_VERSION}+{STRICT_RETRY_VERSION}"

VARIANTS_PROMPT = (
    "This is a satellite or aerial image. Describe only what is actually visible in it.\n"
    "Directions: the top of the image is North, the bottom is South, the left is West, the right is East.\n"
    "Never give exact percentages or numbers for areas; use qualitative size words "
    "(small, medium-sized, large, covering most of the image).\n"
    f"Write {N_VARIANTS} different descriptions (variants) of the image and return them as strict JSON:\n"
    '{"variants": [\n'
    '  {"one_sentence": "<one sentence: the whole scene first, then its main parts>",\n'
    '   "feature": "<the visible features, each with its direction or position>",\n'
    '   "caption": "<a detailed paragraph; never empty>"},\n'
    f"  ... exactly {N_VARIANTS} such objects in total ...\n"
    "]}\n"
)

STRICT_RETRY_INSTRUCTION = (
    "\nIMPORTANT: your previous answer could not be used. Answer with ONE JSON object and nothing else: "
    "no prose, no markdown code fences. It must have exactly one key, \"variants\", whose value is a list of "
    f"exactly {N_VARIANTS} objects; each object has exactly the keys \"one_sentence\", \"feature\" and "
    "\"caption\", each a non-empty string. The five variants must all differ from each other."
)

IMAGE_QUERY_PROMPT = (
    "Describe this satellite or aerial image in detail. The top of the image is North, the bottom South, "
    "the left West and the right East. Name the main objects and say where each one lies in the image. "
    "Do not give exact percentages for sizes or areas; use qualitative size words. "
    "Describe only what is actually visible."
)

STRICT_IMAGE_QUERY_INSTRUCTION = (
    "\nIMPORTANT: answer with the plain-text description only (no JSON, no markdown), and do not leave it empty."
)


def prompt_for(mode: str, strict: bool = False) -> str:
    """The prompt text for a mode ("variants" or "image_query"); `strict` appends the retry instruction."""
    if mode == "variants":
        return VARIANTS_PROMPT + (STRICT_RETRY_INSTRUCTION if strict else "")
    if mode == "image_query":
        return IMAGE_QUERY_PROMPT + (STRICT_IMAGE_QUERY_INSTRUCTION if strict else "")
    raise ValueError(f"mode {mode!r} is not known; choose one of {', '.join(MODES)}")
