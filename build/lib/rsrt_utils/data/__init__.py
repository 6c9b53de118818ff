"""Data layer: annotation readers, the canonical Dataset, validation, and the import/download store."""

from .dataset import (DATASETS, Dataset, ImageRecord, load_dataset, read_aid150_mapping, scene_class_of)
from .formats import AnnotationFormatError, detect_format, read_annotations
from .registry import STANDARD_TEST_SPLITS
from .validation import validation_report

__all__ = ["DATASETS", "Dataset", "ImageRecord", "load_dataset", "read_aid150_mapping", "scene_class_of",
           "AnnotationFormatError", "detect_format", "read_annotations", "STANDARD_TEST_SPLITS", "validation_report"]
