"""Run parameters: YAML files in params/, validated by a pydantic schema.

A typo in a key or a bad value is an error that names it (and suggests the closest valid key).
The resolved parameters (defaults filled in) are written next to every run's outputs.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ..captioning.registry import BACKENDS_INFO, EXPECTED_TOKENS, backend_info, default_prices
from ..encoders.base import DEFAULT_TEXT_ENCODER
from ..encoders.cache import OVERWRITE_POLICIES
from ..metrics import DEFAULT_TIES, TIE_POLICIES
from ..paths import project_dir
from ..retrieval import POOLINGS as _POOLINGS
from ..scoring import FIELDS as _FIELDS
from ..scoring import GRANULARITIES as _GRANULARITIES
from ..scoring import IMAGE_QUERIES
from ..suggest import did_you_mean

POOLINGS = Literal[_POOLINGS]
FIELDS = Literal[_FIELDS]
GRANULARITIES = Literal[_GRANULARITIES]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True)


class DatasetParams(_Section):
    name: str = Field("rsicd", description="rsitmd | rsicd | smoke (generated) | any name with `annotations`")
    split: Literal["test", "train"] = "test"
    root: str | None = Field(None, description="store or mirror folder; null = the project store (data/)")
    source: str | None = Field(None, description="annotation source inside root: amfmn (default) or json (RSITMD)")
    annotations: str | None = Field(None, description="your own annotation file/folder (any supported format)")
    images_dir: str | None = None
    require_images: bool = Field(True, description="keep only images with pixels (RSICD: the AID-150 scenes)")
    limit_images: int | None = Field(None, ge=1, description="first N images per class order, for quick looks")


class CaptionerParams(_Section):
    backend: str = Field("neighbour", description="a captioning backend or corpus source of the registry "
                         "(rsrt_utils/captioning/registry.py): neighbour, openai-chat, openai-batch, transformers, "
                         "import, published, oracle")
    model: str | None = None
    options: dict = Field(default_factory=dict, description="backend options (base_url, k, temperature, ...)")
    concurrency: int = Field(8, ge=1, le=256)
    image_query: Literal[IMAGE_QUERIES] = Field(
        "variants", description="image->text query text: the image's own variants, or the backend's image-query prompt")
    corpus_path: str | None = Field(None, description="backend 'import': the corpus JSONL to import; a captioning "
                                    "backend: the corpus file to use and resume (default: the corpus's one location, "
                                    "which `rsrt caption` with the same settings also writes)")
    corpora: list[str] = Field(default_factory=list,
                               description="for backend 'published': registry names (llava, qwenvl); several = union")
    import_format: Literal["rsrt", "plain"] = "plain"

    @field_validator("backend")
    @classmethod
    def _known_backend(cls, value: str) -> str:
        backend_info(value)  # ValueError naming the known backends, with a "did you mean"
        return value
    prices: dict = Field(default_factory=lambda: {**default_prices(), "batch_discount": 0.5},
                         description="USD per million tokens {input_per_1m, output_per_1m}: when given, the estimate "
                                     "uses these; left out, the backend's own list prices in the captioning registry "
                                     "(the value recorded then is openai-chat's, as every run so far has recorded it)")
    expected_tokens: dict = Field(default_factory=lambda: dict(EXPECTED_TOKENS),
                                  description="tokens per image, for the cost estimate shown before a paid run")


class EncoderParams(_Section):
    spec: str = DEFAULT_TEXT_ENCODER
    cache_policy: Literal[OVERWRITE_POLICIES] = "only-missing"
    options: dict = Field(default_factory=dict)


class RetrievalParams(_Section):
    pooling: POOLINGS = "max"
    field: FIELDS = "all"
    n_variants: int = Field(5, ge=1, le=50, description="variants per image in the gallery (text->image)")
    n_query_variants: int | None = Field(None, ge=1, le=50,
                                         description="variants that stand for a query image (image->text); null = n_variants")
    granularity: GRANULARITIES = Field("paragraph", description="embed each variant whole, or each of its sentences")


class EvaluationParams(_Section):
    ties: Literal[TIE_POLICIES] = Field(
        DEFAULT_TIES, description="order of exactly tied scores: expected value under a random order (default), or worst/best case")
    n_boot: int = Field(1000, ge=1)
    seed: int = 0


class AuditParams(_Section):
    n_images: int = Field(30, ge=1)
    seed: int = 0
    filled_sheets: list[str] = Field(default_factory=list, description="filled scoring sheets (CSV) to summarise")


class AblationParams(_Section):
    enabled: bool = True
    n_variants: list[int] = Field(default_factory=lambda: [1, 3, 5])
    poolings: list[POOLINGS] = Field(default_factory=lambda: list(_POOLINGS))
    fields: list[FIELDS] = Field(default_factory=lambda: list(_FIELDS))
    granularities: list[GRANULARITIES] = Field(default_factory=lambda: list(_GRANULARITIES))
    fuse_with: list[str] = Field(default_factory=list,
                                 description="run names whose scores.npz to fuse with this run (RRF, z-score sum)")
    encoders: list[str] | Literal["offline", "offline-large"] = Field(
        "offline", description="offline: MiniLM, WordLlama, hashing; offline-large: also all-mpnet-base-v2; or a list")
    corpora: list[str] = Field(default_factory=list, description="extra corpus JSONL files to compare as captioners")
    include_oracle: bool = True


class ClipParams(_Section):
    enabled: bool = True
    backend: Literal["transformers", "open_clip"] = "transformers"
    model: str = "openai/clip-vit-base-patch32"
    pretrained: str | None = None
    batch_size: int = Field(64, ge=1)
    device: str = "cpu"
    fusion: bool = True


class RunParams(_Section):
    run_name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._=,+-]*$")
    description: str = ""
    dataset: DatasetParams = Field(default_factory=DatasetParams)
    captioner: CaptionerParams = Field(default_factory=CaptionerParams)
    encoder: EncoderParams = Field(default_factory=EncoderParams)
    retrieval: RetrievalParams = Field(default_factory=RetrievalParams)
    evaluation: EvaluationParams = Field(default_factory=EvaluationParams)
    audit: AuditParams = Field(default_factory=AuditParams)
    ablations: AblationParams = Field(default_factory=AblationParams)
    clip: ClipParams = Field(default_factory=ClipParams)
    notebooks: list[str] | None = Field(None, description="notebook name prefixes to run (default: all)")

    @model_validator(mode="after")
    def _check_captioner_options(self):
        """Backend option names and types (with "did you mean"), before anything is built or contacted."""
        from ..captioning.api import check_backend_options

        c = self.captioner
        info = backend_info(c.backend)
        if info.module and not info.study_corpus:
            check_backend_options(c.backend, {**({"model": c.model} if c.model else {}), **c.options})
        return self

    @model_validator(mode="after")
    def _check_published(self):
        c = self.captioner
        if not backend_info(c.backend).published_corpora:
            if c.corpora:
                readers = [n for n, info in BACKENDS_INFO.items() if info.published_corpora]
                raise ValueError(f"captioner.corpora is for backend {' or '.join(map(repr, readers))}, not {c.backend!r}")
            return self
        from ..data.published_corpora import PUBLISHED_CORPORA

        if not c.corpora:
            raise ValueError(f"captioner.backend 'published' needs captioner.corpora, e.g. [{', '.join(PUBLISHED_CORPORA)}]")
        unknown = [n for n in c.corpora if n not in PUBLISHED_CORPORA]
        if unknown or len(set(c.corpora)) != len(c.corpora):
            raise ValueError(f"captioner.corpora {c.corpora}: each must be one of {', '.join(PUBLISHED_CORPORA)}, once")
        if self.dataset.split != "test":
            raise ValueError("published corpora describe test images only; set dataset.split: test")
        if not backend_info(c.backend).structured and self.retrieval.field not in ("caption", "all"):
            raise ValueError(f"retrieval.field {self.retrieval.field!r}: published corpora are free-form descriptions "
                             "with no structured fields; use caption or all")
        return self

    def digest(self) -> str:
        """Short hash of the resolved parameters (a run is complete only for the same digest)."""
        return hashlib.sha256(json.dumps(self.model_dump(mode="json"), sort_keys=True).encode()).hexdigest()[:12]


class ParamsError(ValueError):
    """A params file that does not validate; the message names every bad key or value."""


def _known_keys(model: type[BaseModel], loc: tuple) -> list[str]:
    for part in loc[:-1]:
        field = model.model_fields.get(str(part))
        if field is None or not isinstance(field.annotation, type) or not issubclass(field.annotation, BaseModel):
            return []
        model = field.annotation
    return list(model.model_fields)


def _describe(error: dict, source: str) -> str:
    loc = tuple(error["loc"])
    where = ".".join(str(p) for p in loc)
    if error["type"] == "extra_forbidden":
        known = _known_keys(RunParams, loc)
        hint = did_you_mean(loc[-1], known) or f"; known keys: {', '.join(known)}"
        return f"{source}: {where}: unknown key{hint}"
    if not loc:  # a rule across sections: the message names the keys
        return f"{source}: {error['msg'].removeprefix('Value error, ')}"
    return f"{source}: {where}: {error['msg']} (got {error.get('input')!r})"


def parse_params(data: dict, source: str = "params") -> RunParams:
    try:
        return RunParams.model_validate(data)
    except ValidationError as exc:
        raise ParamsError("\n".join(_describe(e, source) for e in exc.errors())) from None


PACKAGED_PARAMS = Path(__file__).resolve().parent / "params"  # the study's params files, shipped with the package


def find_params(path: str | Path) -> Path:
    """A params file: as given, else relative to the project, else one the package ships ('params/default.yaml' or
    'default' work from any folder); ParamsError listing the shipped ones otherwise."""
    given = Path(path)
    project = project_dir()
    name = given.name if given.suffix else f"{given.name}.yaml"
    candidates = [given, *([project / given] if project and not given.is_absolute() else []),
                  *([PACKAGED_PARAMS / name] if given.parent in (Path("."), Path("params")) else [])]
    found = next((c for c in candidates if c.is_file()), None)
    if found is None:
        shipped = ", ".join(sorted(p.stem for p in PACKAGED_PARAMS.glob("*.yaml")))
        raise ParamsError(f"params file {path} does not exist; give a YAML file, or one the package ships: {shipped}")
    return found


def load_params(path: str | Path, overrides: dict | None = None) -> RunParams:
    """Read and validate a params YAML; `overrides` are dotted keys ('retrieval.pooling': 'mean')."""
    path = find_params(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ParamsError(f"{path}: not valid YAML ({exc}); quote values that contain ': '") from None
    if not isinstance(data, dict):
        raise ParamsError(f"{path}: the top level must be a mapping of keys, got {type(data).__name__}")
    for dotted, value in (overrides or {}).items():
        set_dotted(data, dotted, value)
    return parse_params(data, source=str(path))


def set_dotted(data: dict, dotted: str, value) -> None:
    keys = dotted.split(".")
    node = data
    for key in keys[:-1]:
        node = node.setdefault(key, {})
        if not isinstance(node, dict):
            raise ParamsError(f"override {dotted!r}: {key!r} is not a section")
    node[keys[-1]] = value


def dump_params(params: RunParams, path: Path) -> Path:
    """Write the resolved params as YAML, only when they differ from what the file holds (each notebook opens the run:
    the file keeps its time stamp while the parameters stay the same)."""
    text = yaml.safe_dump(params.model_dump(mode="json"), sort_keys=False)
    if not (path.is_file() and path.read_text(encoding="utf-8") == text):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return path
