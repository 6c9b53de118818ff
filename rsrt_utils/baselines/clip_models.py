"""CLIP-style dual encoders (OpenAI CLIP via transformers, RemoteCLIP/GeoRSCLIP via open_clip) for the zero-shot baseline.

A backend embeds images and texts with a frozen dual encoder and returns L2-normalised float32 rows.
Model specs:
  "openai/clip-vit-base-patch32"            transformers CLIPModel: a hub id (from the HF cache) ...
  "hf:/path/to/saved/clip"                  ... or a local folder saved with save_pretrained
  "open_clip:ViT-B-32@/path/RemoteCLIP-ViT-B-32.pt"   open_clip architecture + local checkpoint file
Everything loads offline by default; a model that cannot be found raises ClipModelLoadError naming
how to provide it. Image vectors are cached by (model identity, image sha256), text vectors by
(model identity, text), so reruns and interrupted runs only compute what is missing.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path
from typing import Iterator, Protocol, Sequence

import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from ..image_encoders.cache import file_sha256
from ..vectors import l2_normalise

DEFAULT_CLIP_MODEL = "openai/clip-vit-base-patch32"
DEFAULT_CANDIDATES = ("openai/clip-vit-base-patch32", "openai/clip-vit-base-patch16", "openai/clip-vit-large-patch14")
CLIP_MODEL_ENV = "RSRT_CLIP_MODEL"  # one or more model specs separated by ';'
HF_FILE_SUFFIXES = (".json", ".txt", ".safetensors", ".bin")
_HUB_BLOB_NAME = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")


class ClipModelLoadError(RuntimeError):
    """A CLIP model could not be loaded; the message says how to provide it."""


class ClipBackend(Protocol):
    """A frozen dual encoder. `name` identifies weights + preprocessing (it keys the caches)."""

    name: str
    dim: int

    def encode_images(self, images: Sequence[Image.Image], progress: bool = False) -> np.ndarray: ...

    def encode_texts(self, texts: Sequence[str], progress: bool = False) -> np.ndarray: ...


# ----------------------------------------------------------------------------- helpers

def resolve_device(device: str | None) -> str:
    """'cpu', 'cuda', 'cuda:N' or 'auto'/None (CUDA when available); errors name the bad value."""
    import torch

    if device in (None, "auto"):
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"device {device!r} is not a torch device; use 'cpu', 'cuda', 'cuda:0' or 'auto'") from exc
    if parsed.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} was requested but CUDA is not available here; use device='cpu'")
    return str(parsed)


def _batches(items: Sequence, size: int, progress: bool, desc: str) -> Iterator[Sequence]:
    starts = range(0, len(items), size)
    for start in tqdm(starts, desc=desc, unit="batch", disable=not progress or len(starts) < 2):
        yield items[start:start + size]


def _content_id(path: Path) -> str:
    """sha256 of a file; a Hugging Face hub blob is already named by its hash, so reuse that."""
    if path.is_symlink() and _HUB_BLOB_NAME.fullmatch(Path(os.readlink(path)).name):
        return Path(os.readlink(path)).name
    return file_sha256(path)


def fingerprint_files(files: Sequence[Path], extra: str = "") -> str:
    """Short hash of file names + contents (+ extra text): the model identity in cache keys."""
    digest = hashlib.sha256(extra.encode())
    for path in sorted(files, key=lambda p: p.name):
        digest.update(f"\x00{path.name}\x00{_content_id(path)}".encode())
    return digest.hexdigest()[:16]


def _short(exc: BaseException, limit: int = 300) -> str:
    text = f"{exc.__class__.__name__}: {exc}".replace("\n", " ")
    return text if len(text) <= limit else text[:limit] + " ..."


def _as_feature_tensor(output):
    """transformers <5 returns a tensor from get_*_features, >=5 an output whose pooler_output is projected."""
    if hasattr(output, "pooler_output"):
        return output.pooler_output
    if isinstance(output, (tuple, list)):
        return output[0]
    return output


# ----------------------------------------------------------------------------- transformers CLIP

def hf_cache_location() -> str:
    try:
        from huggingface_hub import constants
        return str(constants.HF_HUB_CACHE)
    except ImportError:  # pragma: no cover - transformers depends on huggingface_hub
        return "~/.cache/huggingface/hub"


def hf_offline_help(model: str, exc: BaseException) -> str:
    return (f"could not load the CLIP model {model!r} offline ({_short(exc)}). Provide it one of these ways: "
            f"(1) pass a local folder saved with save_pretrained (config.json, model.safetensors, tokenizer and "
            f"preprocessor files); (2) put it into the Hugging Face cache at {hf_cache_location()} (relocate with "
            f"HF_HOME or HF_HUB_CACHE), e.g. `hf download {model}` on a machine with network; (3) for RemoteCLIP / "
            f"GeoRSCLIP checkpoints use the open_clip spec 'open_clip:ViT-B-32@/path/to/checkpoint.pt' (a local "
            f"pretrained= file); or pass allow_download=True when online.")


def resolve_hf_model_dir(model: str, allow_download: bool = False) -> Path:
    """Local folder of a transformers CLIP: the path itself, or its snapshot in the HF cache."""
    path = Path(model).expanduser()
    if path.exists():
        if not (path / "config.json").is_file():
            raise ClipModelLoadError(f"{path} has no config.json, so it is not a saved transformers model; "
                                     "save one with CLIPModel.save_pretrained and CLIPProcessor.save_pretrained")
        return path
    try:
        from huggingface_hub import snapshot_download
        folder = snapshot_download(model, local_files_only=not allow_download,
                                   allow_patterns=[f"*{suffix}" for suffix in HF_FILE_SUFFIXES])
    except Exception as exc:  # noqa: BLE001 - re-raised with the fix
        raise ClipModelLoadError(hf_offline_help(model, exc)) from exc
    return Path(folder)


class HFClipBackend:
    """OpenAI-style CLIP through transformers (CLIPModel + CLIPProcessor), frozen, eval mode."""

    def __init__(self, model: str = DEFAULT_CLIP_MODEL, device: str | None = "cpu", batch_size: int = 64,
                 allow_download: bool = False):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.model_dir = resolve_hf_model_dir(model, allow_download)  # before the heavy imports: a missing model fails fast
        self.device = resolve_device(device)
        self.batch_size = batch_size
        import torch
        from transformers import CLIPModel, CLIPProcessor

        try:
            self.model = CLIPModel.from_pretrained(self.model_dir, local_files_only=True).to(self.device).eval()
            self.processor = CLIPProcessor.from_pretrained(self.model_dir, local_files_only=True)
        except Exception as exc:  # noqa: BLE001 - re-raised with the fix
            raise ClipModelLoadError(hf_offline_help(model, exc)) from exc
        self.dim = int(self.model.config.projection_dim)
        self.max_text_tokens = int(self.model.config.text_config.max_position_embeddings)
        files = [p for p in self.model_dir.iterdir() if p.is_file() and p.suffix in HF_FILE_SUFFIXES]
        processor_kind = type(self.processor.image_processor).__name__
        self.name = f"hf-clip:{model}@{fingerprint_files(files, extra=processor_kind)}"
        self._torch = torch

    def encode_images(self, images: Sequence[Image.Image], progress: bool = False) -> np.ndarray:
        chunks = []
        with self._torch.inference_mode():
            for batch in _batches(list(images), self.batch_size, progress, "CLIP images"):
                pixels = self.processor(images=list(batch), return_tensors="pt")["pixel_values"].to(self.device)
                features = _as_feature_tensor(self.model.get_image_features(pixel_values=pixels))
                chunks.append(features.float().cpu().numpy())
        return l2_normalise(np.concatenate(chunks)) if chunks else np.zeros((0, self.dim), dtype=np.float32)

    def encode_texts(self, texts: Sequence[str], progress: bool = False) -> np.ndarray:
        chunks = []
        with self._torch.inference_mode():
            for batch in _batches(list(texts), self.batch_size, progress, "CLIP texts"):
                tokens = self.processor.tokenizer(list(batch), padding=True, truncation=True,
                                                  max_length=self.max_text_tokens, return_tensors="pt").to(self.device)
                features = _as_feature_tensor(self.model.get_text_features(input_ids=tokens["input_ids"],
                                                                           attention_mask=tokens["attention_mask"]))
                chunks.append(features.float().cpu().numpy())
        return l2_normalise(np.concatenate(chunks)) if chunks else np.zeros((0, self.dim), dtype=np.float32)


# ----------------------------------------------------------------------------- open_clip (RemoteCLIP, GeoRSCLIP)

OPEN_CLIP_INSTALL_HINT = ("the open_clip backend needs the package open-clip-torch and a torchvision built for this "
                          "torch ({torch}): `pip install open-clip-torch torchvision==<the release matching torch "
                          "{torch}>` (see https://pytorch.org/get-started/previous-versions/), or `pip install "
                          "'rsrt[openclip]'`. Importing open_clip failed with: {error}")


def import_open_clip():
    """Import open_clip lazily; a missing or broken install (torchvision mismatch) gives the install fix."""
    try:
        import open_clip
    except Exception as exc:  # noqa: BLE001 - ImportError, or torchvision's RuntimeError on a mismatched build
        import torch
        raise ClipModelLoadError(OPEN_CLIP_INSTALL_HINT.format(torch=torch.__version__, error=_short(exc))) from exc
    return open_clip


class OpenClipBackend:
    """An open_clip model with weights from a local checkpoint (RemoteCLIP, GeoRSCLIP, OpenAI, LAION ...)."""

    def __init__(self, architecture: str, pretrained: str | Path, device: str | None = "cpu", batch_size: int = 64,
                 allow_download: bool = False):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        checkpoint = Path(pretrained).expanduser()
        if not checkpoint.is_file() and not allow_download:
            raise ClipModelLoadError(
                f"open_clip pretrained={str(pretrained)!r} is not a local file. Download the checkpoint (e.g. "
                f"RemoteCLIP-ViT-B-32.pt from chendelong/RemoteCLIP, RS5M_ViT-B-32.pt from Zilun/GeoRSCLIP) on a "
                f"machine with network and pass its path as 'open_clip:{architecture}@/path/to/file.pt', or pass "
                f"allow_download=True to let open_clip fetch a named pretrained tag.")
        open_clip = import_open_clip()
        import torch

        self.device = resolve_device(device)
        self.batch_size = batch_size
        source = str(checkpoint) if checkpoint.is_file() else str(pretrained)
        try:
            self.model, _, self.preprocess = open_clip.create_model_and_transforms(architecture, pretrained=source,
                                                                                   device=self.device)
            self.tokenizer = open_clip.get_tokenizer(architecture)
        except Exception as exc:  # noqa: BLE001 - re-raised with the fix
            raise ClipModelLoadError(
                f"open_clip could not build {architecture!r} with pretrained={source!r} ({_short(exc)}). Check that the "
                f"architecture matches the checkpoint (open_clip.list_models() lists names; RemoteCLIP/GeoRSCLIP "
                f"ViT-B/32 use 'ViT-B-32') and that the file is a complete download.") from exc
        self.model.eval()
        self.dim = int(getattr(self.model.visual, "output_dim", 0) or 0)
        identity = fingerprint_files([checkpoint]) if checkpoint.is_file() else str(pretrained)
        self.name = f"open_clip:{architecture}@{identity}"
        self._torch = torch

    def encode_images(self, images: Sequence[Image.Image], progress: bool = False) -> np.ndarray:
        chunks = []
        with self._torch.inference_mode():
            for batch in _batches(list(images), self.batch_size, progress, "open_clip images"):
                pixels = self._torch.stack([self.preprocess(image) for image in batch]).to(self.device)
                chunks.append(self.model.encode_image(pixels).float().cpu().numpy())
        return l2_normalise(np.concatenate(chunks)) if chunks else np.zeros((0, self.dim), dtype=np.float32)

    def encode_texts(self, texts: Sequence[str], progress: bool = False) -> np.ndarray:
        chunks = []
        with self._torch.inference_mode():
            for batch in _batches(list(texts), self.batch_size, progress, "open_clip texts"):
                tokens = self.tokenizer(list(batch)).to(self.device)
                chunks.append(self.model.encode_text(tokens).float().cpu().numpy())
        return l2_normalise(np.concatenate(chunks)) if chunks else np.zeros((0, self.dim), dtype=np.float32)


# ----------------------------------------------------------------------------- specs and discovery

def make_clip_backend(spec: str, device: str | None = "cpu", batch_size: int = 64, allow_download: bool = False):
    """Build a backend from a spec: 'open_clip:<arch>@<file>', 'hf:<id or path>' or a bare hub id / path."""
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError(f"CLIP model spec must be a non-empty string, got {spec!r}; e.g. {DEFAULT_CLIP_MODEL!r}")
    kind, _, rest = spec.partition(":")
    if kind == "open_clip":
        architecture, _, pretrained = rest.partition("@")
        if not architecture or not pretrained:
            raise ValueError(f"open_clip spec {spec!r} needs an architecture and a checkpoint: "
                             "'open_clip:ViT-B-32@/path/to/RemoteCLIP-ViT-B-32.pt'")
        return OpenClipBackend(architecture, pretrained, device, batch_size, allow_download)
    model = rest if kind == "hf" else spec
    return HFClipBackend(model, device, batch_size, allow_download)


def candidate_clip_specs(candidates: Sequence[str] | None = None) -> list[str]:
    """The given specs, or RSRT_CLIP_MODEL's specs (';'-separated) followed by the OpenAI hub ids."""
    if candidates is not None:
        return list(candidates)
    from_env = [s.strip() for s in os.environ.get(CLIP_MODEL_ENV, "").split(";") if s.strip()]
    return list(dict.fromkeys(from_env + list(DEFAULT_CANDIDATES)))


