"""docs/contributing.md, proven: a new captioning backend is its module + one registry entry, a new paid HTTP backend
the same with its prices and key variable, a new benchmark dataset its record + its checksum table, a metric one entry,
a web page a template + a route + a menu entry; nothing else is touched, and every command and the study use them."""

import hashlib

import pytest
from PIL import Image

from rsrt_utils.captioning.registry import BACKENDS_INFO, BackendInfo
from rsrt_utils.cli import main
from rsrt_utils.data import load_dataset, validation_report
from rsrt_utils.data import sources as data_sources
from rsrt_utils.data.registry import DATASETS_INFO, BenchmarkDataset
from rsrt_utils.data.store import import_from_folder, is_complete
from rsrt_utils.search.collection import Collection
from rsrt_utils.study import pipeline
from rsrt_utils.study.params import ParamsError, parse_params

# The whole new backend: one module (file 1 of 2).
TOY_BACKEND = '''
"""A toy captioning backend: describes an image by its mean colour (the contributing guide's worked example)."""
from PIL import Image

from rsrt_utils.captioning.backend import BackendAnswer
from rsrt_utils.captioning.schema import Variant

COLOURS = {"red": (200, 30, 30), "green": (30, 160, 40), "blue": (30, 60, 200)}


class ToyBackend:
    name, prompt_version, label = "toy", "toy-v1", "toy: colour names only"

    def __init__(self, model: str = "mean-colour", detail: int = 1):
        self.model, self.settings = model, {"detail": detail}

    def answer_batch(self, requests, mode, strict=False):
        return [BackendAnswer(variants=self._variants(r.image_path)) for r in requests]

    def _variants(self, path):
        rgb = Image.open(path).convert("RGB").resize((1, 1)).getpixel((0, 0))
        colour = min(COLOURS, key=lambda c: sum((a - b) ** 2 for a, b in zip(COLOURS[c], rgb)))
        return [Variant(one_sentence=f"A {colour} field.", feature=f"{colour} everywhere {k}",
                        caption=f"The image is mostly {colour}, seen from above, view {k}.") for k in range(5)]
'''


@pytest.fixture
def toy_backend(tmp_path, monkeypatch):
    """The module on the path and its registry entry (file 2 of 2: one entry in captioning/registry.py)."""
    (tmp_path / "toy_backend.py").write_text(TOY_BACKEND, encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(BACKENDS_INFO, "toy", BackendInfo("toy", "toy_backend", "ToyBackend", False, True,
                                                          "mean colour as text", command_options=("model",)))
    monkeypatch.setenv("RSRT_INDEX_DIR", str(tmp_path / "indexes"))
    monkeypatch.setenv("RSRT_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path


def test_a_new_backend_is_one_module_and_one_registry_entry(toy_backend, capsys):
    images = toy_backend / "images"
    images.mkdir()
    for colour, rgb in (("red", (210, 20, 20)), ("green", (20, 170, 30)), ("blue", (20, 50, 210))):
        Image.new("RGB", (16, 16), rgb).save(images / f"{colour}.png")
    build = ["index", "build", str(images), "--name", "colours", "--backend", "toy", "--encoder", "hashing:512", "--quiet"]
    assert main(build) == 0
    hits = Collection.open("colours").search_text("a mostly green field", k=1)
    assert hits[0].image_id == "green.png"
    assert main(build + ["--model", "other"]) == 2  # its options are checked like any backend's
    assert "--rebuild" in capsys.readouterr().err
    assert main(build[:-3] + ["--base-url", "http://127.0.0.1:1/v1", "--quiet"]) == 2
    with_url = " or ".join(n for n, info in BACKENDS_INFO.items() if "base_url" in info.command_options)
    assert f"--base-url is for --backend {with_url}, not 'toy'" in capsys.readouterr().err

    params = parse_params({"run_name": "toy-run", "captioner": {"backend": "toy", "options": {"detail": 2}}})
    run = pipeline.StudyRun(params, toy_backend / "run")
    backend = pipeline.make_backend(run)
    assert (backend.name, backend.settings) == ("toy", {"detail": 2})
    with pytest.raises(ParamsError, match="did you mean 'detail'"):
        parse_params({"run_name": "toy-run", "captioner": {"backend": "toy", "options": {"detial": 2}}})


def _write_amfmn(folder, split: str, images: dict[str, list[str]]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{split}_caps.txt").write_text("".join(c + "\n" for caps in images.values() for c in caps))
    (folder / f"{split}_filename.txt").write_text("".join(name + "\n" for name in images))


def test_a_new_dataset_is_one_record_and_one_checksum_table(tmp_path, monkeypatch):
    mirror, checksums = tmp_path / "mirror", tmp_path / "checksums"
    test = {f"{c}_{i}.jpg": [f"a {c} scene number {i} seen from above {k}" for k in range(5)]
            for c in ("farmland", "harbor") for i in range(3)}
    train = {f"{c}_{i}.jpg": [f"{c} {i} caption {k}" for k in range(5)] for c in ("farmland", "harbor") for i in range(3, 7)}
    _write_amfmn(mirror / "toyset" / "precomp", "test", test)
    _write_amfmn(mirror / "toyset" / "precomp", "train", train)
    files = tuple(f"toyset/precomp/{s}_{k}.txt" for s in ("test", "train") for k in ("caps", "filename"))
    # File 1 of 2: the dataset's record in data/registry.py.
    record = BenchmarkDataset("toyset", {"amfmn": "toyset/precomp"}, ("toyset",), 6, 30, "none in the store", files,
                              upstream=(("toyset/precomp/", "someone/toyset@" + "1" * 40, "data/"),),
                              published_mr={"CLIP ViT-B/32": 12.5})
    monkeypatch.setitem(DATASETS_INFO, "toyset", record)
    # File 2 of 2: its checksum table, data/checksums/toyset.tsv (relpath, sha256, bytes).
    checksums.mkdir()
    rows = [f"{rel}\t{hashlib.sha256((mirror / rel).read_bytes()).hexdigest()}\t{(mirror / rel).stat().st_size}"
            for rel in files]
    (checksums / "toyset.tsv").write_text("relpath\tsha256\tbytes\n" + "\n".join(rows) + "\n")
    monkeypatch.setattr(data_sources, "CHECKSUM_DIR", checksums)
    monkeypatch.setenv("RSRT_DATA_DIR", str(tmp_path / "store"))

    assert data_sources.source_files("toyset")[0].url() == \
        f"https://raw.githubusercontent.com/someone/toyset/{'1' * 40}/data/test_caps.txt"
    import_from_folder(mirror, ["toyset"], progress=False)
    assert is_complete("toyset")
    dataset = load_dataset("toyset", "test")
    assert (dataset.n_images, len(dataset.captions)) == (6, 30)
    assert validation_report(dataset)["matches_standard"] is True
    from rsrt_utils.literature import published_mr
    assert published_mr("CLIP ViT-B/32", "toyset") == 12.5

    (mirror / files[0]).write_text("a different file\n")  # the checksum table guards the import
    with pytest.raises(Exception, match="sha256"):
        import_from_folder(mirror, ["toyset"], store=tmp_path / "store2", progress=False)
    params = parse_params({"run_name": "toy", "dataset": {"name": "toyset", "require_images": False}})
    assert pipeline.load_split(pipeline.StudyRun(params, tmp_path / "run"), "train").n_images == 8
