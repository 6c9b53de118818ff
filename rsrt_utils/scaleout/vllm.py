"""The vllm backend's run on a cluster: rows through `ray.data.llm`'s vLLM processor, generated texts turned into
corpus records on the driver by the corpus runner's own functions (parsing, repair, schema; a bad answer is asked
once more with the strict prompt), in the blocks `captioning._write` appends."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import numpy as np

from ..captioning.backend import CaptionRequest
from ..captioning.registry import backend_info


def is_vllm(config: dict) -> bool:
    return backend_info(config["backend"]).ray_processor


def _backend(config: dict):
    from ..captioning.api import build_backend

    return build_backend(config)


def records_of(backend, rows: list[dict], mode: str, strict: bool, final: bool) -> tuple[dict, list[dict]]:
    """(a block of records for the rows that are done, the rows to ask again with the strict prompt)."""
    from ..captioning.runner import interpret_answer, make_record

    records, retries, paths, again = [], [], [], []
    for row in rows:
        answer = backend.answer_of(row)
        fields, reason, retryable = interpret_answer(answer, mode)
        if reason and retryable and not final:
            again.append(row)
            continue
        request = CaptionRequest(str(row["image_id"]), Path(str(row["path"])), str(row["sha256"]) or None)
        usage = {**answer.usage, "attempts": 2 if strict else 1}
        records.append(make_record(backend, request, str(row["key"]), mode, fields, reason, usage).model_dump_json())
        retries.append(1 if strict else 0)
        paths.append(str(row["path"]))
    block = {"record": np.array(records, dtype=object), "retries": np.array(retries, dtype=np.int64),
             "path": np.array(paths, dtype=object)}
    return block, again


def _unsendable(backend, rows: list[dict], mode: str) -> tuple[list[dict], dict]:
    """(rows whose image can be sent, a block of failure records for the others: no file, unreadable, too large)."""
    from ..captioning.runner import make_record, pixel_problem

    good, records, paths = [], [], []
    for row in rows:
        request = CaptionRequest(row["image_id"], Path(row["path"]) if row["path"] else None, row["sha256"] or None)
        reason = pixel_problem(backend, request)
        if reason:
            records.append(make_record(backend, request, row["key"], mode, {}, reason, {"attempts": 0}).model_dump_json())
            paths.append(row["path"])
        else:
            good.append(row)
    return good, {"record": np.array(records, dtype=object), "retries": np.zeros(len(records), dtype=np.int64),
                  "path": np.array(paths, dtype=object)}


def vllm_caption_blocks(rows: list[dict], config: dict, mode: str, engines: int | None = None):
    """Blocks of records, as the engines finish them (engines: replicas; default the backend's `engines`)."""
    import ray
    from ray.data.llm import build_processor

    backend = _backend(config)
    if engines:
        backend.engines = engines
    rows, failed = _unsendable(backend, rows, mode)
    if len(failed["record"]):
        yield failed
    for strict in (False, True):
        if not rows:
            return
        processor = build_processor(backend.processor_config(), preprocess=partial(backend.preprocess, mode=mode,
                                                                                    strict=strict),
                                    postprocess=backend.postprocess)
        again = []
        for batch in processor(ray.data.from_items(rows)).iter_batches(batch_size=None, batch_format="pandas"):
            block, retry = records_of(backend, batch.to_dict("records"), mode, strict, final=strict)
            again += retry
            yield block
        rows = again