def probe_clip_models(candidates: Sequence[str] | None = None, device: str | None = "cpu") -> list[dict]:
    """Try each candidate offline (load + embed one image and one text); report spec, ok, name or error."""
    report = []
    for spec in candidate_clip_specs(candidates):
        try:
            backend = make_clip_backend(spec, device=device)
            backend.encode_images([Image.new("RGB", (64, 64), (90, 120, 80))])
            backend.encode_texts(["a river beside green farmland"])
            report.append({"spec": spec, "ok": True, "name": backend.name, "error": ""})
            del backend
        except Exception as exc:  # noqa: BLE001 - a probe reports, it does not raise
            report.append({"spec": spec, "ok": False, "name": "", "error": _short(exc, 600)})
    return report


def loadable_clip_models(candidates: Sequence[str] | None = None, device: str | None = "cpu") -> list[str]:
    """Specs of the candidate CLIP models that load and run offline here (often none on this machine)."""
    return [row["spec"] for row in probe_clip_models(candidates, device) if row["ok"]]


# ----------------------------------------------------------------------------- the text tower as a text encoder

class ClipTextEncoder:
    """The text tower as a TextEncoder (`name`, `encode`), so the shared text cache can wrap it."""

    def __init__(self, backend: ClipBackend):
        self.backend = backend
        self.name = f"clip-text|{backend.name}"

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        return self.backend.encode_texts(texts)


