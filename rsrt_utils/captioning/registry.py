"""The captioning backends, described once: class, whether they cost money and at what prices (with their source),
the environment variable their key comes from, how a model name is checked, what they need (a Ray cluster, the
pixels), which command-line options apply, how their resources (the neighbour bank) are built and the retrieval field
their variants are embedded by. The factory (api.py), the params schema, every command, the engines, the study's
corpus step and the collections read this; adding a backend = its module + one entry here (docs/contributing.md)."""

from __future__ import annotations

from dataclasses import dataclass, replace

# Command-line options a backend may take (`rsrt caption` and `rsrt index build` alike) -> the config key they set.
COMMAND_OPTIONS = {"model": "model", "base_url": "base_url", "concurrency": "concurrency", "corpus": "path",
                   "corpus_format": "format"}
COMMAND_METAVARS = {"model": "MODEL", "base_url": "URL", "concurrency": "N", "corpus": "FILE", "corpus_format": "FORMAT"}


@dataclass(frozen=True)
class Pricing:
    """What a paid backend costs: USD per million tokens by model (list prices on `as_of`, from `source`; check the
    provider's page before a paid run), the model priced when none is given, and a discount that applies to all."""

    per_model: dict[str, dict[str, float]]
    default_model: str
    source: str
    as_of: str
    discount: float = 0.0  # e.g. the Batch API's 0.5

    def prices(self, model: str | None = None) -> dict | None:
        """{"input_per_1m", "output_per_1m"} of `model` (default: the default model), None when it is not priced."""
        found = self.per_model.get(model or self.default_model)
        return dict(found) if found else None


@dataclass(frozen=True)
class BackendInfo:
    """One backend: where its class lives and what kind of work it does."""

    name: str
    module: str | None               # None: a corpus source of the study only (no backend object)
    class_name: str | None
    paid: bool                       # calls a priced API (a cost estimate is shown first)
    captions_images: bool            # describes pixels (False: reads an existing corpus)
    summary: str
    command_options: tuple[str, ...] = ("model",)  # keys of COMMAND_OPTIONS that apply to it
    required: tuple[str, ...] = ()   # config keys that must be given (each names its command-line option)
    prepare: str | None = None       # "module:function" (config) -> config checked and completed, cheap, before any work
    resources: str | None = None     # "module:function" (config, BackendContext) -> config with objects built
    retrieval_field: str = "all"     # the variant field its descriptions are embedded by (as the study's runs)
    structured: bool = True          # writes structured variants (False: free-form descriptions, caption/all only)
    study_corpus: bool = False       # the study reads its corpus instead of captioning (study.corpus_sources builds it)
    needs_ray: bool = False          # runs only on a Ray cluster (--ray)
    pricing: Pricing | None = None   # paid backends: prices by model and their source
    key_variable: str | None = None  # the environment variable its API key is read from (api_key_env overrides it)
    check_model: str | None = None   # "module:function" (model, base_url) -> None or ValueError, before any work
    own_server: bool = False         # with base_url it talks to a server of your own: its prices and models are yours
    options_from_base: bool = False  # its constructor takes its base class's options too (openai-batch: the chat's)
    extra: str | None = None         # the optional install it needs (pip install 'rsrt[EXTRA]'); None: the core
    ray_processor: bool = False      # on Ray it runs as a Ray Data LLM processor (vLLM engines), not in caption actors
    human_captions: bool = False     # its "descriptions" are the benchmark's own captions (the oracle, a ceiling)
    published_corpora: bool = False  # it reads the published VLM corpora named by captioner.corpora

    @property
    def in_collections(self) -> bool:
        """Whether `rsrt index build` can use it (a backend object exists)."""
        return self.module is not None


DEFAULT_OPENAI_MODEL = "gpt-4.1"  # the paper's captioner
OPENAI_PRICING = Pricing({"gpt-4.1": {"input_per_1m": 2.0, "output_per_1m": 8.0}}, DEFAULT_OPENAI_MODEL,
                         source="https://openai.com/api/pricing/", as_of="2025-04")
_PAID_OPTIONS = ("model", "base_url", "concurrency")
_OPENAI = {"key_variable": "OPENAI_API_KEY", "check_model": "rsrt_utils.captioning.openai_chat:check_openai_model",
           "own_server": True}
