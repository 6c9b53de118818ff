"""CLIP baseline: a tiny randomly initialised CLIP saved to tmp_path (no download), the image cache, the metrics path."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from rsrt_utils.baselines import clip_models as clip_module
from rsrt_utils.baselines.clip import run_clip_baseline
from rsrt_utils.baselines.clip_models import (
    ClipModelLoadError,
    HFClipBackend,
    OpenClipBackend,
    loadable_clip_models,
    make_clip_backend,
    resolve_device,
    save_tiny_random_clip,
)
from rsrt_utils.data import Dataset, ImageRecord
from rsrt_utils.image_encoders.cache import CachedImageEncoder
from rsrt_utils.metrics import evaluate_scores


def _open_clip_import_error() -> str | None:
    try:
        importlib.import_module("open_clip")
    except Exception as exc:  # noqa: BLE001 - torchvision mismatches raise RuntimeError
        return f"open_clip cannot be imported here ({exc.__class__.__name__}); install open-clip-torch with a matching torchvision"
    return None


OPEN_CLIP_MISSING = _open_clip_import_error()


@pytest.fixture(scope="module")
def tiny_clip_dir(tmp_path_factory):
    return save_tiny_random_clip(tmp_path_factory.mktemp("tiny_clip"), seed=0)


@pytest.fixture(scope="module")
def backend(tiny_clip_dir):
    return HFClipBackend(str(tiny_clip_dir), device="cpu", batch_size=4)


def _random_images(n: int, seed: int = 0) -> list[Image.Image]:
    rng = np.random.default_rng(seed)
    sizes = [(40, 48), (32, 32), (64, 50), (33, 70)]
    return [Image.fromarray(rng.integers(0, 256, size=(*sizes[i % 4], 3), dtype=np.uint8)) for i in range(n)]


def _write_images(folder, images) -> list:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, image in enumerate(images):
        paths.append(folder / f"scene_{i}.png")
        image.save(paths[-1])
    return paths


class CountingBackend:
    """Delegates to a real backend and counts the images and texts it is asked to embed."""

    def __init__(self, inner, fail_after_images: int | None = None):
        self.inner, self.name, self.dim = inner, inner.name, inner.dim
        self.image_calls = self.images_seen = self.texts_seen = 0
        self.fail_after_images = fail_after_images

    def encode_images(self, images, progress=False):
        if self.fail_after_images is not None and self.images_seen >= self.fail_after_images:
            raise KeyboardInterrupt("simulated interruption")
        self.image_calls += 1
        self.images_seen += len(images)
        return self.inner.encode_images(images)

    def encode_texts(self, texts, progress=False):
        self.texts_seen += len(texts)
        return self.inner.encode_texts(texts)


# ----------------------------------------------------------------------------- embeddings

def test_embeddings_have_the_projection_shape_and_unit_norm(backend):
    images = backend.encode_images(_random_images(6))
    texts = backend.encode_texts(["the river", "a dense residential area with many buildings", "x"])
    assert images.shape == (6, 16) and texts.shape == (3, 16)
    assert images.dtype == np.float32 and texts.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(images, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(texts, axis=1), 1.0, atol=1e-5)
    assert not np.allclose(images[0], images[1]), "different images must not embed identically"


def test_batching_gives_the_same_vectors_as_one_by_one(tiny_clip_dir, backend):
    one_by_one = HFClipBackend(str(tiny_clip_dir), batch_size=1)
    images = _random_images(7, seed=1)
    texts = ["the", "a large airport with two runways", "green farmland beside a river and a road", "x y"]
    np.testing.assert_allclose(backend.encode_images(images), one_by_one.encode_images(images), atol=1e-5)
    np.testing.assert_allclose(backend.encode_texts(texts), one_by_one.encode_texts(texts), atol=1e-5)


def test_same_weights_give_the_same_model_identity(tiny_clip_dir, backend, tmp_path):
    assert HFClipBackend(str(tiny_clip_dir)).name == backend.name
    other = HFClipBackend(str(save_tiny_random_clip(tmp_path / "other", seed=1)))
    assert other.name.split("@")[1] != backend.name.split("@")[1], "other weights must key another cache"


# ----------------------------------------------------------------------------- image cache

def test_image_cache_hits_on_the_second_run(backend, tmp_path):
    paths = _write_images(tmp_path / "images", _random_images(5))
    paths.append(tmp_path / "images" / "copy.png")
    paths[-1].write_bytes(paths[0].read_bytes())  # same content: embedded once
    first = CountingBackend(backend)
    cold = CachedImageEncoder(first, tmp_path / "cache", write_batch=2, progress=False).encode_paths(paths)
    assert first.images_seen == 5 and first.image_calls == 3
    second = CountingBackend(backend)
    encoder = CachedImageEncoder(second, tmp_path / "cache", progress=False)
    warm = encoder.encode_paths(paths)
    assert second.image_calls == 0 and encoder.last_stats == {"images": 6, "unique": 5, "computed": 0, "unreadable": 0}
    np.testing.assert_array_equal(cold, warm)
    np.testing.assert_array_equal(warm[0], warm[5])
    np.testing.assert_allclose(warm, backend.encode_images([Image.open(p).convert("RGB") for p in paths]), atol=1e-6)


def test_image_cache_resumes_after_an_interruption_and_tracks_content(backend, tmp_path):
    paths = _write_images(tmp_path / "images", _random_images(6))
    interrupted = CountingBackend(backend, fail_after_images=4)
    with pytest.raises(KeyboardInterrupt):
        CachedImageEncoder(interrupted, tmp_path / "cache", write_batch=2, progress=False).encode_paths(paths)
    resumed = CountingBackend(backend)
    CachedImageEncoder(resumed, tmp_path / "cache", write_batch=2, progress=False).encode_paths(paths)
    assert resumed.images_seen == 2, "only the batch lost to the interruption is recomputed"
    _random_images(7, seed=9)[6].save(paths[3])  # new pixels under an old name
    changed = CountingBackend(backend)
    CachedImageEncoder(changed, tmp_path / "cache", progress=False).encode_paths(paths)
    assert changed.images_seen == 1


def test_image_cache_policy_never_refuses_to_compute(backend, tmp_path):
    paths = _write_images(tmp_path / "images", _random_images(2))
    with pytest.raises(RuntimeError, match="policy is 'never'"):
        CachedImageEncoder(backend, tmp_path / "cache", policy="never", progress=False).encode_paths(paths)


# ----------------------------------------------------------------------------- the baseline through the shared metrics

def _dataset(paths, captions_per_image: list[list[str]], classes: list[str]) -> Dataset:
    images = [ImageRecord(p.name, c, "test", p) for p, c in zip(paths, classes)]
    captions = [c for group in captions_per_image for c in group]
    index = [i for i, group in enumerate(captions_per_image) for _ in group]
    return Dataset("toy", "test", images, captions, np.asarray(index))


def test_run_clip_baseline_scores_with_evaluate_scores(backend, tmp_path):
    paths = _write_images(tmp_path / "images", _random_images(4))
    groups = [["the river", "a river"], ["an airport", "planes"], ["the farmland"], ["a port", "ships", "the sea"]]
    dataset = _dataset(paths, groups, ["river", "airport", "farmland", "port"])
    result = run_clip_baseline(dataset, backend, cache_root=tmp_path / "cache", n_boot=50, progress=False)
    images = backend.encode_images([Image.open(p).convert("RGB") for p in paths])
    captions = backend.encode_texts(dataset.captions)
    expected_t2i = captions @ images.T
    np.testing.assert_allclose(result["t2i_scores"], expected_t2i, atol=1e-5)
    np.testing.assert_array_equal(result["i2t_scores"], result["t2i_scores"].T)
    expected = evaluate_scores(result["t2i_scores"], result["i2t_scores"], dataset.caption_image_index,
                               dataset.image_classes, n_boot=50)
    assert result["metrics"] == expected
    assert result["cache"]["images"]["computed"] == 4 and result["cache"]["texts"]["computed"] == 8
    again = run_clip_baseline(dataset, backend, cache_root=tmp_path / "cache", n_boot=50, progress=False)
    assert again["cache"]["images"]["computed"] == 0 and again["cache"]["texts"]["computed"] == 0
    uncached = run_clip_baseline(dataset, backend, use_cache=False, n_boot=50, progress=False)
    np.testing.assert_allclose(uncached["t2i_scores"], result["t2i_scores"], atol=1e-5)


class ConstructedBackend:
    """Image i (solid red level 10*i) embeds as e_i; caption 'to <j>' embeds as e_j: retrieval is fixed by hand."""

    name, dim = "constructed", 8

    def encode_images(self, images, progress=False):
        return np.eye(self.dim, dtype=np.float32)[[image.getpixel((0, 0))[0] // 10 for image in images]]

    def encode_texts(self, texts, progress=False):
        return np.eye(self.dim, dtype=np.float32)[[int(t.split()[1]) for t in texts]]


def test_constructed_embeddings_give_the_hand_computed_recalls(tmp_path):
    paths = _write_images(tmp_path / "images", [Image.new("RGB", (8, 8), (10 * i, 0, 0)) for i in range(4)])
    # image 0's captions point to image 1 (misses), every other caption points to its own image
    groups = [["to 1", "to 1 again"], ["to 1 a"], ["to 2 a", "to 2 b"], ["to 3"]]
    dataset = _dataset(paths, groups, ["a", "b", "b", "c"])
    result = run_clip_baseline(dataset, ConstructedBackend(), use_cache=False, n_boot=20, progress=False, ties="pessimistic")
    metrics = result["metrics"]
    # t2i: 2 of 6 captions miss at R@1 (image 0 ties with 2 others at score 0, pessimistic rank 3 -> hit at R@5)
    assert metrics["t2i"] == {"R@1": round(4 / 6 * 100, 2), "R@5": 100.0, "R@10": 100.0}
    # i2t: image 0 scores 0 against all 6 captions -> pessimistic rank 6 - 2 = 4 (miss at R@1, hit at R@5);
    # image 1's caption ties with image 0's two captions at 1 -> rank 2 (miss at R@1); images 2 and 3 hit at R@1
    assert metrics["i2t"] == {"R@1": 50.0, "R@5": 100.0, "R@10": 100.0}
    assert metrics == evaluate_scores(result["t2i_scores"], result["i2t_scores"], dataset.caption_image_index,
                                      dataset.image_classes, n_boot=20, ties="pessimistic")
    assert {row["scene_class"] for row in metrics["per_class"]} == {"a", "b", "c"}
    # random tie order (the default): image 0 draws one of its 2 captions first among 6 tied with prob 2/6,
    # image 1's own caption comes first among 3 tied with prob 1/3; images 2 and 3 hit
    default = run_clip_baseline(dataset, ConstructedBackend(), use_cache=False, n_boot=20, progress=False)["metrics"]
    assert default["i2t"]["R@1"] == round((1 / 3 + 1 / 3 + 1 + 1) / 4 * 100, 2)
    assert default["t2i"] == metrics["t2i"]


def test_images_without_pixels_are_refused_with_the_fix(backend, tmp_path):
    paths = _write_images(tmp_path / "images", _random_images(1))
    dataset = Dataset("toy", "test", [ImageRecord("a.jpg", "a", "test", paths[0]), ImageRecord("00012.jpg", "x", "test")],
                      ["one", "two"], np.array([0, 1]))
    with pytest.raises(ValueError, match=r"with_images\(\)"):
        run_clip_baseline(dataset, backend, use_cache=False, progress=False)


# ----------------------------------------------------------------------------- loading, errors, discovery

def test_a_model_missing_offline_names_how_to_provide_it(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ClipModelLoadError) as caught:
        make_clip_backend("no-such-org/no-such-clip-model")
    message = str(caught.value)
    for fix in ("local folder", "HF_HOME", "open_clip:ViT-B-32@", "allow_download=True"):
        assert fix in message
    assert caught.value.__cause__ is not None, "the underlying error must stay chained"


def test_a_folder_that_is_not_a_saved_model_is_refused(tmp_path):
    with pytest.raises(ClipModelLoadError, match="no config.json"):
        make_clip_backend(f"hf:{tmp_path}")


def test_a_broken_checkpoint_is_wrapped_not_a_bare_traceback(tiny_clip_dir, tmp_path):
    broken = tmp_path / "broken"
    broken.mkdir()
    for item in tiny_clip_dir.iterdir():
        (broken / item.name).write_bytes(item.read_bytes())
    (broken / "model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(ClipModelLoadError, match="could not load the CLIP model"):
        HFClipBackend(str(broken))


def test_bad_specs_and_devices_name_the_bad_value():
    with pytest.raises(ValueError, match="needs an architecture and a checkpoint"):
        make_clip_backend("open_clip:ViT-B-32")
    with pytest.raises(ValueError, match="'not-a-device'"):
        resolve_device("not-a-device")
    import torch
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            resolve_device("cuda")


def test_loadable_clip_models_keeps_only_what_loads(tiny_clip_dir, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert loadable_clip_models([str(tiny_clip_dir), "no-such-org/no-such-clip-model"]) == [str(tiny_clip_dir)]
    monkeypatch.setenv(clip_module.CLIP_MODEL_ENV, f"hf:{tiny_clip_dir};no-such-org/other")
    assert clip_module.candidate_clip_specs()[:2] == [f"hf:{tiny_clip_dir}", "no-such-org/other"]


@pytest.mark.skipif(OPEN_CLIP_MISSING is None, reason="open_clip is installed: the missing-package message cannot be tested")
def test_missing_open_clip_gives_the_install_command(tmp_path):
    checkpoint = tmp_path / "RemoteCLIP-ViT-B-32.pt"
    checkpoint.write_bytes(b"placeholder")
    with pytest.raises(ClipModelLoadError, match="pip install open-clip-torch"):
        make_clip_backend(f"open_clip:ViT-B-32@{checkpoint}")


def test_open_clip_needs_a_local_checkpoint_offline():
    with pytest.raises(ClipModelLoadError, match="not a local file"):
        OpenClipBackend("ViT-B-32", "/no/such/RemoteCLIP-ViT-B-32.pt")


@pytest.mark.skipif(OPEN_CLIP_MISSING is not None, reason=OPEN_CLIP_MISSING or "")
def test_open_clip_backend_loads_a_local_checkpoint(tmp_path):
    import open_clip
    import torch

    model = open_clip.create_model("ViT-B-32", pretrained=None)
    checkpoint = tmp_path / "random-ViT-B-32.pt"
    torch.save(model.state_dict(), checkpoint)
    backend = OpenClipBackend("ViT-B-32", checkpoint, batch_size=2)
    images, texts = backend.encode_images(_random_images(3)), backend.encode_texts(["a river", "an airport"])
    assert images.shape == (3, 512) and texts.shape == (2, 512)
    np.testing.assert_allclose(np.linalg.norm(images, axis=1), 1.0, atol=1e-5)


def test_published_figures_are_quoted_with_sources():
    from rsrt_utils.literature import published_clip_figures

    table = published_clip_figures()
    clip = table[(table.system == "CLIP") & (table.backbone == "ViT-B/32")].set_index("dataset")
    assert clip.loc["RSITMD", "mR"] == 24.19 and clip.loc["RSICD", "mR"] == 15.74
    assert clip.loc["RSITMD", "t2i R@10"] == 43.19
    assert 23.86 in set(table.loc[table.system.str.contains("TRSLLaVA"), "mR"])
    assert {"GeoRSCLIP", "RemoteCLIP"} <= set(table.system)
    assert (table.status == "quoted, not measured").all() and table.source.str.len().gt(0).all()


def test_a_missing_model_fails_before_torch_or_the_clip_code_is_imported(tmp_path):
    code = ("import sys\nfrom rsrt_utils.baselines.clip_models import ClipModelLoadError, make_clip_backend\n"
            "try:\n    make_clip_backend('openai/clip-vit-base-patch32')\nexcept ClipModelLoadError:\n    pass\n"
            "print(sorted(m for m in ('torch', 'transformers.models.clip.modeling_clip') if m in sys.modules))")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "[]"