def _byte_symbols() -> list[str]:
    """GPT-2/CLIP byte-to-unicode table: the 256 base symbols of a byte-level BPE vocabulary."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    extra = [b for b in range(256) if b not in printable]
    codes = {b: chr(b) for b in printable} | {b: chr(256 + n) for n, b in enumerate(extra)}
    return [codes[b] for b in range(256)]


def write_tiny_bpe_files(folder: Path, merges: Sequence[tuple[str, str]] = (("t", "h"), ("th", "e</w>"))) -> dict[str, int]:
    """Write vocab.json and merges.txt of a minimal CLIP BPE tokenizer (bytes + a few merges); return the vocab."""
    symbols = _byte_symbols()
    tokens = symbols + [s + "</w>" for s in symbols] + ["".join(pair) for pair in merges]
    tokens += ["<|startoftext|>", "<|endoftext|>"]
    vocab = {token: i for i, token in enumerate(dict.fromkeys(tokens))}
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
    (folder / "merges.txt").write_text("#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges), encoding="utf-8")
    return vocab


def save_tiny_random_clip(folder: Path | str, seed: int = 0, image_size: int = 32, patch_size: int = 8,
                          hidden_size: int = 32, num_layers: int = 2, projection_dim: int = 16) -> Path:
    """Save a randomly initialised tiny CLIP + processor (no download). For tests and benchmarks, not retrieval."""
    import torch
    from transformers import CLIPConfig, CLIPModel, CLIPProcessor, CLIPTokenizer

    try:
        from transformers import CLIPImageProcessorPil as ImageProcessor
    except ImportError:  # transformers < 5
        from transformers import CLIPImageProcessor as ImageProcessor

    folder = Path(folder)
    vocab = write_tiny_bpe_files(folder)
    tokenizer = CLIPTokenizer.from_pretrained(folder)
    tower = dict(hidden_size=hidden_size, intermediate_size=2 * hidden_size, num_hidden_layers=num_layers,
                 num_attention_heads=4)
    config = CLIPConfig(
        text_config=dict(tower, vocab_size=len(vocab), max_position_embeddings=77, bos_token_id=vocab["<|startoftext|>"],
                         eos_token_id=vocab["<|endoftext|>"], pad_token_id=vocab["<|endoftext|>"]),
        vision_config=dict(tower, image_size=image_size, patch_size=patch_size),
        projection_dim=projection_dim)
    torch.manual_seed(seed)
    model = CLIPModel(config).eval()
    image_processor = ImageProcessor(size={"shortest_edge": image_size},
                                     crop_size={"height": image_size, "width": image_size})
    model.save_pretrained(folder)
    CLIPProcessor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(folder)
    return folder
