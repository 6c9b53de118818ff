"""`build_backend(config, context)`: the one way every caller (the study, `rsrt caption`, `rsrt index build`) builds a
captioning backend of the registry, with typed options checked before anything is built, resources (the neighbour
bank) built by the registry's hook, and errors that name the fix. `make_caption_backend` builds from ready options."""

from __future__ import annotations

import importlib
import inspect
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable

from pydantic import ConfigDict, TypeAdapter, ValidationError, create_model

from ..suggest import did_you_mean
from .backend import CaptionBackend
from .registry import BACKENDS_INFO, backend_info, load_hook

_INTERNAL = ("self", "sleep")  # constructor arguments that are not user options


def check_base_url(base_url: str | list[str] | None) -> None:
    """An OpenAI-compatible server address (or each of a fleet's) must be an http(s) URL with a host (the message shows
    it through the one redaction: credentials are never echoed, malformed URLs included)."""
    from urllib.parse import urlsplit

    from ..logsafe import redact

    if base_url is None:
        return
    if isinstance(base_url, (list, tuple)):
        if not base_url:
            raise ValueError("base_url is an empty list; give one or more server addresses")
        for url in base_url:
            check_base_url(url)
        return
    parts = urlsplit(str(base_url))
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"base_url {redact(str(base_url))!r} is not an http(s) URL with a host; give e.g. http://localhost:8000/v1")


def _check_known(backend: str) -> None:
    if not backend_info(backend).module:
        objects = [name for name, info in BACKENDS_INFO.items() if info.module]
        raise ValueError(f"{backend!r} is a corpus source of the study (captioner.backend in a params file), not a "
                         f"captioning backend; choose one of {', '.join(objects)}")


def _load_class(backend: str):
    info = BACKENDS_INFO[backend]
    try:
        module = importlib.import_module(info.module)
    except ModuleNotFoundError as error:
        if error.name == info.module:
            raise ValueError(f"backend {backend!r} is not available: module {info.module} is missing") from None
        raise
    return getattr(module, info.class_name)


def _plain_type(hint) -> Any:
    """The annotation if pydantic can check it, else Any (objects such as a TrainBank are checked by the class)."""
    try:
        TypeAdapter(hint)
        return hint
    except Exception:  # noqa: BLE001 - any annotation pydantic cannot build a schema for
        return Any


def _annotation(annotation, namespace: dict) -> Any:
    """A parameter's annotation, resolved in its module, as a type pydantic can check (else Any)."""
    if annotation is inspect.Parameter.empty:
        return Any
    try:
        hint = eval(annotation, dict(namespace)) if isinstance(annotation, str) else annotation  # noqa: S307 - own code
    except Exception:  # noqa: BLE001 - a name only known to type checkers
        return Any
    return Any if isinstance(hint, str) else _plain_type(hint)


def _parameters(cls, with_base: bool) -> dict[str, tuple[Any, Any]]:
    """name -> (type, default or ...) of a backend's constructor (with_base: also its base class's, as openai-batch
    takes the chat backend's)."""
    fields = {}
    for klass in ([cls, cls.__mro__[1]] if with_base else [cls]):
        namespace = vars(inspect.getmodule(klass))
        for name, p in inspect.signature(klass.__init__).parameters.items():
            if name in _INTERNAL or p.kind in (p.VAR_KEYWORD, p.VAR_POSITIONAL) or name in fields:
                continue
            default = ... if p.default is inspect.Parameter.empty else p.default
            fields[name] = (_annotation(p.annotation, namespace), default)
    return fields


@lru_cache(maxsize=None)
def options_model(backend: str):
    """A pydantic model of the backend's options (names, types, defaults) built from its constructor."""
    _check_known(backend)
    cls = _load_class(backend)
    config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)
    return create_model(f"{cls.__name__}Options", __config__=config,
                        **_parameters(cls, BACKENDS_INFO[backend].options_from_base))


