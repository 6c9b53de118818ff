"""`make_caption_backend(config)`: one factory for every captioning backend, with errors that name the fix."""

from __future__ import annotations

import difflib
import importlib
import inspect

from .backend import CaptionBackend

BACKENDS = ("openai-chat", "openai-batch", "transformers", "neighbour", "import")
_CLASSES = {
    "openai-chat": ("rsrt_utils.captioning.openai_chat", "OpenAIChatBackend"),
    "openai-batch": ("rsrt_utils.captioning.openai_batch", "OpenAIBatchBackend"),
    "transformers": ("rsrt_utils.captioning.transformers_vlm", "TransformersVLMBackend"),
    "neighbour": ("rsrt_utils.captioning.neighbour", "NeighbourCaptioner"),
    "import": ("rsrt_utils.captioning.importer", "ImportedCorpusBackend"),
}


def _did_you_mean(value: str, choices) -> str:
    close = difflib.get_close_matches(str(value), list(choices), n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


def check_openai_model(model: str, base_url: str | None) -> None:
    """On OpenAI itself (no base_url) the model must be a known vision model; any name goes on other servers."""
    from .openai_chat import KNOWN_OPENAI_VISION_MODELS

    if base_url or model in KNOWN_OPENAI_VISION_MODELS:
        return
    raise ValueError(f"model {model!r} is not a known OpenAI vision model{_did_you_mean(model, KNOWN_OPENAI_VISION_MODELS)} "
                     f"(known: {', '.join(KNOWN_OPENAI_VISION_MODELS)}; for another OpenAI-compatible server "
                     f"also give base_url)")


def _load_class(backend: str):
    module_name, class_name = _CLASSES[backend]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        if error.name == module_name:
            raise ValueError(f"backend {backend!r} is not available: module {module_name} is missing") from None
        raise
    return getattr(module, class_name)


def _check_options(cls, backend: str, options: dict) -> None:
    parameters = inspect.signature(cls.__init__).parameters
    required = [n for n, p in parameters.items() if n != "self" and p.default is inspect.Parameter.empty
                and p.kind not in (inspect.Parameter.VAR_KEYWORD, inspect.Parameter.VAR_POSITIONAL)]
    missing = [name for name in required if name not in options]
    if missing:
        raise ValueError(f"backend {backend!r} needs option(s) {', '.join(map(repr, missing))}; "
                         f"add them to the caption config")
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()) and backend != "openai-batch":
        return
    accepted = [n for n in parameters if n != "self" and parameters[n].kind is not inspect.Parameter.VAR_KEYWORD]
    if backend == "openai-batch":
        accepted += [n for n in inspect.signature(cls.__mro__[1].__init__).parameters if n not in ("self", "sleep")]
    unknown = [name for name in options if name not in accepted]
    if unknown:
        raise ValueError(f"option(s) {', '.join(map(repr, unknown))} not accepted by backend {backend!r}"
                         f"{_did_you_mean(unknown[0], accepted)} (accepted: {', '.join(sorted(set(accepted)))})")


def make_caption_backend(config: dict) -> CaptionBackend:
    """Build a backend from {"backend": one of BACKENDS, **options}; the options go to its constructor."""
    if not isinstance(config, dict) or "backend" not in config:
        raise ValueError(f"caption backend config needs a 'backend' key (one of {', '.join(BACKENDS)}); got {config!r}")
    options = dict(config)
    backend = options.pop("backend")
    if backend not in BACKENDS:
        raise ValueError(f"caption backend {backend!r} is not known{_did_you_mean(backend, BACKENDS)} "
                         f"(choose one of {', '.join(BACKENDS)})")
    if backend in ("openai-chat", "openai-batch"):
        check_openai_model(options.get("model", "gpt-4.1"), options.get("base_url"))
    cls = _load_class(backend)
    _check_options(cls, backend, options)
    return cls(**options)


def check_base_url(base_url: str | None) -> None:
    """An OpenAI-compatible server address must be an http(s) URL with a host (credentials are never echoed)."""
    from urllib.parse import urlsplit

    if base_url is None:
        return
    parts = urlsplit(str(base_url))
    if parts.scheme not in ("http", "https") or not parts.hostname:
        shown = f"{parts.scheme}://{parts.hostname or ''}{parts.path}" if parts.scheme else str(base_url).split("@")[-1]
        raise ValueError(f"base_url {shown!r} is not an http(s) URL with a host; give e.g. http://localhost:8000/v1")


def check_backend_options(backend: str, options: dict) -> None:
    """Check a backend's option names (and the OpenAI model and base_url) without building it: nothing is loaded
    or contacted, so a typo is reported before any work starts."""
    if backend not in BACKENDS:
        raise ValueError(f"caption backend {backend!r} is not known{_did_you_mean(backend, BACKENDS)} "
                         f"(choose one of {', '.join(BACKENDS)})")
    if backend in ("openai-chat", "openai-batch"):
        check_base_url(options.get("base_url"))
        check_openai_model(options.get("model", "gpt-4.1"), options.get("base_url"))
    cls = _load_class(backend)
    parameters = inspect.signature(cls.__init__).parameters
    accepted = [n for n in parameters if n != "self" and parameters[n].kind is not inspect.Parameter.VAR_KEYWORD]
    if backend == "openai-batch":
        accepted += [n for n in inspect.signature(cls.__mro__[1].__init__).parameters if n not in ("self", "sleep")]
    elif any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return
    unknown = [name for name in options if name not in accepted]
    if unknown:
        raise ValueError(f"option(s) {', '.join(map(repr, unknown))} not accepted by backend {backend!r}"
                         f"{_did_you_mean(unknown[0], accepted)} (accepted: {', '.join(sorted(set(accepted)))})")
