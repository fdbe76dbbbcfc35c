"""Tasks: where the data comes from and which models suit it, behind one interface."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from ..errors import TinykdError
from . import mnist
from .base import Dataset


@dataclass(frozen=True)
class Task:
    name: str
    description: str
    load: Callable[..., Dataset]  # load(data_dir, val_size, seed, train_limit, test_limit)
    default_teacher: str
    default_student: str
    jitter_pixels: int  # random shift used as augmentation during training (0: none)


TASKS: dict[str, Task] = {
    "mnist": Task(
        name="mnist",
        description="MNIST handwritten digits, 28x28 grey, 10 classes",
        load=mnist.load,
        default_teacher="cnn",
        default_student="mlp-300-300",
        jitter_pixels=2,
    ),
}


def get_task(name: str) -> Task:
    try:
        return TASKS[name]
    except KeyError:
        raise TinykdError(
            f"Unknown task '{name}'. Choose one of: {', '.join(sorted(TASKS))}."
        ) from None


__all__ = ["Dataset", "Task", "TASKS", "get_task"]