BACKENDS_INFO = {info.name: info for info in (
    BackendInfo("openai-chat", "rsrt_utils.captioning.openai_chat", "OpenAIChatBackend", True, True,
                "OpenAI chat completions (or any OpenAI-compatible server with base_url)", _PAID_OPTIONS,
                pricing=OPENAI_PRICING, **_OPENAI),
    BackendInfo("openai-batch", "rsrt_utils.captioning.openai_batch", "OpenAIBatchBackend", True, True,
                "OpenAI Batch API: half price, results within 24 h", _PAID_OPTIONS, options_from_base=True,
                pricing=replace(OPENAI_PRICING, discount=0.5), **_OPENAI),
    BackendInfo("transformers", "rsrt_utils.captioning.transformers_vlm", "TransformersVLMBackend", False, True,
                "a local Hugging Face vision-language model", required=("model",), extra="local-vlm"),
    BackendInfo("vllm", "rsrt_utils.scaleout.vllm_engine", "VLLMEngineBackend", False, True,
                "vLLM engines on a Ray cluster's GPU workers (ray.data.llm; --ray; pip install 'rsrt[vllm]')",
                required=("model",), needs_ray=True, extra="vllm", ray_processor=True),
    BackendInfo("neighbour", "rsrt_utils.captioning.neighbour", "NeighbourCaptioner", False, True,
                "caption transfer from the train split's nearest images (uses in-domain train captions; not zero-shot)",
                command_options=(), prepare="rsrt_utils.captioning.neighbour:check_bank_option",
                resources="rsrt_utils.captioning.neighbour:neighbour_resources",
                retrieval_field="caption"),
    BackendInfo("import", "rsrt_utils.captioning.importer", "ImportedCorpusBackend", False, False,
                "an existing corpus JSONL", command_options=("model", "corpus", "corpus_format"), required=("path",),
                prepare="rsrt_utils.captioning.importer:check_import_config",
                study_corpus=True),
    BackendInfo("published", None, None, False, False,
                "published VLM descriptions of the benchmark's test images (captioner.corpora)", command_options=(),
                structured=False, study_corpus=True, published_corpora=True),
    BackendInfo("oracle", None, None, False, False,
                "the human captions themselves, leave-one-out (a ceiling)", command_options=(),
                study_corpus=True, human_captions=True),
)}
BACKENDS = tuple(name for name, info in BACKENDS_INFO.items() if info.module)  # those with a backend object
STUDY_BACKENDS = tuple(BACKENDS_INFO)                                          # what captioner.backend may name
PAID_BACKENDS = tuple(b.name for b in BACKENDS_INFO.values() if b.paid)
CAPTIONING_BACKENDS = tuple(b.name for b in BACKENDS_INFO.values() if b.captions_images)

# Per image: prompt (~250) + one high-detail tile for a small image (~255); five variants (~900).
EXPECTED_TOKENS = {"input": 550, "output": 1000}


def default_prices(backend: str = "openai-chat", model: str | None = None) -> dict:
    """A paid backend's prices of `model` (default: its default model), a copy params may change; {} when unpriced."""
    pricing = backend_info(backend).pricing
    return (pricing.prices(model) or {}) if pricing else {}


def priced(backend: str, base_url=None) -> Pricing | None:
    """The pricing that applies to a run: the backend's, unless it talks to a server of your own (base_url)."""
    info = backend_info(backend)
    return None if info.pricing is None or (info.own_server and base_url) else info.pricing


def backend_info(name: str) -> BackendInfo:
    """The entry of a backend; ValueError naming the known ones (with a "did you mean")."""
    from ..suggest import did_you_mean

    if name not in BACKENDS_INFO:
        raise ValueError(f"caption backend {name!r} is not known{did_you_mean(name, BACKENDS_INFO)} "
                         f"(choose one of {', '.join(BACKENDS_INFO)})")
    return BACKENDS_INFO[name]


def load_hook(reference: str):
    """The function a "module:function" reference names."""
    import importlib

    module, _, function = reference.partition(":")
    return getattr(importlib.import_module(module), function)
