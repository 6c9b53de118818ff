"""Which inference runtime runs the study's two small encoders fastest here, at full precision: all-MiniLM-L6-v2 on
paragraphs like the neighbour captioner's (131 words) and the EfficientNet-Lite0 multilayer features of AID-150
images, each on PyTorch (the reference) and on ONNX Runtime and OpenVINO where they are installed, in the same run.
Writes benchmarks/results/encoders.json with the machine (CPU model, cores, load before and after).

    pip install onnx onnxruntime openvino   # the exporter and the runtimes to compare (none is a dependency yet)
    python benchmarks/bench_encoders.py [--texts 512] [--images 256]

Every runtime's vectors are compared with PyTorch's (minimum cosine over all items); the ONNX graphs are exported here
from the weights the packages carry (torch.onnx, opset 17) into a temporary folder."""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

PROJECT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT))
RESULTS = PROJECT / "benchmarks" / "results" / "encoders.json"
THREADS = 2


def machine() -> dict:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    return {"cpu": cpu, "cpus": os.cpu_count(), "platform": platform.platform(), "load_1m": os.getloadavg()[0]}


def paragraphs(n: int) -> list[str]:
    """n paragraphs of about 131 words from the project's generic English sentences (seeded)."""
    words = (PROJECT / "benchmarks" / "generic_english.txt").read_text().split()
    rng = np.random.default_rng(0)
    return [" ".join(rng.choice(words, 131)) for _ in range(n)]


def rate(function, items) -> tuple[np.ndarray, float]:
    started = time.perf_counter()
    out = function(items)
    return out, round(len(items) / (time.perf_counter() - started), 1)


