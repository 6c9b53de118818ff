"""Captioning on a Ray cluster: the images are split into blocks that Ray Data hands to a pool of actors (each builds
the backend once); the driver is the corpus's one writer and appends every record as soon as it is answered.

The records are the local runner's own: each actor runs `captioning.runner.caption_as_answered` (the runner's pixel
checks, strict retry, parsing and schema validation, one image at a time), and the cache keys come from the same identity (backend, model, prompts,
settings), so a local run and a Ray run with the same settings write the same corpus and resume from each other.
An actor hands each record to a collector actor beside the driver the moment its image is answered, and the driver
takes and appends them every COLLECT_EVERY_S: killing the driver loses only the requests in flight (a resume re-sends
only those). A call whose worker died is retried by Ray and re-sends only the images the collector has no record of;
a key already written is never written twice."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Iterable

import numpy as np

from ..captioning.backend import BackendFatalError, CaptionRequest, capability
from ..captioning.corpus import CorpusStore
from ..captioning.images import build_requests
from ..captioning.registry import backend_info
from ..captioning.runner import RunSummary, note_record, progress_bar, todo
from ..captioning.schema import CorpusRecord
from ..engine import DEFAULT_ACTORS, Where
from .cluster import WorkerSecrets, root_cause

CALL_ROUNDS = 4  # rounds of requests in flight per actor call (benchmarks/results/scaleout.json)
COLLECT_EVERY_S = 0.05  # how often the driver takes the answered records from the collector
FLEET_CALLS_PER_ACTOR = 4  # calls an actor of a remote-server backend runs at once (its fleet bounds the requests)


def key_variables(config: dict) -> tuple[str, ...]:
    """The environment variable that holds the backend's API key (api_key_env, else its registry entry's), if any."""
    if not config.get("backend"):
        return ()
    name = config.get("api_key_env") or backend_info(config["backend"]).key_variable
    return (name,) if name else ()


def server_urls(config: dict) -> list[str]:
    """The backend's server URLs (base_url: one or a fleet)."""
    urls = config.get("base_url") or []
    return [urls] if isinstance(urls, str) else list(urls)


def backend_identity(backend) -> dict:
    """What a backend's cache keys are made of, its caveat, and how to feed it (batch size, servers)."""
    return {"name": backend.name, "model": backend.model, "prompt_version": backend.prompt_version,
            "settings": backend.settings, "label": capability(backend, "label"),
            "batch_size": int(capability(backend, "batch_size")),
            "in_flight": int(capability(backend, "total_concurrency") or capability(backend, "batch_size")),
            # a backend of remote servers bounds its own requests in flight (its fleet), so an actor may take the
            # next calls while the last requests of the current ones are answered; a local model takes one at a time
            "calls_per_actor": FLEET_CALLS_PER_ACTOR if capability(backend, "fleet") is not None else 1}


def _build(config: dict, context: dict, secrets: WorkerSecrets):
    """The backend on a worker: the job's API keys set and the server URLs' credentials put back first."""
    from ..captioning.api import BackendContext, build_backend

    secrets.install()
    return build_backend(secrets.unseal(config), BackendContext(**context))


def _identity_on_a_worker(config: dict, context: dict, secrets: WorkerSecrets) -> dict:
    return backend_identity(_build(config, context, secrets))


def _on_a_worker(config: dict, context: dict, secrets: WorkerSecrets) -> dict:
    """The backend's identity, built on a worker of the cluster (one line if that fails)."""
    import ray

    try:
        return ray.get(ray.remote(num_cpus=0)(_identity_on_a_worker).remote(secrets.seal(config), context, secrets))
    except ray.exceptions.RayError as error:
        raise BackendFatalError(f"the backend cannot be built on the cluster: {root_cause(error)}") from None


class RecordCollector:
    """A Ray actor beside the driver: caption actors hand it each record as its image is answered, and the driver takes
    them from it to write. It remembers every key it was given, so a call that Ray retries after its worker died
    re-sends only the images not answered before. Calls run one at a time (no lock needed)."""

    def __init__(self):
        self._keys: set[str] = set()
        self._waiting: list[tuple[str, int, str]] = []

    def missing(self, keys: list[str]) -> list[str]:
        """The keys no record was handed in for yet."""
        return [key for key in keys if key not in self._keys]

    def put(self, key: str, record: str, retries: int, path: str) -> None:
        if key not in self._keys:
            self._keys.add(key)
            self._waiting.append((record, retries, path))

    def take(self) -> list[tuple[str, int, str]]:
        """(record JSON, strict retries, image path) of every record handed in since the last take."""
        waiting, self._waiting = self._waiting, []
        return waiting


