"""Saving and loading Keras models atomically (the .keras format insists on its suffix)."""

from __future__ import annotations

import os
import tempfile
import warnings
from pathlib import Path

from ..errors import TinykdError


def save_model(model, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=path.parent, prefix=".save-") as tmp:
        staged = Path(tmp) / path.name
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*HDF5 file.*")
            model.save(staged)
        os.replace(staged, path)
    return path


def load_model(path: str | Path):
    import tf_keras as keras

    import tinykd  # noqa: F401

    from ..quantize import quantize_scope

    path = Path(path)
    if not path.exists():
        raise TinykdError(f"{path} does not exist: run the stage that makes it first (or `tinykd build`).")
    try:
        with quantize_scope():
            return keras.models.load_model(path, compile=False)
    except (OSError, ValueError) as exc:
        raise TinykdError(
            f"{path} could not be loaded as a Keras model ({exc}). It may be corrupt: delete it and "
            "run the stage that makes it again (or rebuild with --force)."
        ) from None
