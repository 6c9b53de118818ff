"""The canonical data store under data/: import from a local folder/mirror, or download from public sources.

Each dataset (rsitmd, rsicd, aid150) is assembled in a hidden staging folder, every file checked
against its pinned sha256, and only then moved into place with MANIFEST.json written last. A store
folder without MANIFEST.json is never treated as complete, so an interrupted import or download
cannot leave a store that looks finished.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor, as_completed
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterable

from tqdm.auto import tqdm

from ..paths import data_dir
from .sources import RAW_BASE_URL, SourceFile, sha256_of, source_files, store_datasets

MANIFEST = "MANIFEST.json"


class DataStoreError(RuntimeError):
    """A missing, corrupt or incomplete data file, with the fix in the message."""


def is_complete(dataset: str, store: Path | None = None) -> bool:
    return ((store or data_dir()) / dataset / MANIFEST).is_file()


def store_status(store: Path | None = None) -> dict[str, dict]:
    """Per dataset: complete or not, and the manifest's origin and date."""
    store = store or data_dir()
    status = {}
    for dataset in store_datasets():
        manifest = store / dataset / MANIFEST
        if manifest.is_file():
            info = json.loads(manifest.read_text())
            status[dataset] = {"complete": True, "files": len(info["files"]), "origin": info["origin"], "created": info["created"]}
        else:
            status[dataset] = {"complete": False}
    return status


def _check(path: Path, expected: SourceFile) -> None:
    if not path.is_file():
        raise DataStoreError(f"{expected.relpath}: missing")
    got = sha256_of(path)
    if got != expected.sha256:
        raise DataStoreError(f"{expected.relpath}: sha256 {got[:12]}… does not match the pinned {expected.sha256[:12]}… "
                             "(corrupt or a different version of the file)")


def _parse_datasets(datasets: Iterable[str] | None) -> list[str]:
    chosen = list(datasets or store_datasets())
    unknown = [d for d in chosen if d not in store_datasets()]
    if unknown:
        raise ValueError(f"unknown dataset(s) {unknown}; choose from {', '.join(store_datasets())}")
    return chosen


