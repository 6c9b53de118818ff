"""Which runtime and precision run the study's two small encoders fastest here, in the same run: all-MiniLM-L6-v2 on
real neighbour-captioner paragraphs (or generic English ones of the same length) and the EfficientNet-Lite0 multilayer
features of AID-150 images, each on PyTorch at float32 (the reference) and on every alternative that is installed:
ONNX Runtime at float32 (text: the graph fused by onnxruntime.transformers), PyTorch under bfloat16 autocast, ONNX
Runtime with int8 weights (text), OpenVINO (`pip install openvino`, not a dependency). Every row carries its rate,
its ratio to PyTorch and the minimum cosine of its vectors to PyTorch's. Images are timed end to end through
ImageFeatureExtractor (decoding included, no cache), as the study runs them. Writes benchmarks/results/encoders.json
with the machine (CPU model, cores, load before and after).

    python benchmarks/bench_encoders.py [--texts 512] [--images 512]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

PROJECT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT))
RESULTS = PROJECT / "benchmarks" / "results" / "encoders.json"
THREADS = 2
BATCH = 64
INPUTS = ("input_ids", "attention_mask", "token_type_ids")


def machine() -> dict:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    return {"cpu": cpu, "cpus": os.cpu_count(), "platform": platform.platform(), "load_1m": round(os.getloadavg()[0], 2)}


def paragraphs(n: int, corpus: Path | None = None) -> tuple[list[str], str]:
    """n paragraphs: the `caption` fields of a neighbour-captioner corpus when given, else about 131 words each of the
    project's generic English sentences (seeded); and where they came from."""
    if corpus:
        texts = [v["caption"] for line in corpus.read_text().splitlines() for v in json.loads(line).get("variants") or []]
        return texts[::max(1, len(texts) // n)][:n], f"neighbour paragraphs of {corpus.name}"
    words = (PROJECT / "benchmarks" / "generic_english.txt").read_text().split()
    rng = np.random.default_rng(0)
    return [" ".join(rng.choice(words, 131)) for _ in range(n)], "generic English, 131 words each"


def rate(function, items) -> tuple[np.ndarray, float]:
    """The function's output on every item and its rate (items per second) after a warm-up on the first batch."""
    function(items[:BATCH // 2])
    started = time.perf_counter()
    out = function(items)
    return out, round(len(items) / (time.perf_counter() - started), 1)


def min_cosine(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a / np.linalg.norm(a, axis=1, keepdims=True), b / np.linalg.norm(b, axis=1, keepdims=True)
    return round(float((a * b).sum(axis=1).min()), 6)


def installed(*modules: str) -> bool:
    return all(importlib.util.find_spec(m) is not None for m in modules)


def row(vectors: np.ndarray, speed: float, reference: np.ndarray, torch_rate: float, unit: str, precision: str) -> dict:
    return {unit: speed, "ratio": round(speed / torch_rate, 2), "min_cosine": min_cosine(reference, vectors),
            "precision": precision}


def ort_run(path: Path):
    from rsrt_utils.runtime import OnnxSession

    session = OnnxSession(path, THREADS)
    return lambda feeds: session.run(feeds)[0]


def openvino_run(path: Path):
    import openvino as ov

    compiled = ov.Core().compile_model(str(path), "CPU", {"INFERENCE_PRECISION_HINT": "f32",
                                                          "INFERENCE_NUM_THREADS": THREADS})
    return lambda feeds: compiled(feeds)[compiled.output(0)]


def export_text_graph(model, texts: list[str], work: Path) -> Path:
    """MiniLM's transformer (eager attention, so ONNX Runtime can fuse it) as ONNX, fused for BERT on the CPU."""
    import torch
    from onnxruntime.transformers.optimizer import optimize_model
    from sentence_transformers import SentenceTransformer

    from rsrt_utils.encoders.packaged_models import minilm_model_dir

    eager = SentenceTransformer(str(minilm_model_dir()), device="cpu", model_kwargs={"attn_implementation": "eager"})

    class Hidden(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, input_ids, attention_mask, token_type_ids):
            return self.inner(input_ids=input_ids, attention_mask=attention_mask,
                              token_type_ids=token_type_ids).last_hidden_state

    sample = model.tokenizer(texts[:2], padding=True, truncation=True, max_length=model.max_seq_length, return_tensors="pt")
    raw, fused = work / "minilm.onnx", work / "minilm-fused.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(Hidden(eager[0].auto_model.eval()), tuple(sample[k] for k in INPUTS), str(raw),
                          input_names=list(INPUTS), output_names=["hidden"],
                          dynamic_axes={k: {0: "batch", 1: "tokens"} for k in [*INPUTS, "hidden"]}, opset_version=17,
                          dynamo=False)
    config = eager[0].auto_model.config
    optimize_model(str(raw), model_type="bert", num_heads=config.num_attention_heads, hidden_size=config.hidden_size,
                   opt_level=1).save_model_to_file(str(fused))
    return fused


def mean_pooled(run, model):
    """Texts -> L2-normalised mean-pooled vectors through a runtime's `run(feeds) -> hidden states`, in length-sorted
    batches as sentence-transformers does."""
    def encode(texts: list[str]) -> np.ndarray:
        order = np.argsort([-len(t) for t in texts])
        out = np.zeros((len(texts), model.get_embedding_dimension()), dtype=np.float32)
        for start in range(0, len(order), BATCH):
            chosen = order[start:start + BATCH]
            feeds = model.tokenizer([texts[i] for i in chosen], padding=True, truncation=True,
                                    max_length=model.max_seq_length, return_tensors="np")
            hidden = run({k: feeds[k].astype(np.int64) for k in INPUTS})
            mask = feeds["attention_mask"][..., None].astype(np.float32)
            pooled = (hidden * mask).sum(axis=1) / np.clip(mask.sum(axis=1), 1e-9, None)
            out[chosen] = pooled / np.linalg.norm(pooled, axis=1, keepdims=True)
        return out
    return encode


def text_encoder_rates(texts: list[str], work: Path, source: str = "") -> dict:
    import torch

    from rsrt_utils.encoders import make_text_encoder

    torch.set_num_threads(THREADS)
    full = make_text_encoder("all-MiniLM-L6-v2", batch_size=BATCH)
    reference, torch_rate = rate(full.encode, texts)
    unit = "texts_per_s"
    rows = {"pytorch": {unit: torch_rate, "ratio": 1.0, "min_cosine": 1.0, "precision": "float32"}}
    rows["pytorch-bfloat16"] = row(*rate(make_text_encoder("all-MiniLM-L6-v2", batch_size=BATCH, precision="bfloat16").encode,
                                         texts), reference, torch_rate, unit, "bfloat16 autocast")
    if installed("onnxruntime", "onnx"):
        from onnxruntime.quantization import QuantType, quantize_dynamic

        graph = export_text_graph(full.model, texts, work)
        rows["onnxruntime"] = row(*rate(mean_pooled(ort_run(graph), full.model), texts), reference, torch_rate, unit, "float32")
        quantized = work / "minilm-int8.onnx"
        quantize_dynamic(str(work / "minilm.onnx"), str(quantized), weight_type=QuantType.QInt8, per_channel=True,
                         op_types_to_quantize=["MatMul"])
        rows["onnxruntime-int8"] = row(*rate(mean_pooled(ort_run(quantized), full.model), texts), reference, torch_rate,
                                       unit, "int8 weights (dynamic)")
        if installed("openvino"):
            rows["openvino"] = row(*rate(mean_pooled(openvino_run(work / "minilm.onnx"), full.model), texts), reference,
                                   torch_rate, unit, "float32")
    work_per_text = text_flops(full.model, texts)
    rows["pytorch"]["sustained_gflop_per_s"] = round(work_per_text["gflop_per_text"] * torch_rate, 1)
    return {"model": "all-MiniLM-L6-v2", "texts": len(texts), "source": source,
            "mean_words": round(float(np.mean([len(t.split()) for t in texts])), 1), **work_per_text, "runtimes": rows}


def text_flops(model, texts: list[str]) -> dict:
    """The mean token count of the texts and the float operations of one text through the encoder's layers (the
    matrix products: QKV and output projections, the feed-forward pair, and attention's two T x T products)."""
    config = model[0].auto_model.config
    tokens = float(np.mean([len(ids) for ids in model.tokenizer(texts, truncation=True,
                                                                  max_length=model.max_seq_length)["input_ids"]]))
    d, ff, layers = config.hidden_size, config.intermediate_size, config.num_hidden_layers
    flops = layers * (2 * tokens * d * 4 * d + 2 * tokens * d * ff * 2 + 2 * 2 * tokens * tokens * d)
    return {"mean_tokens": round(tokens, 1), "gflop_per_text": round(flops / 1e9, 2)}


def image_encoder_rates(n_images: int, work: Path) -> dict:
    from rsrt_utils.image_encoders.efficientnet import ImageFeatureExtractor
    from rsrt_utils.paths import shared_mirror_dir

    mirror = shared_mirror_dir()
    if mirror is None:
        return {"skipped": "the AID-150 images of ../shared/data are not here"}
    paths = sorted((mirror / "aid150" / "images").rglob("*.jpg"))[:n_images]
    unit, model = "images_per_s", "efficientnet-lite0-multilayer"

    def extract(**options):
        extractor = ImageFeatureExtractor(model, cache_root=work / "features", use_cache=False, progress=False,
                                          torch_threads=THREADS, **options)
        return extractor, lambda chosen: extractor.extract(chosen)

    _, on_torch = extract(runtime="pytorch")
    reference, torch_rate = rate(on_torch, paths)
    rows = {"pytorch": {unit: torch_rate, "ratio": 1.0, "min_cosine": 1.0, "precision": "float32"}}
    rows["pytorch-bfloat16"] = row(*rate(extract(runtime="pytorch", dtype="bfloat16")[1], paths), reference, torch_rate,
                                   unit, "bfloat16")
    if installed("onnxruntime", "onnx"):
        extractor, on_ort = extract(runtime="onnxruntime")
        rows["onnxruntime"] = row(*rate(on_ort, paths), reference, torch_rate, unit, "float32")
        if installed("openvino"):
            graph, run = extractor._onnx().path, None
            run = openvino_run(graph)
            pixels = np.stack([extractor.preprocessing.load(p) for p in paths])
            started = time.perf_counter()
            for i in range(0, len(pixels), BATCH):
                run({"pixels": pixels[i:i + BATCH]})
            model_only = round(len(pixels) / (time.perf_counter() - started), 1)
            rows["openvino"] = {"note": "the model alone (decoding excluded): not comparable with the rows above",
                                unit: model_only}
    return {"model": model, "images": len(paths), "input_px": 224,
            "note": "end to end through ImageFeatureExtractor: decoding, resizing and the model, no cache",
            "runtimes": rows}


def conclusion(record: dict) -> str:
    """Each encoder's fastest full-precision row (cosine >= 0.9999) and fastest row of any precision."""
    parts = []
    for key, unit in (("text_encoder", "texts_per_s"), ("image_encoder", "images_per_s")):
        rows = {n: r for n, r in record[key].get("runtimes", {}).items() if "ratio" in r}
        if not rows:
            continue
        full = max((n for n in rows if rows[n]["precision"] == "float32" and rows[n]["min_cosine"] >= 0.9999),
                   key=lambda n: rows[n][unit])
        fastest = max(rows, key=lambda n: rows[n][unit])
        parts.append(f"{record[key]['model']}: float32 fastest on {full} ({rows[full][unit]} {unit.split('_')[0]}/s, "
                     f"{rows[full]['ratio']}x PyTorch); any precision: {fastest} ({rows[fastest]['ratio']}x, "
                     f"{rows[fastest]['precision']}, min cosine {rows[fastest]['min_cosine']})")
    return "; ".join(parts)


RUNTIME_DISTRIBUTIONS = ("onnxruntime", "onnx", "ml_dtypes", "flatbuffers")  # what the runtime added to the core


def installed_size() -> dict:
    """The installed megabytes (10^6 bytes) of each distribution the runtime brought, and their sum."""
    from importlib import metadata

    sizes = {}
    for name in RUNTIME_DISTRIBUTIONS:
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        files = [Path(dist.locate_file(f)) for f in dist.files or []]
        sizes[f"{name}=={dist.version}"] = round(sum(f.stat().st_size for f in files if f.is_file()) / 1e6, 1)
    return {"distributions_mb": sizes, "total_mb": round(sum(sizes.values()), 1)}


def measure(n_texts: int, n_images: int, corpus: Path | None = None) -> dict:
    """Both encoders' rows and the machine before and after."""
    before = machine()
    texts, source = paragraphs(n_texts, corpus)
    with tempfile.TemporaryDirectory(prefix="rsrt-encoders-") as tmp:
        text = text_encoder_rates(texts, Path(tmp), source)
        image = image_encoder_rates(n_images, Path(tmp))
    record = {"question": "which runtime and precision run the study's encoders fastest here (same run, same threads)?",
              "command": "python benchmarks/bench_encoders.py", "threads": THREADS, "machine": before,
              "load_1m_after": round(os.getloadavg()[0], 2), "text_encoder": text, "image_encoder": image,
              "runtime_installed_size": installed_size(),
              "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    record["conclusion"] = conclusion(record)
    return record


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--texts", type=int, default=512)
    parser.add_argument("--images", type=int, default=512)
    parser.add_argument("--corpus", type=Path, help="a neighbour-captioner corpus (JSONL) whose paragraphs to embed")
    args = parser.parse_args()
    record = measure(args.texts, args.images, args.corpus)
    RESULTS.write_text(json.dumps(record, indent=1) + "\n")
    print(record["conclusion"])


if __name__ == "__main__":
    main()
