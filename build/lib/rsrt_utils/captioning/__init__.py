"""Captioning: turn gallery images into the RSRT corpus (five structured variants per image)."""
