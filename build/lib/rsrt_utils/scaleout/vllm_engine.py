"""vLLM engines on a Ray cluster's GPU workers, through Ray Data's LLM processor (`ray.data.llm`): the project's
prompts, images sent as JPEG data URLs, and the same parsing, repair and schema validation as every backend (the
driver turns each generated text into a record with the corpus runner's own functions). It runs only with `--ray`
(`pip install 'rsrt[vllm]'`: Ray's LLM extra with vLLM; GPU workers with the model's weights)."""

from __future__ import annotations

from pathlib import Path

from ..captioning.backend import BackendAnswer, BackendFatalError, CaptionRequest
from ..captioning.images import DEFAULT_JPEG_QUALITY, jpeg_data_url
from ..captioning.prompts import PROMPT_VERSION, prompt_for

PASSED_THROUGH = ("image_id", "path", "sha256", "key")  # the columns a row keeps through the engine stages


class VLLMEngineBackend:
    """The settings of the engines and of generation; `processor_config`, `preprocess` and `postprocess` are what
    `ray.data.llm.build_processor` runs. `answer_batch` refuses: this backend runs on a Ray cluster."""

    name = "vllm"
    label = None
    needs_pixels = True

    def __init__(self, model: str, temperature: float = 0.3, max_tokens: int = 1800,
                 jpeg_quality: int = DEFAULT_JPEG_QUALITY, engines: int = 1, batch_size: int = 16,
                 tensor_parallel_size: int = 1, max_model_len: int = 8192, gpu_memory_utilization: float = 0.9,
                 accelerator_type: str | None = None, json_output: bool = True, engine_kwargs: dict | None = None):
        if not model:
            raise ValueError("the vllm backend needs --model (a Hugging Face id or a local folder on every GPU worker)")
        if engines < 1 or batch_size < 1 or tensor_parallel_size < 1 or max_tokens < 1:
            raise ValueError(f"engines ({engines}), batch_size ({batch_size}), tensor_parallel_size "
                             f"({tensor_parallel_size}) and max_tokens ({max_tokens}) must be at least 1")
        if not 0 < gpu_memory_utilization <= 1:
            raise ValueError(f"gpu_memory_utilization {gpu_memory_utilization} must be in (0, 1]")
        self.model, self.temperature, self.max_tokens = str(model), temperature, max_tokens
        self.jpeg_quality, self.json_output = jpeg_quality, json_output
        self.engines, self.batch_size = engines, batch_size
        self.engine_kwargs = {"tensor_parallel_size": tensor_parallel_size, "max_model_len": max_model_len,
                              "gpu_memory_utilization": gpu_memory_utilization, "limit_mm_per_prompt": {"image": 1},
                              **(engine_kwargs or {})}
        self.accelerator_type = accelerator_type
        self.prompt_version = PROMPT_VERSION

    @property
    def settings(self) -> dict:
        """Every setting that changes an answer (the cache key); engine sizing does not."""
        return {"temperature": self.temperature, "max_tokens": self.max_tokens, "jpeg_quality": self.jpeg_quality,
                "json_output": self.json_output, "engine": "vllm"}

    def processor_config(self):
        """The vLLMEngineProcessorConfig of `engines` engine replicas (imports ray.data.llm)."""
        from ray.data.llm import vLLMEngineProcessorConfig

        return vLLMEngineProcessorConfig(
            model_source=self.model, engine_kwargs=dict(self.engine_kwargs), concurrency=self.engines,
            batch_size=self.batch_size, accelerator_type=self.accelerator_type, should_continue_on_error=True,
            prepare_multimodal_stage={"enabled": True}, chat_template_stage={"enabled": True},
            tokenize_stage={"enabled": True}, detokenize_stage={"enabled": True})

    def sampling_params(self, mode: str) -> dict:
        params = {"temperature": self.temperature, "max_tokens": self.max_tokens}
        if mode == "variants" and self.json_output:
            params["structured_outputs"] = {"json_object": True}
        return params

    def preprocess(self, row: dict, mode: str = "variants", strict: bool = False) -> dict:
        """One image row -> the engine's chat request (the project's prompt and the image as a JPEG data URL)."""
        content = [{"type": "text", "text": prompt_for(mode, strict)},
                   {"type": "image_url", "image_url": {"url": jpeg_data_url(Path(row["path"]), self.jpeg_quality)}}]
        return {"messages": [{"role": "user", "content": content}], "sampling_params": self.sampling_params(mode),
                **{name: row[name] for name in PASSED_THROUGH}}

    @staticmethod
    def postprocess(row: dict) -> dict:
        """The engine's output row -> the image's columns, the generated text, token counts and any error."""
        error = row.get("__inference_error__")
        return {**{name: row[name] for name in PASSED_THROUGH}, "raw_text": row.get("generated_text") or "",
                "error": str(error) if error else "", "prompt_tokens": int(row.get("num_input_tokens") or 0),
                "completion_tokens": int(row.get("num_generated_tokens") or 0)}

    @staticmethod
    def answer_of(row: dict) -> BackendAnswer:
        """A postprocessed row as the runner's BackendAnswer."""
        if row.get("error"):
            return BackendAnswer(error=f"vLLM engine error: {row['error']}")
        usage = {"prompt_tokens": int(row.get("prompt_tokens") or 0), "completion_tokens": int(row.get("completion_tokens") or 0)}
        return BackendAnswer(raw_text=str(row.get("raw_text") or ""), usage=usage)

    def answer_batch(self, requests: list[CaptionRequest], mode: str, strict: bool = False) -> list[BackendAnswer]:
        raise BackendFatalError("the vllm backend runs vLLM engines on a Ray cluster's GPU workers: add --ray ADDRESS "
                                "(and install the extra: pip install 'rsrt[vllm]')")