def _assemble(dataset: str, store: Path, origin: str, fetch: Callable[[SourceFile, Path], None], workers: int,
              overwrite: bool, progress: bool, skip: Callable[[SourceFile], bool] = lambda f: False) -> Path:
    """Fetch every file of a dataset into staging, verify it, then move the folder into place atomically."""
    final = store / dataset
    if is_complete(dataset, store) and not overwrite:
        return final
    if final.is_dir() and any(final.iterdir()) and not is_complete(dataset, store):
        raise DataStoreError(f"{final} holds files but no {MANIFEST}: rsrt did not make it, so it is never replaced; "
                             f"move it away (or import it with `rsrt data import`), then rerun")
    files = [f for f in source_files(dataset) if not skip(f)]
    remove_abandoned_staging(store, dataset)
    staging = store / f".staging-{dataset}-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    errors: list[str] = []

    def one(item: SourceFile) -> None:
        target = staging / Path(item.relpath).relative_to(dataset)
        target.parent.mkdir(parents=True, exist_ok=True)
        fetch(item, target)
        _check(target, item)

    try:
        with ThreadPoolExecutor(max_workers=workers) as pool, tqdm(total=len(files), desc=f"{origin.split(':')[0]} {dataset}",
                                                                   unit="file", disable=not progress) as bar:
            futures = {pool.submit(one, f): f for f in files}
            for future in as_completed(futures):
                try:
                    future.result()
                except Exception as exc:  # noqa: BLE001 - collected and reported together
                    errors.append(f"{futures[future].relpath}: {exc}")
                bar.update(1)
    except BaseException:  # e.g. Ctrl-C: leave no half-filled staging folder behind
        shutil.rmtree(staging, ignore_errors=True)
        raise
    if errors:
        shutil.rmtree(staging, ignore_errors=True)
        shown = "\n  ".join(sorted(errors)[:10])
        raise DataStoreError(f"{dataset}: {len(errors)} of {len(files)} files failed; nothing was written to the store.\n  {shown}")
    manifest = {"dataset": dataset, "origin": origin, "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "files": {f.relpath: f.sha256 for f in files}}
    (staging / MANIFEST).write_text(json.dumps(manifest, indent=1))
    _swap_into_place(staging, final)
    return final


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by someone else
        return True
    return True


def remove_abandoned_staging(store: Path, dataset: str) -> list[Path]:
    """Delete staging (and swapped-out) folders left by a killed import or download whose process is gone."""
    removed = []
    for folder in list(store.glob(f".staging-{dataset}-*")) + list(store.glob(f"{dataset}.old-*")):
        pid = folder.name.rsplit("-", 1)[-1]
        if pid.isdigit() and int(pid) != os.getpid() and not _pid_alive(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed


def _swap_into_place(staging: Path, final: Path) -> None:
    old = final.with_name(final.name + f".old-{os.getpid()}")
    if final.exists():
        final.rename(old)
    staging.rename(final)
    shutil.rmtree(old, ignore_errors=True)


def import_from_folder(source: Path, datasets: Iterable[str] | None = None, store: Path | None = None,
                       overwrite: bool = False, progress: bool = True) -> dict[str, Path]:
    """Copy datasets from a local folder with the mirror's layout (e.g. ../shared/data) into the store."""
    source = Path(source).expanduser().resolve()
    if not source.is_dir():
        raise DataStoreError(f"--from {source}: no such folder; point it at a mirror such as ../shared/data")
    store = store or data_dir()
    store.mkdir(parents=True, exist_ok=True)

    def copy(item: SourceFile, target: Path) -> None:
        origin_file = source / item.relpath
        if not origin_file.is_file():
            raise DataStoreError(f"not found in {source} (expected {origin_file})")
        shutil.copyfile(origin_file, target)

    chosen = _parse_datasets(datasets)
    return {d: _assemble(d, store, f"import:{source}", copy, workers=4, overwrite=overwrite, progress=progress) for d in chosen}


def download(datasets: Iterable[str] | None = None, store: Path | None = None, base_url: str | None = None,
             overwrite: bool = False, progress: bool = True, workers: int = 8, retries: int = 3, timeout: float = 30.0) -> dict[str, Path]:
    """Fetch datasets from their public sources (pinned commits; base_url may point at a mirror)."""
    base_url = base_url or os.environ.get("RSRT_DOWNLOAD_BASE_URL") or RAW_BASE_URL
    store = store or data_dir()
    store.mkdir(parents=True, exist_ok=True)

    def fetch(item: SourceFile, target: Path) -> None:
        url = item.url(base_url)
        for attempt in range(retries):
            try:
                with urllib.request.urlopen(url, timeout=timeout) as response, open(target, "wb") as out:
                    shutil.copyfileobj(response, out)
                return
            except urllib.error.HTTPError as exc:
                if exc.code == 404 or attempt == retries - 1:
                    raise DataStoreError(f"GET {url} failed: HTTP {exc.code}") from exc
            except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
                if attempt == retries - 1:
                    raise DataStoreError(f"GET {url} failed: {exc}; check the network or use `rsrt data import --from DIR`") from exc
            time.sleep(0.5 * 2 ** attempt)

    chosen = _parse_datasets(datasets)
    # mirror-only files (the RSICD->AID-150 table) have no public source; the loader rebuilds the mapping by name
    return {d: _assemble(d, store, f"download:{base_url}", fetch, workers, overwrite, progress, skip=lambda f: f.url() is None)
            for d in chosen}


def store_needs(name: str) -> list[str]:
    """The store datasets a benchmark (or 'published', the VLM corpora) is loaded from; none for other names."""
    from .published_corpora import STORE_NAME
    from .registry import DATASETS_INFO

    if name == "published":
        return [STORE_NAME]
    return list(DATASETS_INFO[name].store_needs) if name in DATASETS_INFO else []


def ensure_store(name: str) -> Path:
    """The project store; missing datasets are imported from a local mirror (../shared/data or
    RSRT_MIRROR_DIR) when there is one, else downloaded from their public sources."""
    from ..paths import data_dir, shared_mirror_dir

    missing = [d for d in store_needs(name) if not is_complete(d)]
    if missing:
        mirror = shared_mirror_dir()
        if mirror is not None:
            print(f"importing {missing} from the mirror {mirror} into {data_dir()} ...")
            import_from_folder(mirror, missing)
        else:
            print(f"downloading {missing} from their public sources into {data_dir()} ...")
            download(missing)
    return data_dir()
