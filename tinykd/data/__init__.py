"""Tasks: where the data comes from and which models suit it, behind one interface."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..errors import TinykdError
from . import images, mnist
from .base import Dataset


@dataclass(frozen=True)
class Task:
    name: str
    description: str
    load: Callable[..., Dataset]  # load(data_dir, val_size, seed, train_limit, test_limit)
    default_teacher: str
    default_student: str
    jitter_pixels: int  # random shift used as augmentation during training (0: none)
    # Fixed int8 input quantisation (scale, zero point) the device's own preprocessing
    # produces; None: derived from the data by the converter.
    input_quantization: tuple[float, int] | None = None
    # load_test_audio(data_dir, seed, train_limit, test_limit) -> int16 [N, samples]: the raw
    # test inputs, in the order of Dataset.x_test, for devices that preprocess them themselves.
    load_test_audio: Callable[..., np.ndarray] | None = None
    # The feature extractor the device runs on those raw inputs (tinykd/firmware/frontends.py);
    # None: the host sends the model's input.
    device_frontend: str | None = None
    # [data] settings, beyond the common ones, that `load` takes as keyword arguments.
    data_options: tuple[str, ...] = ()
    # data_digest(data_dir, **data_options) -> str: a digest of the files the data is read from,
    # part of the training stages' fingerprints (another dataset in the same folder is not the
    # one trained on). None: the data is known by its settings alone.
    data_digest: Callable[..., str] | None = None


def _kws_load(*args, **kwargs) -> Dataset:
    from .kws import task

    return task.load(*args, **kwargs)


def _kws_test_audio(*args, **kwargs) -> np.ndarray:
    from .kws import task

    return task.test_audio(*args, **kwargs)


def _kws_data_digest(*args, **kwargs) -> str:
    from .kws import task

    return task.data_digest(*args, **kwargs)


def _kws_input_quantization() -> tuple[float, int]:
    from .kws import frontend

    return (frontend.SCALE, frontend.ZERO_POINT)


TASKS: dict[str, Task] = {
    "mnist": Task(
        name="mnist",
        description="MNIST handwritten digits, 28x28 grey, 10 classes",
        load=mnist.load,
        default_teacher="cnn",
        default_student="mlp-300-300",
        jitter_pixels=2,
        data_options=("checksums",),
        data_digest=mnist.data_digest,
    ),
    "image": Task(
        name="image",
        description="your own images, any size, grey or RGB: idx files (.gz or raw), a .npz file, or "
        "a folder of class sub-folders of PNG/JPEG ([data] dir; see tinykd.data.images)",
        load=images.load,
        default_teacher="cnn",
        default_student="cnn-s",
        jitter_pixels=0,
        data_options=("format", "image_size", "channels", "class_names", "test_split", "checksums"),
        data_digest=images.data_digest,
    ),
    "kws": Task(
        name="kws",
        description="keyword spotting: 12 classes (10 words, silence, unknown; or your own [data] keywords) "
        "from 1 s of 16 kHz audio as 49x10 int8 MFCC (Speech Commands, or synthesised by espeak-ng, "
        "flite and festival)",
        load=_kws_load,
        default_teacher="ds-cnn-l",
        default_student="ds-cnn-s",
        jitter_pixels=0,
        input_quantization=_kws_input_quantization(),
        load_test_audio=_kws_test_audio,
        device_frontend="kws-mfcc",
        data_options=("augment", "synth_clips", "keywords"),
        data_digest=_kws_data_digest,
    ),
}


def get_task(name: str) -> Task:
    try:
        return TASKS[name]
    except KeyError:
        raise TinykdError(f"Unknown task '{name}'. Choose one of: {', '.join(sorted(TASKS))}.") from None


def load_dataset(config) -> Dataset:
    """The dataset a build configuration (tinykd.config.BuildConfig) asks for."""
    task, c = get_task(config.task), config.data
    options = {name: getattr(c, name) for name in task.data_options}
    return task.load(
        c.dir or None,
        val_size=c.val_size,
        seed=config.split_seed,
        train_limit=c.train_limit,
        test_limit=c.test_limit,
        **options,
    )


def data_digest(config) -> str | None:
    """A digest of the files a build configuration's data is read from (None: the task has none)."""
    task, c = get_task(config.task), config.data
    if task.data_digest is None:
        return None
    options = {name: getattr(c, name) for name in task.data_options}
    return task.data_digest(c.dir or None, **options)


def load_test_audio(config) -> np.ndarray:
    """The raw test inputs of a build configuration's task (tasks whose device preprocesses)."""
    task, c = get_task(config.task), config.data
    options = {name: getattr(c, name) for name in task.data_options}
    return task.load_test_audio(
        c.dir or None, seed=config.split_seed, train_limit=c.train_limit, test_limit=c.test_limit, **options
    )


__all__ = [
    "Dataset",
    "Task",
    "TASKS",
    "data_digest",
    "get_task",
    "load_dataset",
    "load_test_audio",
]
