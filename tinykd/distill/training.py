"""The one training loop used by teacher, baseline, distillation and QAT.

Deterministic (seeded shuffling and jitter per epoch), checkpointed after every epoch so
an interrupted run resumes where it stopped, with a progress bar.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import tensorflow as tf
import tf_keras as keras
from tqdm.auto import tqdm

import tinykd  # noqa: F401

from ..fileio import write_json
from .hinton import Distiller


@dataclass
class TrainResult:
    history: dict[str, list[float]] = field(default_factory=dict)
    seconds: float = 0.0
    epochs: int = 0  # the most it could train (the configured epochs)
    # Early stopping (train's `patience`): the epoch whose weights the model holds (1-based) and
    # how many it trained; None without early stopping (the last epoch's weights).
    best_epoch: int | None = None
    epochs_run: int | None = None


def seed_everything(seed: int, *, fresh_session: bool = False) -> int:
    """Deterministic TF ops and every random generator (Python, NumPy, TF) seeded with `seed`.

    `fresh_session` also resets Keras's naming state first: automatic layer names land in the
    .tflite (tfmot's quantize_layer becomes quantize_layer_1 when loaded a second time), so a
    run that starts afresh gives the same bytes whatever ran before it in the process."""
    if fresh_session:
        keras.backend.clear_session()
    tf.config.experimental.enable_op_determinism()
    keras.utils.set_random_seed(seed)
    return seed


def jitter(images: np.ndarray, max_shift: int, rng: np.random.Generator) -> np.ndarray:
    """Shift each image by up to ±max_shift pixels in x and y, filling with zeros (Hinton's jitter)."""
    if max_shift <= 0:
        return images
    n, h, w = images.shape[:3]
    padded = np.pad(images, [(0, 0), (max_shift, max_shift), (max_shift, max_shift)] + [(0, 0)] * (images.ndim - 3))
    dy = rng.integers(0, 2 * max_shift + 1, n)
    dx = rng.integers(0, 2 * max_shift + 1, n)
    out = np.empty_like(images)
    for i in range(n):
        out[i] = padded[i, dy[i] : dy[i] + h, dx[i] : dx[i] + w]
    return out


class EpochBatches(keras.utils.Sequence):
    """Batches shuffled and jittered from (seed, epoch, batch): the same on every run and resume."""

    def __init__(self, x, y, batch_size: int, seed: int, max_shift: int, epoch: int = 0):
        super().__init__()
        self.x, self.y, self.batch_size = x, y, batch_size
        self.seed, self.max_shift, self.epoch = seed, max_shift, epoch
        self._order = self._permutation()

    def _permutation(self):
        return np.random.default_rng([self.seed, self.epoch]).permutation(len(self.y))

    def __len__(self):
        return int(np.ceil(len(self.y) / self.batch_size))

    def __getitem__(self, index):
        idx = np.sort(self._order[index * self.batch_size : (index + 1) * self.batch_size])
        rng = np.random.default_rng([self.seed, self.epoch, index, 1])
        return jitter(self.x[idx], self.max_shift, rng), self.y[idx]

    def on_epoch_end(self):
        self.epoch += 1
        self._order = self._permutation()


class _Progress(keras.callbacks.Callback):
    """One bar over all batches of the stage, with the latest metrics; quiet when not a TTY."""

    def __init__(self, label: str, total_epochs: int, first_epoch: int, steps: int):
        super().__init__()
        self.bar = tqdm(
            total=total_epochs * steps,
            initial=first_epoch * steps,
            desc=label,
            unit="batch",
            dynamic_ncols=True,
            leave=True,
            mininterval=1.0,
        )

    def on_train_batch_end(self, batch, logs=None):
        self.bar.update(1)

    def on_epoch_end(self, epoch, logs=None):
        shown = {k: f"{v:.4f}" for k, v in (logs or {}).items() if k in ("loss", "accuracy", "val_accuracy")}
        self.bar.set_postfix(epoch=epoch + 1, **shown)

    def on_train_end(self, logs=None):
        self.bar.close()


class _Checkpoint(keras.callbacks.Callback):
    """After each epoch: save weights + optimizer state and the history so far."""

    def __init__(
        self,
        manager: tf.train.CheckpointManager,
        epoch_var: tf.Variable,
        history_path: Path,
        history: dict[str, list[float]],
        elapsed: float,
    ):
        super().__init__()
        self.manager, self.epoch_var, self.history_path = manager, epoch_var, history_path
        self.history, self.elapsed, self.started = history, elapsed, time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        for key, value in (logs or {}).items():
            self.history.setdefault(key, []).append(float(value))
        self.epoch_var.assign(epoch + 1)
        self.manager.save(checkpoint_number=epoch + 1)
        write_json(self.history_path, {"history": self.history, "seconds": self.seconds()})

    def seconds(self) -> float:
        return self.elapsed + time.perf_counter() - self.started


BEST_WEIGHTS = "best.weights.h5"
VALIDATION_BATCH = 1024


def best_epoch(val_accuracy: list[float]) -> int:
    """The 1-based epoch with the highest validation accuracy (fewest errors); the earliest on a tie."""
    return max(range(len(val_accuracy)), key=lambda i: (val_accuracy[i], -i)) + 1


def stopped(val_accuracy: list[float], patience: int) -> bool:
    """Whether `patience` epochs have passed since the best one."""
    return patience > 0 and bool(val_accuracy) and len(val_accuracy) - best_epoch(val_accuracy) >= patience


class _EarlyStopping(keras.callbacks.Callback):
    """Early stopping on validation accuracy: the best epoch's student weights are written to
    `best_path` (before the epoch's checkpoint, so a resumed run finds them), training stops
    `patience` epochs after it. The history of a resumed run carries the epochs before."""

    def __init__(self, student, best_path: Path, val_accuracy: list[float], patience: int):
        super().__init__()
        self.student, self.best_path, self.patience = student, best_path, patience
        self.val_accuracy = list(val_accuracy)

    def on_epoch_end(self, epoch, logs=None):
        self.val_accuracy.append(float((logs or {})["val_accuracy"]))
        if best_epoch(self.val_accuracy) == len(self.val_accuracy):
            self.student.save_weights(str(self.best_path))
        if stopped(self.val_accuracy, self.patience):
            self.model.stop_training = True


OPTIMIZERS = ("adam", "sgd")


def _optimizer(name: str, schedule):
    if name == "adam":
        return keras.optimizers.Adam(schedule)
    if name == "sgd":
        return keras.optimizers.SGD(schedule, momentum=0.9, nesterov=True)
    raise ValueError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, not {name!r}")


def train(
    model: Distiller,
    x_train: np.ndarray,
    y_train: np.ndarray,
    validation: tuple[np.ndarray, np.ndarray] | None,
    *,
    epochs: int,
    batch_size: int,
    learning_rate: float,
    seed: int,
    max_shift: int,
    checkpoint_dir: str | Path,
    label: str = "train",
    callbacks: list[keras.callbacks.Callback] | None = None,
    patience: int = 0,
    optimizer: str = "adam",
) -> TrainResult:
    """Train `model` (a Distiller) for `epochs`, resuming from `checkpoint_dir` if a run was cut short.

    `optimizer`: "adam", or "sgd" (Nesterov momentum 0.9, as Hinton's dropout nets were trained),
    either with the learning rate decayed along a cosine to zero.

    `patience` > 0 (needs `validation`): stop once that many epochs have passed without a higher
    validation accuracy, and end with the best epoch's student weights (TrainResult.best_epoch)."""
    checkpoint_dir = Path(checkpoint_dir)
    checkpoint_dir.mkdir(parents=True, exist_ok=True)
    batches = EpochBatches(x_train, y_train, batch_size, seed, max_shift)
    steps = len(batches)
    # Cosine decay to zero over the whole stage: the last epochs settle into a minimum.
    schedule = keras.optimizers.schedules.CosineDecay(learning_rate, decay_steps=max(1, epochs * steps))
    optimizer = _optimizer(optimizer, schedule)
    model.compile(optimizer=optimizer)

    epoch_var = tf.Variable(0, dtype=tf.int64, trainable=False)
    # A method's own trained state (adapter, peers) is saved beside the student; Hinton has none,
    # so its checkpoints keep the original layout.
    extras = model.method.checkpoint_objects() if getattr(model, "method", None) is not None else {}
    ckpt = tf.train.Checkpoint(student=model.student, optimizer=optimizer, epoch=epoch_var, **extras)
    manager = tf.train.CheckpointManager(ckpt, str(checkpoint_dir), max_to_keep=1)
    history_path = checkpoint_dir / "history.json"
    history: dict[str, list[float]] = {}
    elapsed = 0.0
    if manager.latest_checkpoint:
        # Build the optimizer's slots first so the restore fills them instead of deferring.
        optimizer.build(getattr(model, "trained_variables", None) or model.student.trainable_variables)
        ckpt.restore(manager.latest_checkpoint).assert_existing_objects_matched()
        if history_path.exists():
            saved = json.loads(history_path.read_text())
            history, elapsed = saved["history"], saved["seconds"]
    first_epoch = int(epoch_var.numpy())
    batches.epoch = first_epoch
    batches._order = batches._permutation()

    checkpointer = _Checkpoint(manager, epoch_var, history_path, history, elapsed)
    early = []
    if patience > 0:
        if validation is None:
            raise ValueError("early stopping (patience > 0) needs validation data")
        seen = history.get("val_accuracy", [])
        early = [_EarlyStopping(model.student, checkpoint_dir / BEST_WEIGHTS, seen, patience)]
    if first_epoch < epochs and not stopped(history.get("val_accuracy", []) if early else [], patience):
        model.fit(
            batches,
            validation_data=validation,
            # Keras would validate 32 at a time: ten times the steps, for the same counts.
            validation_batch_size=VALIDATION_BATCH,
            epochs=epochs,
            initial_epoch=first_epoch,
            verbose=0,
            shuffle=False,
            # Early stopping saves the best weights before the checkpoint records the epoch.
            callbacks=[_Progress(label, epochs, first_epoch, steps), *early, checkpointer, *(callbacks or [])],
        )
    result = TrainResult(history=history, seconds=round(checkpointer.seconds(), 2), epochs=epochs)
    if early and history.get("val_accuracy"):
        result.best_epoch, result.epochs_run = best_epoch(history["val_accuracy"]), len(history["val_accuracy"])
        if result.best_epoch < result.epochs_run:
            model.student.load_weights(str(checkpoint_dir / BEST_WEIGHTS))
    return result