class CaptionActor:
    """One actor of the pool: the backend built once; each call captions its images (those the collector has no
    record of) and hands every record to the collector as soon as it is answered."""

    def __init__(self, config: dict, context: dict, mode: str, max_attempts: int, identity: dict,
                 secrets: WorkerSecrets, collector):
        self.backend = _build(config, context, secrets)
        mine = backend_identity(self.backend)
        if mine != identity:
            raise RuntimeError(f"the backend built on this worker answers differently ({mine}) from the driver's "
                               f"({identity}); give every node the same project version and environment")
        self.mode, self.max_attempts, self.collector = mode, max_attempts, collector

    def __call__(self, batch: dict) -> dict:
        import ray

        from ..captioning.runner import caption_as_answered

        keys = [str(k) for k in batch["key"]]
        todo = set(ray.get(self.collector.missing.remote(keys)))
        chosen = [i for i, key in enumerate(keys) if key in todo]
        requests = [CaptionRequest(str(batch["image_id"][i]), Path(batch["path"][i]) if batch["path"][i] else None,
                                   batch["sha256"][i] or None) for i in chosen]
        paths = {request.image_id: str(batch["path"][i]) for request, i in zip(requests, chosen)}
        handed = [self.collector.put.remote(record.cache_key, record.model_dump_json(), retries, paths[record.image_id])
                  for record, retries in caption_as_answered(self.backend, requests, [keys[i] for i in chosen],
                                                             self.mode, self.max_attempts)]
        ray.get(handed)  # the call ends once the collector holds every record (else Ray retries it)
        return {"answered": np.array([len(handed)], dtype=np.int64)}


def rows_to_send(requests, identity: dict, mode: str, done: set[str], summary: RunSummary) -> list[dict]:
    """The requests not done yet (the runner's `todo`), as the rows Ray Data hands to the actors."""
    left, keys, summary.skipped_done = todo(requests, identity_of(identity), mode, done)
    return [{"image_id": r.image_id, "path": str(r.image_path) if r.image_path else "", "sha256": r.image_sha256 or "",
             "key": key} for r, key in zip(left, keys)]


def identity_of(identity: dict) -> SimpleNamespace:
    """A stand-in with a backend's identity (name, model, prompts, settings, label): what its cache keys are made of."""
    return SimpleNamespace(**{k: identity[k] for k in ("name", "model", "prompt_version", "settings", "label")})


def caption_on_ray(requests: Iterable, config: dict, store_path: Path | str, mode: str = "variants",
                   actors: int = DEFAULT_ACTORS, max_attempts: int = 2, progress: bool = True,
                   context: dict | None = None, cpus_per_actor: float = 1.0,
                   secrets: WorkerSecrets | None = None) -> RunSummary:
    """Caption every request not yet in the store with `actors` actors of the cluster (connect first); the same
    RunSummary as the local runner. config: a backend config of plain values (names, paths, numbers); secrets: the
    API key variables the actors get (default: the backend's api_key_env, read here)."""
    import ray

    from .vllm import is_vllm, vllm_caption_blocks

    context = dict(context or {})
    secrets = secrets or WorkerSecrets(key_variables(config), server_urls(config))
    started = time.monotonic()
    identity = _on_a_worker(config, context, secrets)
    with CorpusStore(store_path) as store:  # the only writer of this file for the whole run
        requests = build_requests(requests)
        summary = RunSummary(total=len(requests), store_path=str(store.path))
        rows = rows_to_send(requests, identity, mode, store.done_keys(), summary)
        bar = progress_bar(summary.total, progress, initial=summary.skipped_done)
        try:
            if rows:
                blocks = (vllm_caption_blocks(rows, config, mode, actors) if is_vllm(config) else
                          _caption_records(rows, config, context, mode, actors, max_attempts, identity, cpus_per_actor,
                                           secrets))
                try:
                    write_records(blocks, store, summary, bar)
                except ray.exceptions.RayError as error:  # a worker's error, as one line (the records so far are kept)
                    raise BackendFatalError(f"captioning on the cluster stopped: {root_cause(error)} "
                                            f"({summary.ok + summary.failed} record(s) written; a rerun resumes)") from None
        finally:
            bar.close()
            summary.elapsed_s = round(time.monotonic() - started, 3)
    return summary


