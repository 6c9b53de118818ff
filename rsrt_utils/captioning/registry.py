"""The captioning backends, described once: class, whether they cost money, what they need, and the OpenAI default
model and prices. The factory (api.py), the params schema, the CLI and the cost estimates read this."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class BackendInfo:
    """One backend: where its class lives and what kind of work it does."""

    name: str
    module: str
    class_name: str
    paid: bool              # calls a priced API (a cost estimate is shown first)
    captions_images: bool   # describes pixels (False: reads an existing corpus)
    summary: str


BACKENDS_INFO = {
    "openai-chat": BackendInfo("openai-chat", "rsrt_utils.captioning.openai_chat", "OpenAIChatBackend", True, True,
                               "OpenAI chat completions (or any OpenAI-compatible server with base_url)"),
    "openai-batch": BackendInfo("openai-batch", "rsrt_utils.captioning.openai_batch", "OpenAIBatchBackend", True, True,
                                "OpenAI Batch API: half price, results within 24 h"),
    "transformers": BackendInfo("transformers", "rsrt_utils.captioning.transformers_vlm", "TransformersVLMBackend",
                                False, True, "a local Hugging Face vision-language model"),
    "neighbour": BackendInfo("neighbour", "rsrt_utils.captioning.neighbour", "NeighbourCaptioner", False, True,
                             "caption transfer from the train split's nearest images (uses in-domain train captions; "
                             "not zero-shot)"),
    "import": BackendInfo("import", "rsrt_utils.captioning.importer", "ImportedCorpusBackend", False, False,
                          "an existing corpus JSONL"),
}
BACKENDS = tuple(BACKENDS_INFO)
PAID_BACKENDS = tuple(b.name for b in BACKENDS_INFO.values() if b.paid)
CAPTIONING_BACKENDS = tuple(b.name for b in BACKENDS_INFO.values() if b.captions_images)

DEFAULT_OPENAI_MODEL = "gpt-4.1"  # the paper's captioner
# USD per million tokens, list prices when this was written (check the provider's page before a paid run).
OPENAI_PRICES = {"gpt-4.1": {"input_per_1m": 2.0, "output_per_1m": 8.0, "batch_discount": 0.5}}
# Per image: prompt (~250) + one high-detail tile for a small image (~255); five variants (~900).
EXPECTED_TOKENS = {"input": 550, "output": 1000}


def default_prices() -> dict:
    """The default model's prices (a copy: params may change it)."""
    return dict(OPENAI_PRICES[DEFAULT_OPENAI_MODEL])
