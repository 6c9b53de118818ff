"""rsrt_utils: helpers for the training-free text-to-text remote-sensing retrieval study (RSRT)."""

__version__ = "0.1.0"
