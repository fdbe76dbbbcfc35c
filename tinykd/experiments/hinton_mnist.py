"""Hinton, Vinyals & Dean (2015), "Distilling the Knowledge in a Neural Network", §3 (MNIST).

Rows, each trained once and stored as its own JSON under `rows/` (skipped on a rerun with
the same settings, so an interrupted run resumes; training itself resumes per epoch):

- the teacher: 784-1200-1200-10, dropout 0.5 (input 0.2), max-norm 3.5, jitter ±2 px, on all
  60 000 training images as the paper's (SGD with Nesterov momentum);
- 784-800-800-10 on the labels alone, no dropout, no jitter;
- the same net distilled from the teacher at T = 20;
- 300-300 and 30-30 students at several temperatures, and on the labels alone;
- the 800-800 student distilled on a transfer set with no 3s, with the bias of class 3
  raised by the paper's 3.5 and by a value chosen on the validation set.

The transfer set is the training images without jitter: the paper stresses that the student
learned "how to generalize ... from translated training data even though the transfer set
does not contain any translations". So the teacher's soft targets are on the unshifted images.
"""

from __future__ import annotations

import math
import shutil
import time
import zlib
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..errors import TinykdError
from ..fileio import write_json
from ..report.hinton2015 import PAPER_BIAS
from .hinton_mnist_plan import OMITTED_CLASS, Row, Settings, plan, teacher_row

__all__ = [
    "BIAS_GRID",
    "OMITTED_CLASS",
    "PAPER_BIAS",
    "Context",
    "Reproduction",
    "Row",
    "Settings",
    "choose_bias",
    "errors_with_bias",
    "plan",
    "raise_class_bias",
    "reproduce_hinton_mnist",
    "run_row",
    "shifted_logits",
    "teacher_row",
]

# Validation bias search: 0 to 10 in steps of 0.1 covers the paper's 3.5 with room to spare.
BIAS_GRID = np.round(np.arange(0.0, 10.0001, 0.1), 1)


# ------------------------------------------------------------------ bias correction


def raise_class_bias(model, class_index: int, delta: float) -> None:
    """Add `delta` to the bias of one class in the model's `logits` layer, as the paper does."""
    layer = model.get_layer("logits")
    kernel, bias = layer.get_weights()
    bias = bias.copy()
    bias[class_index] += np.float32(delta)
    layer.set_weights([kernel, bias])


def shifted_logits(logits: np.ndarray, class_index: int, delta: float) -> np.ndarray:
    """The logits the model gives after `raise_class_bias`: the bias adds to every example's logit."""
    out = np.array(logits, dtype=np.float32, copy=True)
    out[:, class_index] += np.float32(delta)
    return out


def errors_with_bias(logits: np.ndarray, labels: np.ndarray, class_index: int, delta: float) -> tuple[int, int]:
    """(all errors, errors on examples of `class_index`) once that class's bias is raised by `delta`."""
    wrong = np.argmax(shifted_logits(logits, class_index, delta), axis=-1) != labels
    return int(wrong.sum()), int(wrong[labels == class_index].sum())


