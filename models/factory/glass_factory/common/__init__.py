"""Shared parts of the model factory: BuildContext, datasets, ONNX tools, artifacts/manifest, AutoML, metrics."""

from .artifacts import (
    find_entry,
    manifest_entry,
    model_dir,
    read_manifest,
    sha256,
    update_manifest,
    verify_entry,
    write_card,
    write_golden,
)
from .automl import run_study
from .context import BuildContext, Part, default_context
from .dataset import ConcatDataset, Dataset, DatasetError, generate
from .onnx_tools import choose_variant, export_onnx, latency, parity, run, session

__all__ = [
    "BuildContext",
    "ConcatDataset",
    "Dataset",
    "DatasetError",
    "Part",
    "choose_variant",
    "default_context",
    "export_onnx",
    "find_entry",
    "generate",
    "latency",
    "manifest_entry",
    "model_dir",
    "parity",
    "read_manifest",
    "run",
    "run_study",
    "session",
    "sha256",
    "update_manifest",
    "verify_entry",
    "write_card",
    "write_golden",
]
