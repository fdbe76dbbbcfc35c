"""What every task's loader hands to the rest of the pipeline."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Dataset:
    """Train/validation/test splits of one task, as float32 inputs and integer labels.

    Inputs are already preprocessed the way the model sees them; `quantize_input` in the
    task says how the same input reaches the device as int8.
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: list[str]

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x_train.shape[1:])

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def summary(self) -> dict:
        return {
            "train": int(len(self.y_train)),
            "val": int(len(self.y_val)),
            "test": int(len(self.y_test)),
            "input_shape": list(self.input_shape),
            "classes": list(self.class_names),
        }