def choose_bias(logits: np.ndarray, labels: np.ndarray, class_index: int, grid=BIAS_GRID) -> float:
    """The bias shift with the fewest errors on (validation) `logits`; ties: the middle of the best ones,
    which is furthest from the edges of a flat optimum."""
    errors = np.array([errors_with_bias(logits, labels, class_index, d)[0] for d in grid])
    best = np.flatnonzero(errors == errors.min())
    return float(grid[best[len(best) // 2]])


# ------------------------------------------------------------------------ training


@dataclass
class Context:
    settings: Settings
    out: Path
    dataset: object
    teacher: object = None
    teacher_train_logits: np.ndarray | None = None


def _packed(student, input_shape: tuple[int, ...], num_classes: int):
    """Student and 'teacher' over inputs that carry the teacher's logits beside the pixels.

    The transfer set has no jitter, so the teacher's logits are the same every epoch: computing
    them once saves the teacher's forward pass on every batch (most of the cost for a 30-30
    student) while `Distiller` and `train` stay the ones the pipeline uses.
    """
    import tf_keras as keras

    import tinykd  # noqa: F401

    pixels = math.prod(input_shape)
    packed = keras.Input(shape=(pixels + num_classes,), name="image_and_teacher_logits")
    image = keras.layers.Reshape(input_shape)(packed[:, :pixels])
    student_view = keras.Model(packed, student(image), name="packed_student")
    teacher_view = keras.Model(packed, packed[:, pixels:], name="precomputed_teacher")
    return student_view, teacher_view


def _pack(x: np.ndarray, logits: np.ndarray) -> np.ndarray:
    return np.concatenate([x.reshape(len(x), -1), logits.astype(np.float32)], axis=1)


def _teacher_logits(ctx: Context) -> np.ndarray:
    from ..evaluate.host import predict_logits
    from ..models.store import load_model

    if ctx.teacher is None:
        ctx.teacher = load_model(ctx.out / "teacher.keras")
    if ctx.teacher_train_logits is None:
        ctx.teacher_train_logits = predict_logits(ctx.teacher, ctx.dataset.x_train)
    return ctx.teacher_train_logits


def _train_row(row: Row, ctx: Context, checkpoints: Path):
    """Train the row's model; returns (model, TrainResult, number of transfer examples)."""
    from ..distill import Distiller, get_method, train
    from ..distill.training import seed_everything
    from ..models import build_model
    from ..models.store import load_model

    s, d = ctx.settings, ctx.dataset
    x, y = d.x_train, d.y_train
    # Soft targets computed once, on the unshifted images, unless the row jitters its transfer set.
    teacher_logits = _teacher_logits(ctx) if row.temperature is not None and not row.jitter else None
    if row.omit_class is not None:
        keep = y != row.omit_class
        x, y, teacher_logits = x[keep], y[keep], teacher_logits[keep]
    seed_everything(row.seed(s), fresh_session=True)
    model = build_model(row.arch, d.input_shape, d.num_classes)
    fit_args = dict(
        epochs=row.epochs,
        batch_size=s.batch_size,
        learning_rate=row.lr(s),
        optimizer=row.optimizer,
        seed=row.seed(s),
        max_shift=row.jitter,
        checkpoint_dir=checkpoints,
        label=row.name,
    )
    if row.name == "teacher":
        # The paper's teacher learned from all 60 000 training images; the students keep the
        # validation images out (the omitted-class bias is chosen on them). With no validation
        # left, the teacher's curve is its test errors, only watched: its schedule is fixed.
        x, y = np.concatenate([x, d.x_val]), np.concatenate([y, d.y_val])
        result = train(Distiller(model, None), x, y, (d.x_test, d.y_test), **fit_args)
    elif row.temperature is not None and row.jitter:
        # The teacher runs on every shifted batch: its soft targets follow the jitter. Loaded
        # afresh after the session reset, like every model of the row.
        teacher = load_model(ctx.out / "teacher.keras")
        method = get_method("hinton", row.temperature, s.alpha)
        result = train(Distiller(model, teacher, method=method), x, y, (d.x_val, d.y_val), **fit_args)
    elif teacher_logits is None:
        result = train(Distiller(model, None), x, y, (d.x_val, d.y_val), **fit_args)
    else:
        student_view, teacher_view = _packed(model, d.input_shape, d.num_classes)
        wrapper = Distiller(student_view, teacher_view, method=get_method("hinton", row.temperature, s.alpha))
        # Validation measures the student alone: the logits columns are never read there.
        x_val = _pack(d.x_val, np.zeros((len(d.x_val), d.num_classes), np.float32))
        result = train(wrapper, _pack(x, teacher_logits), y, (x_val, d.y_val), **fit_args)
    return model, result, len(y)


def _evaluate(model, ctx: Context) -> dict:
    from ..evaluate.host import classification_result, predict_logits

    d = ctx.dataset
    test = classification_result("test", predict_logits(model, d.x_test), d.y_test, d.num_classes)
    val = classification_result("val", predict_logits(model, d.x_val), d.y_val, d.num_classes)
    confusion = np.asarray(test.confusion)
    per_class = (confusion.sum(axis=1) - np.diag(confusion)).tolist()
    return {
        "errors": test.errors,
        "total": test.total,
        "accuracy": round(test.accuracy, 6),
        "errors_per_class": per_class,
        "val_errors": val.errors,
        "val_total": val.total,
    }


def _bias_correction(model, ctx: Context, cls: int) -> dict:
    """The omitted class's bias raised by the paper's value and by one chosen on validation."""
    from ..evaluate.host import predict_logits

    d = ctx.dataset
    val_logits, test_logits = predict_logits(model, d.x_val), predict_logits(model, d.x_test)
    val_delta = choose_bias(val_logits, d.y_val, cls)
    out = {"class": cls, "class_test_examples": int((d.y_test == cls).sum())}
    original = model.get_layer("logits").get_weights()
    for key, delta in (("paper", PAPER_BIAS), ("validation", val_delta)):
        raise_class_bias(model, cls, delta)
        errors, on_class = errors_with_bias(predict_logits(model, d.x_test), d.y_test, cls, 0.0)
        model.get_layer("logits").set_weights(original)
        out[key] = {
            "delta": delta,
            "errors": errors,
            "class_errors": on_class,
            "val_errors": errors_with_bias(val_logits, d.y_val, cls, delta)[0],
        }
    out["before"] = {"class_errors": errors_with_bias(test_logits, d.y_test, cls, 0.0)[1]}
    return out


def run_row(row: Row, ctx: Context) -> dict:
    """Train and evaluate one row, or return its stored result when the settings match."""
    from ..models import count_params
    from ..models.store import save_model

    settings = row.settings(ctx.settings)
    path = ctx.out / "rows" / f"{row.name}.json"
    stored = _load_json(path)
    teacher_file = ctx.out / "teacher.keras"
    if stored and stored.get("settings") == settings and (row.name != "teacher" or teacher_file.exists()):
        return {**stored, "skipped": True}
    started = time.perf_counter()
    fingerprint = f"{zlib.crc32(repr(sorted(settings.items())).encode()):08x}"
    checkpoints = ctx.out / "checkpoints" / f"{row.name}-{fingerprint}"
    for stale in (ctx.out / "checkpoints").glob(f"{row.name}-*"):
        if stale != checkpoints:
            shutil.rmtree(stale, ignore_errors=True)
    model, trained, transfer_examples = _train_row(row, ctx, checkpoints)
    n = len(ctx.dataset.y_test if row.name == "teacher" else ctx.dataset.y_val)
    result = {
        "name": row.name,
        "experiment": row.experiment,
        "settings": settings,
        "params": count_params(model),
        "transfer_examples": transfer_examples,
        **_evaluate(model, ctx),
        # Errors per epoch on what train() watched: the test set for the teacher, else validation.
        "curve": {
            "on": "test" if row.name == "teacher" else "val",
            "errors": [round((1 - a) * n) for a in trained.history["val_accuracy"]],
            "total": n,
        },
    }
    if row.omit_class is not None:
        result["bias_correction"] = _bias_correction(model, ctx, row.omit_class)
    if row.name == "teacher":
        save_model(model, teacher_file)
        ctx.teacher, ctx.teacher_train_logits = model, None
    result["train_seconds"] = trained.seconds
    result["wall_seconds"] = round(time.perf_counter() - started, 2)
    write_json(path, result)
    shutil.rmtree(checkpoints, ignore_errors=True)
    return {**result, "skipped": False}


def _load_json(path: Path) -> dict | None:
    import json

    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


@dataclass
class Reproduction:
    out: Path
    rows: list[dict]
    table: Path
    results: Path
    plot: Path


def reproduce_hinton_mnist(
    out: str | Path,
    data_dir: str | Path | None = None,
    seed: int = 0,
    quick: bool = False,
    log: Callable[[str], None] = print,
) -> Reproduction:
    """Run (or resume) every row, then write results.json, hinton-mnist.md and the plot into `out`."""
    from ..data import get_task
    from .hinton_mnist_report import write_outputs

    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise TinykdError(
            f"Cannot create the output folder {out} ({exc}). Pass a writable folder with --out."
        ) from None
    s = Settings.for_run(seed, quick)
    dataset = get_task("mnist").load(
        str(data_dir) if data_dir else None,
        val_size=s.val_size,
        seed=s.seed,
        train_limit=s.train_limit,
        test_limit=s.test_limit,
    )
    ctx = Context(s, out, dataset)
    rows = plan(s)
    results = []
    for i, row in enumerate(rows, start=1):
        log(f"[{i}/{len(rows)}] {row.name}: {row.experiment} ({row.arch}, {row.epochs} epochs)")
        result = run_row(row, ctx)
        log(
            f"    {'already done' if result['skipped'] else 'done'}: {result['errors']} test errors "
            f"of {result['total']}"
        )
        results.append(result)
    return write_outputs(out, asdict(s), results)
