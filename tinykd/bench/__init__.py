"""Benchmarks the package runs (`tinykd bench`): the int8 runtime on QEMU (`runtime`).

The measured results live in the repository's benchmarks/*.md."""

from __future__ import annotations

from .runtime import MODELS, run_layer_bench, run_runtime_bench

__all__ = ["MODELS", "run_layer_bench", "run_runtime_bench"]
