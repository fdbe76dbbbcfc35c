"""The training stages: teacher, the method's extra models, baseline + student, QAT.

Each takes the `Build` and returns (artifacts, info) for stages.json. What the distillation
method adds (extra models, the teacher per stage, how the student is made) comes from its
`BuildRecipe` (`build.recipe`); nothing here names a method.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import numpy as np

from ..errors import TinykdError
from ..fileio import write_json
from .stages import SEED_OFFSET


def train_teacher(build):
    """teacher.keras: trained with [teacher], or loaded from [teacher] model."""
    from ..models import count_params

    build.seed("train-teacher")
    c = build.config.teacher
    if c.model:
        return _load_teacher(build, Path(c.model))
    teacher = build.new_model(c.arch)
    result = build.train("train-teacher", teacher, c)
    build.save_model(teacher, "teacher")
    build.save_history("teacher", result)
    return ["teacher.keras"], {"params": count_params(teacher), "train_seconds": result.seconds}


def _load_teacher(build, path: Path):
    """--teacher-model: a saved teacher instead of training one (e.g. one shared by several builds)."""
    from ..models import count_params
    from ..models.store import load_model

    d = build.dataset
    teacher = load_model(path)
    inputs, outputs = tuple(teacher.inputs[0].shape[1:]), int(teacher.outputs[0].shape[-1])
    if inputs != tuple(d.input_shape) or outputs != d.num_classes:
        raise TinykdError(
            f"The teacher model {path} takes inputs of shape {inputs} and has {outputs} outputs, but task "
            f"'{build.config.task}' has inputs {tuple(d.input_shape)} and {d.num_classes} classes. Give a "
            "teacher trained for this task, or leave --teacher-model out to train one."
        )
    build.save_model(teacher, "teacher")
    # A teacher trained here before would leave its curves in the report.
    (build.out / "history" / "teacher.json").unlink(missing_ok=True)
    build.log(f"  teacher loaded from {path} ({count_params(teacher):,} parameters), not trained")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    return ["teacher.keras"], {"params": count_params(teacher), "loaded_from": str(path), "sha256": digest}


def extra_teachers(build):
    """The models the method needs besides the build's teacher (none for most methods). A method
    reading T and alpha here, before any search, sees numbers: as given, or the fallback for "auto"
    (what a method with extra models distils at; tinykd.config.DistillConfig.numbers)."""
    return build.recipe.train_extra_models(Resolved(build, *build.config.distill.numbers()))


DISTILLATION = "distillation.json"


class Resolved:
    """The build as the method's recipe sees it in the distill and qat stages: `config` with the
    chosen temperature and alpha in place of "auto" (everything else is the build's own: its
    fingerprints, seeds and checkpoints still follow the configuration as given), and training
    of the student stopping early on validation ([distill] patience)."""

    def __init__(self, build, temperature: float, alpha: float):
        import dataclasses

        self._build = build
        kd = dataclasses.replace(build.config.distill, temperature=temperature, alpha=alpha)
        self.config = dataclasses.replace(build.config, distill=kd)

    def __getattr__(self, name):
        return getattr(self._build, name)

    def train(self, stage, model, section, kd=None, **options):
        if stage == "distill" and section == self.config.student:
            options.setdefault("patience", self.config.distill.patience)
        return self._build.train(stage, model, section, kd, **options)


def choose_temperature_alpha(build) -> dict:
    """The (T, alpha) the student learns with: as given, or, for "auto", the best of the
    [distill] search grid on validation errors (tinykd.experiments.kd_search.grid_search)."""
    import tf_keras as keras

    from ..experiments.kd_search import best_point, grid_search

    kd, d, c = build.config.distill, build.dataset, build.config.student
    fixed_t, fixed_a = kd.numbers()
    if not kd.searched:
        return {"searched": False, "temperature": fixed_t, "alpha": fixed_a, "reason": "given"}
    if not build.recipe.searchable:
        build.log(
            f"  T/alpha search skipped: method '{kd.method}' trains peers or generations with the student; "
            f"T = {fixed_t:g}, alpha = {fixed_a:g}"
        )
        return {
            "searched": False,
            "temperature": fixed_t,
            "alpha": fixed_a,
            "reason": f"method '{kd.method}' trains peers or generations with the student: not searched, "
            "T and alpha as for MNIST",
        }
    temperatures = [float(kd.temperature)] if kd.temperature != "auto" else [float(t) for t in kd.search_temperatures]
    alphas = [float(kd.alpha)] if kd.alpha != "auto" else [float(a) for a in kd.search_alphas]
    x, y = d.x_train, d.y_train
    if 0 < kd.search_train < len(y):
        # A fixed random subset (the build's seed), in the training set's order.
        rng = np.random.default_rng([build.config.seed, 6])
        keep = np.sort(rng.choice(len(y), kd.search_train, replace=False))
        x, y = x[keep], y[keep]
    build.log(
        f"  choosing T and alpha: {len(temperatures)} x {len(alphas)} points, {kd.search_epochs} epoch(s) on "
        f"{len(y)} training examples, errors on {len(d.y_val)} validation examples"
    )
    started = time.perf_counter()

    loaded: dict = {}  # one copy of each model the points learn from (the teacher), frozen

    def load_once(name: str):
        if name not in loaded:
            loaded[name] = build.load_model(name)
        return loaded[name]

    def kd_pair(t: float, a: float):
        view = Resolved(build, t, a)
        view.load_model = load_once
        return build.recipe.kd_pair(view, "distill")

    found = grid_search(
        lambda: build.new_model(c.arch),
        kd_pair,
        (x, y),
        (d.x_val, d.y_val),
        temperatures,
        alphas,
        epochs=kd.search_epochs,
        batch_size=c.batch_size,
        learning_rate=c.learning_rate,
        seed=build.config.seed * 100 + SEED_OFFSET["kd-search"],
        max_shift=build.config.data.jitter,
    )
    # The search's models are gone; the baseline and the student start from a fresh naming state,
    # as they would with the search skipped.
    keras.backend.clear_session()
    best = best_point(found)
    build.log(f"  chose T = {best.temperature:g}, alpha = {best.alpha:g} ({best.val_errors} validation errors)")
    return {
        "searched": True,
        "temperature": best.temperature,
        "alpha": best.alpha,
        "temperatures": temperatures,
        "alphas": alphas,
        "epochs": kd.search_epochs,
        "train_examples": int(len(y)),
        "val_examples": int(len(d.y_val)),
        "points": [p.to_dict() for p in found],
        "seconds": round(time.perf_counter() - started, 2),
    }


def distillation_record(build) -> dict:
    """distillation.json of the distill stage: the T/alpha choice and the model shipped."""
    path = build.out / DISTILLATION
    if not path.exists():
        raise TinykdError(f"{path} is missing: the distill stage did not finish. Run `tinykd distill` (or build).")
    return json.loads(path.read_text())


def _val_errors(model, result, d):
    """The model's float validation errors: from its training history where it holds them (the
    epoch whose weights it kept, measured by the loop on the same examples), else counted."""
    from ..evaluate import ClassificationResult
    from ..experiments.points import float_errors

    accuracy = result.history.get("val_accuracy")
    if not accuracy:
        return float_errors(model, d.x_val, d.y_val, d.num_classes)
    total = len(d.y_val)
    errors = round(total * (1.0 - accuracy[(result.best_epoch or len(accuracy)) - 1]))
    return ClassificationResult("float", errors, total, [])


_WHAT = {"student": "KD student", "baseline": "no-KD baseline"}


def distill(build):
    """baseline.keras (the student's architecture on the labels alone) and student.keras (as the
    method makes it, at the T and alpha chosen on validation), plus whatever else the method
    keeps; distillation.json: the search, each model's best epoch and validation errors, and
    which of the two is shipped ([distill] ship: by default the one with fewer validation errors,
    the baseline on a tie)."""
    from ..models import count_params

    c, d, kd = build.config.student, build.dataset, build.config.distill
    choice = choose_temperature_alpha(build)
    resolved = Resolved(build, choice["temperature"], choice["alpha"])
    # The baseline and the KD student start alike (the distill stage's seed: the same initial
    # weights, the same batches in the same order): their difference on validation then owes
    # nothing to two different random starts (their training still diverges: benchmarks/methods.md).
    build.seed("distill")
    baseline = build.new_model(c.arch)
    base_result = build.train("baseline", baseline, c, seed=build.seed("distill"), patience=kd.patience)
    build.save_model(baseline, "baseline")
    build.save_history("baseline", base_result)
    build.seed("distill")
    student, kd_result, extra = build.recipe.distill(resolved, baseline)
    build.save_model(student, "student")
    build.save_history("student", kd_result)
    val = {
        "baseline": _val_errors(baseline, base_result, d),
        "student": _val_errors(student, kd_result, d),
    }
    better = "student" if val["student"].errors < val["baseline"].errors else "baseline"
    shipped = {"better": better, "kd": "student", "baseline": "baseline"}[kd.ship]
    record = {
        "choice": choice,
        "temperature": choice["temperature"],
        "alpha": choice["alpha"],
        "patience": kd.patience,
        "max_epochs": c.epochs,
        "models": {
            name: {
                "val_errors": val[name].errors,
                "val_total": val[name].total,
                "best_epoch": result.best_epoch,
                "epochs_run": result.epochs_run,
            }
            for name, result in (("baseline", base_result), ("student", kd_result))
        },
        "ship": kd.ship,
        "shipped": shipped,
    }
    write_json(build.out / DISTILLATION, record)
    v_kd, v_base = val["student"].errors, val["baseline"].errors
    if kd.ship != "better":
        why = f"as asked (ship = {kd.ship}; the better on validation is the {_WHAT[better]})"
    elif shipped == "student":
        why = f"({v_base - v_kd} fewer)"
    else:
        why = "(distillation did not help on validation)"
    build.log(f"  validation errors: KD student {v_kd}, no-KD baseline {v_base}: shipping the {_WHAT[shipped]} {why}")
    return ["baseline.keras", "student.keras", DISTILLATION] + extra, {
        "params": count_params(student),
        "baseline_seconds": base_result.seconds,
        "student_seconds": kd_result.seconds,
        "temperature": choice["temperature"],
        "alpha": choice["alpha"],
        "shipped": shipped,
        "baseline_best_epoch": base_result.best_epoch,
        "student_best_epoch": kd_result.best_epoch,
    }


def qat(build):
    """student_qat.h5: the shipped model (distillation.json: the KD student, or the baseline when
    distillation did not help on validation) with tfmot's fake quantisation, fine-tuned: still
    distilling at the chosen T and alpha, or on the labels alone for the baseline."""
    from ..quantize import quantize_student

    record = distillation_record(build)
    shipped = record["shipped"]
    build.seed("qat")
    qat_student = quantize_student(build.load_model(shipped))
    kd = None
    if shipped == "student":
        kd = build.recipe.kd_pair(Resolved(build, record["temperature"], record["alpha"]), "qat")
    result = build.train("qat", qat_student, build.config.qat, kd)
    name = build.save_model(qat_student, "student_qat")
    build.save_history("student_qat", result)
    return [name], {"train_seconds": result.seconds, "from": shipped}