def check_backend_options(backend: str, options: dict, require_all: bool = False) -> None:
    """Check a backend's option names and types (and the OpenAI model and base_url) without building it: nothing is
    loaded or contacted, so a typo is reported before any work starts. require_all: also every required option."""
    _check_known(backend)
    info = BACKENDS_INFO[backend]
    check_base_url(options.get("base_url"))
    if info.check_model:
        default_model = info.pricing.default_model if info.pricing else None
        load_hook(info.check_model)(options.get("model", default_model), options.get("base_url") or None)
    model = options_model(backend)
    accepted = sorted(model.model_fields)
    unknown = [name for name in options if name not in model.model_fields]
    if unknown:
        raise ValueError(f"option(s) {', '.join(map(repr, unknown))} not accepted by backend {backend!r}"
                         f"{did_you_mean(unknown[0], accepted)} (accepted: {', '.join(accepted)})")
    missing = [n for n, f in model.model_fields.items() if f.is_required() and n not in options]
    if require_all and missing:
        raise ValueError(f"backend {backend!r} needs option(s) {', '.join(map(repr, missing))}; add them to the caption config")
    try:
        model.model_validate({**{n: None for n in missing}, **options} if not require_all else options)
    except ValidationError as error:
        wrong = [e for e in error.errors() if e["loc"] and e["loc"][0] not in missing]
        if wrong:
            e = wrong[0]
            raise ValueError(f"option {e['loc'][0]!r} of backend {backend!r}: {e['msg']} "
                             f"(got a {type(e.get('input')).__name__})") from None


def make_caption_backend(config: dict) -> CaptionBackend:
    """Build a backend from {"backend": <a registry name>, **options}; the options go to its constructor as they are."""
    if not isinstance(config, dict) or "backend" not in config:
        raise ValueError(f"caption backend config needs a 'backend' key (one of {', '.join(BACKENDS_INFO)}); got {config!r}")
    options = dict(config)
    backend = options.pop("backend")
    check_backend_options(backend, options, require_all=True)
    return _load_class(backend)(**options)


@dataclass
class BackendContext:
    """What a backend's resources are built from: the dataset whose TRAIN split is the neighbour bank by default, the
    store holding it (or a loader of the split, as the study's params configure it) and the study's text encoder."""

    dataset: str = "rsicd"
    data_root: Path | None = None
    split_source: dict | None = None  # load_dataset's keyword arguments for `dataset` as the caller reads it (plain)
    load_train: Callable[[], Any] | None = None
    text_encoder: Any = None


def check_required(config: dict) -> None:
    """Every option the registry says the backend needs is given; else an error naming the command-line option."""
    from .registry import COMMAND_METAVARS, COMMAND_OPTIONS

    info = backend_info(config.get("backend"))
    option_of = {key: option for option, key in COMMAND_OPTIONS.items()}
    missing = [key for key in info.required if not config.get(key)]
    if missing:
        flags = [f"--{option_of.get(k, k).replace('_', '-')} {COMMAND_METAVARS.get(option_of.get(k, k), 'VALUE')}"
                 for k in missing]
        raise ValueError(f"backend {info.name!r} needs {', '.join(flags)} ({', '.join(missing)} in a caption config)")


def checked_config(config: dict) -> dict:
    """A backend config checked before any work (known backend, required and accepted options, the registry's cheap
    `prepare` check), completed with its defaults; nothing is loaded or contacted."""
    if not isinstance(config, dict) or "backend" not in config:
        raise ValueError(f"caption backend config needs a 'backend' key (one of {', '.join(BACKENDS_INFO)}); got {config!r}")
    info = backend_info(config["backend"])
    _check_known(info.name)
    check_required(config)
    if info.prepare:
        config = load_hook(info.prepare)(dict(config))
    check_backend_options(info.name, {k: v for k, v in config.items() if k != "backend"})
    return config


def build_backend(config: dict, context: BackendContext | None = None) -> CaptionBackend:
    """The backend of a config (plain values: names, paths, numbers), its resources built by the registry's hook."""
    options = checked_config(config)
    info = backend_info(options["backend"])
    if info.resources:
        options = load_hook(info.resources)(options, context or BackendContext())
    return make_caption_backend(options)
