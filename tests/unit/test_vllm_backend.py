"""The vllm backend without a GPU: its whole Ray Data LLM configuration is built and validated, its pre- and
post-processing stages run on real images and on engine-shaped output rows, and the driver turns the generated texts
into corpus records with the runner's own parsing. What cannot run here: the vLLM engine itself (no GPU, no weights)."""

import base64
import io

import pytest
from PIL import Image

from rsrt_utils.captioning.api import build_backend
from rsrt_utils.captioning.images import build_requests
from rsrt_utils.captioning.prompts import prompt_for
from rsrt_utils.captioning.runner import request_key
from rsrt_utils.captioning.schema import CorpusRecord
from rsrt_utils.cli import main
from rsrt_utils.scaleout.vllm import _unsendable, records_of
from tests.fakes.openai_server import answer_text
from tests.fakes.synthetic_images import make_images

llm = pytest.importorskip("ray.data.llm", reason="ray[data] with aiohttp is needed to build the LLM processor")


@pytest.fixture
def backend():
    return build_backend({"backend": "vllm", "model": "Qwen/Qwen2.5-VL-7B-Instruct", "engines": 2, "batch_size": 8,
                          "tensor_parallel_size": 2, "max_model_len": 16384})


@pytest.fixture
def rows(tmp_path, backend):
    pairs = make_images(tmp_path / "img", 3)
    return [{"image_id": r.image_id, "path": str(r.image_path), "sha256": r.image_sha256,
             "key": request_key(backend, r, "variants")} for r in build_requests(pairs)]


def test_the_processor_configuration_is_valid_and_complete(backend):
    config = backend.processor_config()
    assert isinstance(config, llm.vLLMEngineProcessorConfig)
    assert (config.model_source, config.concurrency, config.batch_size) == ("Qwen/Qwen2.5-VL-7B-Instruct", 2, 8)
    assert config.engine_kwargs == {"tensor_parallel_size": 2, "max_model_len": 16384, "gpu_memory_utilization": 0.9,
                                    "limit_mm_per_prompt": {"image": 1}, "task_type": "generate"}
    assert config.should_continue_on_error, "one image's engine error becomes its failure record, not the run's end"
    # Assembling the processor starts Ray, so it is checked on the loopback cluster (tests/ray/ray_scenarios.py).


def test_preprocess_sends_the_projects_prompt_and_the_image(backend, rows):
    for mode, strict in (("variants", False), ("variants", True), ("image_query", False)):
        request = backend.preprocess(rows[0], mode=mode, strict=strict)
        text, image = request["messages"][0]["content"]
        assert text == {"type": "text", "text": prompt_for(mode, strict)}
        data = base64.b64decode(image["image_url"]["url"].removeprefix("data:image/jpeg;base64,"))
        assert Image.open(io.BytesIO(data)).size == Image.open(rows[0]["path"]).size
        assert request["sampling_params"]["max_tokens"] == 1800
        assert ("structured_outputs" in request["sampling_params"]) == (mode == "variants")
        assert {k: request[k] for k in ("image_id", "path", "sha256", "key")} == rows[0]


def engine_output(backend, row: dict, behaviour: str = "ok", error: str = "") -> dict:
    """What the engine stages hand to postprocess for a row (the generated text of a real prompt)."""
    body = backend.preprocess(row)
    return {**body, "generated_text": "" if error else answer_text(behaviour, body), "num_input_tokens": 812,
            "num_generated_tokens": 903, **({"__inference_error__": error} if error else {})}


def test_generated_texts_become_the_same_records_as_every_backend_writes(backend, rows):
    outputs = [backend.postprocess(engine_output(backend, rows[0])),
               backend.postprocess(engine_output(backend, rows[1], "malformed")),
               backend.postprocess(engine_output(backend, rows[2], error="CUDA out of memory"))]
    block, again = records_of(backend, outputs, "variants", strict=False, final=False)
    records = [CorpusRecord.model_validate_json(raw) for raw in block["record"]]
    assert [r["image_id"] for r in again] == [rows[1]["image_id"]], "a bad answer is asked again with the strict prompt"
    ok, failed = records
    assert ok.status == "ok" and len(ok.variants) == 5 and ok.cache_key == rows[0]["key"] and ok.backend == "vllm"
    assert ok.usage == {"prompt_tokens": 812, "completion_tokens": 903, "attempts": 1}
    assert failed.status == "failed" and "CUDA out of memory" in failed.error
    final, again = records_of(backend, again, "variants", strict=True, final=True)
    (retried,) = [CorpusRecord.model_validate_json(raw) for raw in final["record"]]
    assert not again and retried.status == "failed" and retried.error.startswith("bad answer")
    assert list(final["retries"]) == [1]


def test_an_image_that_cannot_be_sent_fails_alone_before_the_engines(backend, rows, tmp_path):
    missing = {**rows[0], "path": str(tmp_path / "gone.jpg"), "sha256": ""}
    good, block = _unsendable(backend, [missing, rows[1]], "variants")
    assert good == [rows[1]]
    (record,) = [CorpusRecord.model_validate_json(raw) for raw in block["record"]]
    assert record.status == "failed" and record.usage == {"attempts": 0}


def test_without_ray_the_vllm_backend_is_refused_before_any_work(tmp_path, capsys):
    make_images(tmp_path / "img", 1)
    code = main(["index", "build", str(tmp_path / "img"), "--name", "v", "--backend", "vllm", "--model", "m",
                 "--encoder", "hashing:64", "--quiet"])
    assert code == 2 and "runs on a Ray cluster: add --ray ADDRESS" in capsys.readouterr().err