def _caption_records(rows, config, context, mode, actors, max_attempts, identity, cpus_per_actor, secrets):
    """The actors' records as they are answered, in batches of what the collector held at each look (every
    COLLECT_EVERY_S): the driver writes an answer within that long of its arrival."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    ray.data.DataContext.get_current().enable_progress_bars = False
    here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=True)
    collector = ray.remote(RecordCollector).options(num_cpus=0, scheduling_strategy=here).remote()
    # Each call takes several rounds of the backend's requests in flight, so Ray Data's cost per task is paid rarely.
    # One block is one call (batch_size=None: no 1-row remainder call); an actor runs its calls side by side (without
    # enable_true_multi_threading Ray Data runs them one at a time) with one more queued (a short tail).
    per_call = CALL_ROUNDS * max(identity["in_flight"], identity["batch_size"])
    dataset = ray.data.from_items(rows, override_num_blocks=max(1, -(-len(rows) // per_call)))
    calls = identity["calls_per_actor"]
    answered = dataset.map_batches(
        CaptionActor, batch_size=None, num_cpus=cpus_per_actor, compute=ray.data.ActorPoolStrategy(
            size=actors, max_tasks_in_flight_per_actor=calls + 1, max_concurrent_calls_per_actor=calls,
            enable_true_multi_threading=calls > 1),
        fn_constructor_kwargs={"config": secrets.seal(config), "context": context, "mode": mode,
                               "max_attempts": max_attempts, "identity": identity, "secrets": secrets,
                               "collector": collector})
    finished, failure = threading.Event(), []

    def run_the_pool():
        try:
            for _ in answered.iter_batches(batch_size=None, batch_format="numpy", prefetch_batches=0):
                pass
        except BaseException as error:  # noqa: BLE001 - handed to the driver's thread, raised there
            failure.append(error)
        finally:
            finished.set()

    threading.Thread(target=run_the_pool, name="ray-caption-pool", daemon=True).start()
    while True:
        last = finished.is_set()  # every call has handed in its records before it finished
        taken = ray.get(collector.take.remote())
        if taken:
            records, retries, paths = zip(*taken)
            yield {"record": records, "retries": retries, "path": paths}
        if last:
            break
        finished.wait(COLLECT_EVERY_S)
    if failure:
        raise failure[0]


def write_records(batches, store: CorpusStore, summary: RunSummary, bar) -> None:
    """Append each record as its batch arrives, once per key."""
    written = set()
    for batch in batches:
        for raw, retries, path in zip(batch["record"], batch["retries"], batch["path"]):
            record = CorpusRecord.model_validate_json(raw)
            if record.cache_key in written:
                continue
            written.add(record.cache_key)
            store.append(record)
            note_record(summary, record, int(retries), path or None)
            bar.update(1)


class RayEngine:
    """The engine on a Ray cluster (`engine.Engine`): a backend known by its identity (built on a worker, never loaded
    on the driver), captioning in an actor pool, and embedding in an actor pool with the cache kept here."""

    def __init__(self, where: Where):
        if where.ray is None:
            raise ValueError("RayEngine needs a cluster address (Where.ray)")
        self.where, self.actors = where, where.actors
        self.cluster: dict = {}
        self.secrets = WorkerSecrets()

    def start(self, config: dict | None = None) -> dict:
        """Connect; the API key variable the backend reads (its registry entry's, or api_key_env) is taken from here
        and handed to the actors as WorkerSecrets (never a runtime environment)."""
        from .cluster import connect

        self.secrets = WorkerSecrets(key_variables(config or {}), server_urls(config or {}))
        self.cluster = connect(self.where.ray)
        return self.cluster

    def backend(self, config: dict, context: dict | None = None):
        """A stand-in with the backend's identity (name, model, prompts, settings, label), for the cache keys."""
        return identity_of(_on_a_worker(config, plain(context), self.secrets))

    def encoder(self, spec: str, progress: bool = True, policy: str | None = None, **options):
        from ..encoders import CachedEncoder, key_variable_of
        from .embedding import RayTextEncoder

        extra = {"policy": policy} if policy else {}
        secrets = WorkerSecrets(tuple(filter(None, [key_variable_of(spec, options)])))
        return CachedEncoder(RayTextEncoder(spec, self.actors, secrets=secrets, options=options), progress=progress,
                             **extra)

    def caption(self, requests, backend, config: dict, store_path: Path, mode: str = "variants", *,
                concurrency: int = 8, progress: bool = True, context: dict | None = None) -> RunSummary:
        return caption_on_ray(requests, config, store_path, mode, self.actors, progress=progress, context=plain(context),
                              secrets=self.secrets)


def plain(context: dict | None) -> dict:
    """The values of a backend context a worker can rebuild from (names and paths; objects stay on the driver)."""
    plain_types = (str, int, float, bool, type(None), Path)
    return {k: v for k, v in (context or {}).items()
            if isinstance(v, plain_types) or (isinstance(v, dict) and all(isinstance(x, plain_types) for x in v.values()))}
