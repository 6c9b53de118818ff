"""Local vision-language models through transformers: any image-text-to-text model with a chat template.

Works with LLaVA, LLaVA-NeXT, Qwen2-VL and alike via `AutoProcessor` + `AutoModelForImageTextToText`
(a hub id, resolved in the local Hugging Face cache, or a local directory). Each request becomes one
chat turn holding the image and the prompt (`rsrt_utils.captioning.prompts`); the processor's chat
template renders it, prompts are left-padded into one batch, and generation is greedy unless a
temperature > 0 is given. Only the NEWLY generated tokens are decoded (the prompt tokens are sliced
off; the authors' export kept them in its output).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

from ..image_files import ImageReadError, open_rgb
from .backend import MODES, BackendAnswer, CaptionRequest, Mode

DTYPES = ("auto", "float32", "float16", "bfloat16")


class ModelLoadError(RuntimeError):
    """The model or processor could not be loaded (typically: not available offline)."""


def _torch_dtype(dtype: str):
    import torch

    if dtype not in DTYPES:
        raise ValueError(f"dtype {dtype!r} is not supported; choose one of {', '.join(DTYPES)}")
    return "auto" if dtype == "auto" else getattr(torch, dtype)


def _default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _load_error(model: str, exc: Exception) -> ModelLoadError:
    local = Path(model).expanduser().exists()
    where = (f"the local directory {model} exists but could not be loaded as an image-text-to-text model"
             if local else f"{model!r} is neither a local directory nor a model in the Hugging Face cache")
    return ModelLoadError(
        f"could not load VLM {model!r}: {where} ({exc.__class__.__name__}: {exc}). Fix: pass a local directory holding "
        "the model and processor files (config.json, weights, tokenizer, preprocessor/chat template), or download it "
        "once where there is network (huggingface-cli download <id>) so it sits in HF_HOME / the hub cache, then run "
        "offline with HF_HUB_OFFLINE=1.")


class TransformersVLMBackend:
    """Caption backend "transformers": batched chat-template generation with a local image-text-to-text model."""

    name = "transformers"
    label = None

    def __init__(self, model: str, device: str | None = None, dtype: str = "auto", batch_size: int = 4,
                 max_new_tokens: int = 1800, temperature: float = 0.0, local_files_only: bool | None = None,
                 trust_remote_code: bool = False, image_format: str = "RGB"):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
        if temperature < 0:
            raise ValueError(f"temperature must be >= 0 (0 = greedy), got {temperature}")
        self.model = str(model)
        self.device = device or _default_device()
        self.dtype = dtype
        self.batch_size = batch_size
        self.max_new_tokens = max_new_tokens
        self.temperature = temperature
        self.image_format = image_format
        self.local_files_only = (Path(self.model).expanduser().exists() or bool(os.environ.get("HF_HUB_OFFLINE"))
                                 if local_files_only is None else local_files_only)
        self.processor, self.network = self._load(trust_remote_code)
        self.settings = {"max_new_tokens": max_new_tokens, "temperature": temperature, "dtype": dtype,
                         "decoding": "greedy" if temperature == 0 else "sample", "chat_template": "processor",
                         "padding_side": "left"}

    @property
    def prompt_version(self) -> str:
        from .prompts import PROMPT_VERSION
        return PROMPT_VERSION

    def _load(self, trust_remote_code: bool):
        from transformers import AutoModelForImageTextToText, AutoProcessor

        options = {"local_files_only": self.local_files_only, "trust_remote_code": trust_remote_code}
        try:
            processor = AutoProcessor.from_pretrained(self.model, **options)
            network = AutoModelForImageTextToText.from_pretrained(self.model, dtype=_torch_dtype(self.dtype), **options)
        except (OSError, ValueError, KeyError) as exc:
            raise _load_error(self.model, exc) from exc
        tokenizer = getattr(processor, "tokenizer", None)
        if tokenizer is None or getattr(processor, "chat_template", None) is None and getattr(tokenizer, "chat_template", None) is None:
            raise ModelLoadError(f"the processor of {self.model!r} has no tokenizer or no chat template; give a model "
                                 "directory whose processor defines a chat template (chat_template.jinja or in tokenizer_config.json)")
        tokenizer.padding_side = "left"
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        return processor, network.to(self.device).eval()

    def prompt_text(self, mode: Mode, strict: bool) -> str:
        from .prompts import prompt_for
        return prompt_for(mode, strict)

    def render_chat(self, prompt: str) -> str:
        """The chat template applied to one user turn holding an image and the prompt (generation prompt added)."""
        messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": prompt}]}]
        return self.processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)

    def _load_image(self, request: CaptionRequest):
        """The request's image in the processor's colour mode; ImageReadError names a missing or unreadable file."""
        if request.image_path is None:
            raise ImageReadError(None, f"image {request.image_id!r} has no pixel file; the transformers backend needs pixels")
        image = open_rgb(request.image_path)
        return image if self.image_format == "RGB" else image.convert(self.image_format)

    def build_inputs(self, requests: Sequence[CaptionRequest], mode: Mode, strict: bool = False, images=None):
        """Processor outputs (left-padded tensors on the device) for a batch of requests (images loaded if not given)."""
        chat = self.render_chat(self.prompt_text(mode, strict))
        images = images if images is not None else [self._load_image(r) for r in requests]
        inputs = self.processor(images=images, text=[chat] * len(requests), padding=True, return_tensors="pt")
        return inputs.to(self.device)

    def _generation_options(self) -> dict:
        tokenizer = self.processor.tokenizer
        options = {"max_new_tokens": self.max_new_tokens, "pad_token_id": tokenizer.pad_token_id}
        if self.temperature > 0:
            options.update(do_sample=True, temperature=self.temperature)
        else:
            options.update(do_sample=False)
        return options

    def generate_new_tokens(self, inputs) -> "list[list[int]]":
        """Generate, then keep only the tokens after the prompt, cut at the first end-of-sequence token."""
        import torch

        with torch.inference_mode():
            output = self.network.generate(**inputs, **self._generation_options())
        prompt_length = inputs["input_ids"].shape[1]  # left padding: every prompt ends at this column
        new_tokens = output[:, prompt_length:].tolist()
        return [self._cut_at_eos(row) for row in new_tokens]

    def _cut_at_eos(self, tokens: list[int]) -> list[int]:
        stops = self._stop_ids()
        for i, token in enumerate(tokens):
            if token in stops:
                return tokens[:i + 1]
        return tokens

    def _stop_ids(self) -> set[int]:
        config = getattr(self.network, "generation_config", None)
        eos = getattr(config, "eos_token_id", None) if config is not None else None
        if eos is None:
            eos = self.processor.tokenizer.eos_token_id
        ids = set(eos if isinstance(eos, (list, tuple)) else [eos] if eos is not None else [])
        return ids

    def answer_batch(self, requests: Sequence[CaptionRequest], mode: Mode = "variants", strict: bool = False) -> list[BackendAnswer]:
        """Raw model text (new tokens only) and token usage for each request, same order."""
        if mode not in MODES:
            raise ValueError(f"mode {mode!r} is not known; choose one of {', '.join(MODES)}")
        answers: list[BackendAnswer | None] = [None] * len(requests)
        images = {}
        for i, request in enumerate(requests):  # each file read on its own: a bad one is only its own failure
            try:
                images[i] = self._load_image(request)
            except ImageReadError as error:
                answers[i] = BackendAnswer(error=str(error))
        readable = sorted(images)
        for start in range(0, len(readable), self.batch_size):
            batch = readable[start:start + self.batch_size]
            inputs = self.build_inputs([requests[i] for i in batch], mode, strict, images=[images[i] for i in batch])
            prompt_tokens = inputs["attention_mask"].sum(dim=1).tolist()
            for i, tokens, n_prompt in zip(batch, self.generate_new_tokens(inputs), prompt_tokens):
                text = self.processor.tokenizer.decode(tokens, skip_special_tokens=True).strip()
                answers[i] = BackendAnswer(raw_text=text, usage={"prompt_tokens": int(n_prompt), "completion_tokens": len(tokens)})
        return answers
