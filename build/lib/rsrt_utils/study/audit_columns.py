"""The caption audit's scoring-sheet schema: the key of a row, what an auditor counts and scores, then notes (read by
the audit, its figure and the web app)."""

SHEET_KEY_COLUMNS = ("image_id", "scene_class", "variant")
AUDIT_COUNT_COLUMNS = ("correct_objects", "hallucinated_objects", "direction_errors")
AUDIT_SCORE_COLUMN = "completeness_1to5"
SCORE_COLUMNS = AUDIT_COUNT_COLUMNS + (AUDIT_SCORE_COLUMN,)
SHEET_COLUMNS = SHEET_KEY_COLUMNS + SCORE_COLUMNS + ("notes", "auditor")
MAX_AUDIT_COUNT = 1000  # the largest count (and variant number) a scoring sheet accepts
