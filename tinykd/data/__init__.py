"""Tasks: where the data comes from and which models suit it, behind one interface."""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

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


# ---------------------------------------------------------------------------------- kws

KWS_SYNTH_CLIPS_PER_WORD = 200  # the full synthetic set: 10 x 200 keyword + 25 x 50 other clips


def kws_synth_clips_per_word(train_limit: int, synth_clips: int = 0) -> int:
    """Size of the synthetic set: `synth_clips` when given, else enough keyword clips for
    `train_limit` training examples (80 % of the clips train; _unknown_ and _silence_ add
    10 % each), the default set for 0."""
    if synth_clips:
        return synth_clips
    if not train_limit:
        return KWS_SYNTH_CLIPS_PER_WORD
    return max(8, min(KWS_SYNTH_CLIPS_PER_WORD, math.ceil(train_limit / (10 * 0.8 * 1.2))))


def kws_data_root(data_dir=None, seed: int = 0, train_limit: int = 0, synth_clips: int = 0) -> Path:
    """Where the KWS clips come from: `data_dir`, else $TINYKD_DATA when it holds Speech
    Commands, else a synthetic set spoken by espeak-ng, generated once into
    $TINYKD_CACHE/kws-synth-<seed>-<clips per word>."""
    from .kws import speech_commands, synth

    if data_dir:
        return speech_commands.locate(data_dir, download=False)
    env = os.environ.get("TINYKD_DATA")
    if env:
        base = Path(env)
        for cand in (base / speech_commands.ARCHIVES["v0.02"].folder, base / "speech_commands", base):
            if speech_commands.is_dataset_dir(cand):
                speech_commands.check_layout(cand)
                return cand
    size = kws_synth_clips_per_word(train_limit, synth_clips)
    root = speech_commands.cache_dir() / f"kws-synth-{seed}-{size}"
    synth.synthesize_kws(root, clips_per_word=size, seed=seed, progress=True)
    return root


def _kws_load(
    data_dir=None,
    val_size: int = 0,
    seed: int = 0,
    train_limit: int = 0,
    test_limit: int = 0,
    augment: int = 0,
    synth_clips: int = 0,
) -> Dataset:
    from .kws import speech_commands

    root = kws_data_root(data_dir, seed, train_limit, synth_clips)
    return speech_commands.load(
        root, val_size=val_size, seed=seed, train_limit=train_limit, test_limit=test_limit, augment=augment
    )


def _kws_test_audio(
    data_dir=None, seed: int = 0, train_limit: int = 0, test_limit: int = 0, augment: int = 0, synth_clips: int = 0
) -> np.ndarray:
    from .kws import speech_commands

    root = kws_data_root(data_dir, seed, train_limit, synth_clips)
    audio, _, _ = speech_commands.load_audio(root, "test", seed, limit=test_limit, progress=False)
    return audio


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
        description="keyword spotting: 12 classes (10 words, silence, unknown) from 1 s of "
        "16 kHz audio as 49x10 int8 MFCC (Speech Commands, or synthesised with espeak-ng)",
        load=_kws_load,
        default_teacher="ds-cnn-l",
        default_student="ds-cnn-s",
        jitter_pixels=0,
        input_quantization=_kws_input_quantization(),
        load_test_audio=_kws_test_audio,
        device_frontend="kws-mfcc",
        data_options=("augment", "synth_clips"),
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
        seed=config.seed,
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
        c.dir or None, seed=config.seed, train_limit=c.train_limit, test_limit=c.test_limit, **options
    )


__all__ = [
    "Dataset",
    "Task",
    "TASKS",
    "data_digest",
    "get_task",
    "kws_data_root",
    "load_dataset",
    "load_test_audio",
]
