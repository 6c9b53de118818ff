"""Audit pages and API: a run's sampled images beside their variants, score inputs saved per auditor."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from filelock import Timeout
from pydantic import BaseModel, Field

from ..logsafe import Typed
from ..study.audit import SCORING_INSTRUCTIONS, ScoringSheetError
from ..study.audit_columns import AUDIT_COUNT_COLUMNS, AUDIT_SCORE_COLUMN, MAX_AUDIT_COUNT
from .audit_runs import AuditRun, list_audit_runs
from .pages import error_response, render
from .safety import ScrubbedJSONResponse
from .scores import MAX_NOTE_CHARS, SheetOnDiskError, SheetState, auditors_with_sheets, is_scored, load_sheet, save_scores

router = APIRouter()
COUNT_LABELS = {"correct_objects": "correct objects", "hallucinated_objects": "hallucinated objects",
                "direction_errors": "direction errors"}


class SavePayload(BaseModel):
    """Rows an auditor changed: image_id, variant and any of the score columns and notes."""

    auditor: str = Field(max_length=200)
    rows: list[dict[str, Any]] = Field(max_length=100_000)


def progress_text(run: AuditRun, state: SheetState | None) -> str:
    scored = state.scored_images() if state else 0
    return f"{scored} of {run.n_images} images scored"


def state_json(run: AuditRun, state: SheetState) -> dict:
    """What the page and scripts need after a load or a save."""
    complete = {row["image_id"] for row in state.rows}
    complete -= {row["image_id"] for row in state.rows if not is_scored(row)}
    return {"run": run.name, "auditor": state.auditor, "sheet": state.sheet, "problem": state.problem or None,
            "n_images": run.n_images, "n_scored_images": state.scored_images(), "n_rows": len(state.rows),
            "n_scored_rows": state.scored_rows(), "progress": progress_text(run, state),
            "scored_image_ids": sorted(complete), "sheet_path": str(run.audit_dir / state.sheet),
            "rows": [as_typed(row) for row in state.rows]}


def as_typed(row: dict) -> dict:
    """The row with its notes marked as typed by a person: shown and sent back exactly as written, never masked."""
    return {**row, "notes": Typed(row.get("notes") or "")}


def _audit(request: Request, run: str) -> AuditRun:
    return request.app.state.audits.get(run)


@router.get("/audit", response_class=HTMLResponse)
def audit_list(request: Request):
    """The study runs that have an audit."""
    root = request.app.state.outputs_root
    return render(request, "audit_list.html", {"runs": list_audit_runs(root), "outputs_root": root})


@router.get("/audit/{run}", response_class=HTMLResponse)
def audit_page(request: Request, run: str, auditor: str = ""):
    """The audit of one run: each sampled image beside its variants and human captions, with the score inputs."""
    audit = _audit(request, run)
    state, name_error = None, ""
    if auditor:
        try:
            state = load_sheet(audit, auditor)
        except ValueError as error:
            name_error = str(error)
    rows = {key: as_typed(row) for key, row in state.by_key().items()} if state else {}
    context = {"audit": audit, "state": state, "rows": rows, "auditor": auditor,
               "name_error": name_error, "progress": progress_text(audit, state),
               "scored_ids": set(state_json(audit, state)["scored_image_ids"]) if state else set(),
               "auditors": auditors_with_sheets(audit.audit_dir), "instructions": SCORING_INSTRUCTIONS,
               "count_columns": [(c, COUNT_LABELS.get(c, c)) for c in AUDIT_COUNT_COLUMNS],
               "score_column": AUDIT_SCORE_COLUMN, "max_note": MAX_NOTE_CHARS, "max_count": MAX_AUDIT_COUNT,
               "sheet_path": str(audit.audit_dir / state.sheet) if state else ""}
    return render(request, "audit.html", context, 400 if name_error else 200)


@router.get("/audit/{run}/images/{number}")
def audit_image(request: Request, run: str, number: int):
    """The pixels of image `number` as the HTML audit sheet embeds them."""
    picture = _audit(request, run).pictures.get(number)
    if picture is None:
        return error_response(request, 404, f"image {number} of run {run!r} has no pixels in the audit sheet")
    media_type, data = picture
    return Response(data, media_type=media_type, headers={"Cache-Control": "private, max-age=600"})


@router.get("/api/audit/{run}")
def audit_state(request: Request, run: str, auditor: str):
    """An auditor's rows and progress (JSON)."""
    audit = _audit(request, run)
    try:
        return state_json(audit, load_sheet(audit, auditor))
    except ValueError as error:
        return error_response(request, 400, str(error))


@router.post("/api/audit/{run}/scores")
def audit_save(request: Request, run: str, payload: SavePayload):
    """Save the rows an auditor changed; 400 for a bad value, 409 when the sheet on disk is malformed."""
    audit = _audit(request, run)
    try:
        state = save_scores(audit, payload.auditor, payload.rows)
    except SheetOnDiskError as error:
        return error_response(request, 409, str(error))
    except (ScoringSheetError, ValueError) as error:
        return error_response(request, 400, f"nothing was saved: {error}")
    except Timeout:
        return error_response(request, 503, "another save is still writing this sheet; press Save again")
    return ScrubbedJSONResponse(state_json(audit, state))
