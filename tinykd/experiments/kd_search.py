"""Temperature and alpha chosen on validation errors: the build's grid (`grid_search`, every
build with `--temperature auto` / `--alpha auto`) and a search over continuous ranges through
the trial runner (`search_temperature_alpha`, a library call).

`grid_search` distils the student at every (T, alpha) of a small grid through one traced
training graph: T and alpha are variables the loss reads, and before each point the student's
weights, the optimizer's state and the batches are set back to the same start, so each point
learns as it would alone and their differences are not seed noise. On this project's 2-core
machines that is what fits a build: separate trials (run_trials, Ray Tune) would each start a
process and trace their own graph, which alone costs more than the whole --quick search, and the
build has its data and teacher in memory already. The points are ranked by float validation
errors (then validation loss, then grid order): test data are never looked at while choosing.

`search_temperature_alpha` below samples continuous ranges with Tune instead:

Tune's `BasicVariantGenerator`, seeded, draws the samples (T log-uniform, alpha uniform): the
same seed draws the same (T, alpha) and, each point being deterministic, gives the same
errors. Each sample is one trial of the shared runner (tinykd.trials): the student distilled at
that (T, alpha) for the configured epochs, its float validation errors reported. A sample's
result is kept in out/kd_search/ by its settings: a rerun reports it again without training.
Test errors are never looked at while choosing.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..config import BuildConfig
from ..errors import TinykdError
from ..trials import EMBEDDED, RayOptions, Trial, run_trials
from . import points


@dataclass
class GridPoint:
    temperature: float
    alpha: float
    val_errors: int
    val_loss: float  # mean cross-entropy on the validation examples: breaks ties of errors

    def to_dict(self) -> dict:
        return {
            "temperature": self.temperature,
            "alpha": self.alpha,
            "val_errors": self.val_errors,
            "val_loss": round(self.val_loss, 6),
        }


def best_point(found: list[GridPoint]) -> GridPoint:
    """Fewest validation errors; then the lower validation loss; then the first in grid order."""
    return min(enumerate(found), key=lambda e: (e[1].val_errors, e[1].val_loss, e[0]))[1]


def grid_search(
    new_student: Callable[[], object],
    kd_pair: Callable[[float, float], tuple[object, object]],
    train_data: tuple[np.ndarray, np.ndarray],
    validation: tuple[np.ndarray, np.ndarray],
    temperatures: list[float],
    alphas: list[float],
    *,
    epochs: int,
    batch_size: int,
    learning_rate: float,
    seed: int,
    max_shift: int = 0,
    label: str = "T/alpha search",
) -> list[GridPoint]:
    """Distil the student at every (T, alpha) of temperatures x alphas (T-major) for `epochs`, one
    point after another, and count each one's validation errors. `new_student()` builds the
    student; `kd_pair(T, alpha)` returns the (DistillationMethod, teacher) it learns with. The
    random generators are seeded with `seed` first: the same inputs give the same points."""
    import tensorflow as tf
    import tf_keras as keras

    from ..distill import Distiller
    from ..distill.training import EpochBatches, _Progress, seed_everything

    seed_everything(seed)
    grid = [(float(t), float(a)) for t in temperatures for a in alphas]
    student = new_student()
    method, teacher = kd_pair(*grid[0])
    # T and alpha as variables that the method's loss reads when it is traced: one training graph
    # serves every point (tracing it costs more than a --quick point's whole training).
    method.temperature = tf.Variable(grid[0][0], trainable=False, dtype=tf.float32)
    method.alpha = tf.Variable(grid[0][1], trainable=False, dtype=tf.float32)
    wrapper = Distiller(student, teacher, method=method)
    # Every point starts from these weights (the student's and a method's own, e.g. an adapter).
    state = list({id(v): v for v in student.weights + list(method.extra_trainable_variables())}.values())
    initial = [v.numpy() for v in state]
    x, y = train_data
    steps = int(np.ceil(len(y) / batch_size))
    # The run's own learning-rate schedule (cosine decay over its epochs), as a full run has.
    schedule = keras.optimizers.schedules.CosineDecay(learning_rate, decay_steps=max(1, epochs * steps))
    optimizer = keras.optimizers.Adam(schedule)
    wrapper.compile(optimizer=optimizer)
    x_val, y_val = validation
    y_val = np.asarray(y_val)
    progress = _Progress(f"{label} ({len(grid)} points)", epochs * len(grid), 0, steps)

    class Advance(keras.callbacks.Callback):  # one bar over every point's batches
        def on_train_batch_end(self, batch, logs=None):
            progress.bar.update(1)

    found = []
    try:
        for t, a in grid:
            for v, value in zip(state, initial, strict=True):
                v.assign(value)
            for v in optimizer.variables():  # a fresh Adam: step 0, zero moments
                v.assign(tf.zeros_like(v))
            method.temperature.assign(t)
            method.alpha.assign(a)
            # The same batches for every point (same seed, epoch 0 onwards).
            batches = EpochBatches(x, y, batch_size, seed, max_shift)
            wrapper.fit(batches, epochs=epochs, verbose=0, shuffle=False, callbacks=[Advance()])
            logits = student.predict(x_val, batch_size=1000, verbose=0).astype(np.float64)
            shifted = logits - logits.max(axis=-1, keepdims=True)
            log_probs = shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
            errors = int((logits.argmax(axis=-1) != y_val).sum())
            loss = float(-log_probs[np.arange(len(y_val)), y_val].mean())
            found.append(GridPoint(t, a, errors, loss))
    finally:
        progress.bar.close()
    return found


def search_temperature_alpha(
    config: BuildConfig,
    out: str | Path,
    student: str,
    *,
    samples: int = 16,
    temperatures: tuple[float, float] = (1.0, 20.0),
    alphas: tuple[float, float] = (0.0, 1.0),
    ray: RayOptions = EMBEDDED,
    log: Callable[[str], None] = print,
) -> list[dict]:
    """Distil `student` at `samples` (T, alpha) drawn from the ranges; returns every sample as
    {"temperature", "alpha", "val_errors", "val_total"}, best (fewest validation errors) first."""
    from ray import tune
    from ray.tune.search import BasicVariantGenerator

    from ..models import check_model_name

    (t_low, t_high), (a_low, a_high) = temperatures, alphas
    if samples < 1:
        raise TinykdError(f"A T/alpha search needs at least one sample (got {samples}).")
    if not 0 < t_low <= t_high:
        raise TinykdError(f"Temperatures must be a range 0 < low <= high (got {t_low:g}..{t_high:g}), e.g. 1..20.")
    if not 0.0 <= a_low <= a_high <= 1.0:
        raise TinykdError(f"Alphas must be a range inside [0, 1] (got {a_low:g}..{a_high:g}), e.g. 0..1.")
    check_model_name(student)
    method = config.distill.method
    if method not in points.searchable_methods():
        raise TinykdError(
            f"A T/alpha search distils one student from models trained before it; method {method!r} trains "
            f"peers or generations with the student. Use one of {', '.join(points.searchable_methods())}."
        )
    experiment = points.open_experiment(config, out, log=log, methods=[method])
    space = {
        "arch": student,
        "method": method,
        "temperature": tune.loguniform(t_low, t_high) if t_low < t_high else t_low,
        "alpha": tune.uniform(a_low, a_high) if a_low < a_high else a_low,
    }
    outcomes = run_trials(
        experiment,
        distil_sample,
        space,
        options=ray,
        desc="T/alpha search",
        num_samples=samples,
        search_alg=BasicVariantGenerator(random_state=config.seed),
        metric="val_errors",
        mode="min",
    )
    found = [
        {k: o.metrics[k] for k in ("temperature", "alpha", "val_errors", "val_total")} | {"key": o.metrics["key"]}
        for o in outcomes
    ]
    return sorted(found, key=lambda r: (r["val_errors"], r["key"]))


def distil_sample(experiment: points.Experiment, params: dict, trial: Trial) -> dict:
    """One (T, alpha) sample as one trial: the student distilled there, its validation errors."""
    d, c = experiment.dataset, experiment.config
    spec = points.StudentSpec(params["arch"], params["method"], float(params["temperature"]), float(params["alpha"]))
    settings = experiment.student_settings(spec)
    settings = json.loads(json.dumps(settings, default=str))  # as it reads back from its file
    key = f"{spec.arch}-T{spec.temperature:.4g}-a{spec.alpha:.4g}-{points.settings_digest(settings)}"
    record = f"kd_search/{key}.json"
    saved = trial.read_json(record)
    if saved is None or saved.get("settings") != settings:
        work = trial.scratch(f"kd-search-{key}")
        student, _ = points.train_student(experiment, spec, c.student.epochs, work)
        val = points.float_errors(student, d.x_val, d.y_val, d.num_classes)
        saved = {"settings": settings, "val_errors": val.errors, "val_total": val.total}
        trial.write(record, saved)
        points.remove_tree(work)
    return {
        "key": key,
        "temperature": spec.temperature,
        "alpha": spec.alpha,
        "val_errors": saved["val_errors"],
        "val_total": saved["val_total"],
        "summary": f"T {spec.temperature:.3g}, alpha {spec.alpha:.3g}: {saved['val_errors']} validation errors",
    }