def min_cosine(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a / np.linalg.norm(a, axis=1, keepdims=True), b / np.linalg.norm(b, axis=1, keepdims=True)
    return round(float((a * b).sum(axis=1).min()), 6)


def onnx_session(path: Path):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = THREADS
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return lambda feeds: session.run(None, feeds)[0]


def openvino_session(path: Path):
    import openvino as ov

    compiled = ov.Core().compile_model(str(path), "CPU", {"INFERENCE_PRECISION_HINT": "f32",
                                                          "INFERENCE_NUM_THREADS": THREADS})
    return lambda feeds: compiled(feeds)[compiled.output(0)]


RUNTIMES = {"onnxruntime": ("onnxruntime", onnx_session), "openvino": ("openvino", openvino_session)}


def runtime_rows(path: Path, encoder_of, items, reference: np.ndarray, torch_rate: float, unit: str) -> dict:
    """PyTorch's rate, then each installed runtime's on the exported graph: its rate, ratio and minimum cosine."""
    rows = {"pytorch": {unit: torch_rate, "ratio": 1.0, "min_cosine": 1.0}}
    for name, (module, session) in RUNTIMES.items():
        if importlib.util.find_spec(module) is None:
            rows[name] = {"skipped": f"{module} is not installed"}
            continue
        vectors, speed = rate(encoder_of(session(path)), items)
        rows[name] = {unit: speed, "ratio": round(speed / torch_rate, 2), "min_cosine": min_cosine(reference, vectors)}
    return rows


def text_encoder_rates(texts: list[str], work: Path) -> dict:
    import torch
    from sentence_transformers import SentenceTransformer

    from rsrt_utils.encoders.packaged_models import minilm_model_dir

    torch.set_num_threads(THREADS)
    model = SentenceTransformer(str(minilm_model_dir()), device="cpu")
    tokenizer, limit = model.tokenizer, model.max_seq_length
    reference, torch_rate = rate(lambda t: model.encode(t, batch_size=64, normalize_embeddings=True), texts)

    class Hidden(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, input_ids, attention_mask, token_type_ids):
            return self.inner(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids).last_hidden_state

    sample = tokenizer(texts[:2], padding=True, truncation=True, max_length=limit, return_tensors="pt")
    names = ["input_ids", "attention_mask", "token_type_ids"]
    path = work / "minilm.onnx"
    torch.onnx.export(Hidden(model[0].auto_model.eval()), tuple(sample[k] for k in names), str(path), input_names=names,
                      output_names=["hidden"], dynamic_axes={k: {0: "batch", 1: "tokens"} for k in [*names, "hidden"]},
                      opset_version=17, dynamo=False)

    def encode_with(run):
        def encode(batch_texts):
            order = np.argsort([-len(t) for t in batch_texts])  # length-sorted batches, as sentence-transformers does
            out = np.zeros((len(batch_texts), reference.shape[1]), dtype=np.float32)
            for start in range(0, len(order), 64):
                chosen = order[start:start + 64]
                feeds = tokenizer([batch_texts[i] for i in chosen], padding=True, truncation=True, max_length=limit,
                                  return_tensors="np")
                hidden = run({k: feeds[k].astype(np.int64) for k in names})
                mask = feeds["attention_mask"][..., None].astype(np.float32)
                pooled = (hidden * mask).sum(axis=1) / np.clip(mask.sum(axis=1), 1e-9, None)
                out[chosen] = pooled / np.linalg.norm(pooled, axis=1, keepdims=True)
            return out
        return encode

    rows = runtime_rows(path, encode_with, texts, reference, torch_rate, "texts_per_s")
    return {"model": "all-MiniLM-L6-v2", "texts": len(texts), "mean_words": 131, "runtimes": rows}


def batched(run, size: int = 32):
    """A runtime's features of every image, `size` at a time."""
    return lambda x: np.concatenate([run({"pixels": x[i:i + size]}) for i in range(0, len(x), size)])


def image_encoder_rates(n_images: int, work: Path) -> dict:
    import torch

    from rsrt_utils.image_encoders.efficientnet import ImageFeatureExtractor
    from rsrt_utils.paths import shared_mirror_dir

    mirror = shared_mirror_dir()
    if mirror is None:
        return {"skipped": "the AID-150 images of ../shared/data are not here"}
    paths = sorted((mirror / "aid150" / "images").rglob("*.jpg"))[:n_images]
    extractor = ImageFeatureExtractor("efficientnet-lite0-multilayer", cache_root=work / "features", torch_threads=THREADS)
    pixels = np.stack([extractor.preprocessing.load(p) for p in paths])
    reference, torch_rate = rate(lambda x: np.concatenate([extractor.encode_pixels(x[i:i + 32]) for i in range(0, len(x), 32)]),
                                 pixels)

    class Pooled(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.model = extractor._network().requires_grad_(False)  # a submodule: exported as weights, not constants

        def forward(self, x):
            parts = extractor._pooled_parts(self.model, x)
            parts = [torch.nn.functional.normalize(p, dim=1) / len(parts) ** 0.5 for p in parts]
            return torch.cat(parts, dim=1)

    path = work / "lite0.onnx"
    torch.onnx.export(Pooled().eval(), (torch.from_numpy(pixels[:2]),), str(path), input_names=["pixels"],
                      output_names=["features"], dynamic_axes={"pixels": {0: "batch"}, "features": {0: "batch"}},
                      opset_version=17, dynamo=False)
    rows = runtime_rows(path, batched, pixels, reference, torch_rate, "images_per_s")
    return {"model": "efficientnet-lite0-multilayer", "images": len(paths), "input_px": int(pixels.shape[-1]),
            "note": "decoding and resizing excluded: the model alone", "runtimes": rows}


def conclusion(record: dict) -> str:
    """The fastest runtime of each encoder and its ratio to PyTorch, at the cosine it keeps."""
    parts = []
    for key, unit in (("text_encoder", "texts_per_s"), ("image_encoder", "images_per_s")):
        runtimes = {n: r for n, r in record[key].get("runtimes", {}).items() if unit in r}
        if runtimes:
            best = max(runtimes, key=lambda n: runtimes[n][unit])
            parts.append(f"{record[key]['model']}: fastest {best} at {runtimes[best][unit]} {unit.split('_')[0]}/s "
                         f"({runtimes[best]['ratio']}x PyTorch, min cosine {runtimes[best]['min_cosine']})")
    return "; ".join(parts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--texts", type=int, default=512)
    parser.add_argument("--images", type=int, default=256)
    args = parser.parse_args()
    before = machine()
    with tempfile.TemporaryDirectory(prefix="rsrt-encoders-") as tmp:
        text = text_encoder_rates(paragraphs(args.texts), Path(tmp))
        image = image_encoder_rates(args.images, Path(tmp))
    record = {"question": "which runtime runs the study's encoders fastest here at full precision (same run, same threads)?",
              "command": "python benchmarks/bench_encoders.py", "threads": THREADS, "machine": before,
              "load_1m_after": os.getloadavg()[0], "text_encoder": text, "image_encoder": image,
              "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    record["conclusion"] = conclusion(record)
    RESULTS.write_text(json.dumps(record, indent=1) + "\n")
    print(json.dumps({"text": text["runtimes"], "image": image.get("runtimes", image)}, indent=1))


if __name__ == "__main__":
    main()
