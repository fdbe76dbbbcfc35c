"""One student, trained and measured: the unit of work of `tinykd sweep` and `tinykd fit`.

An `Experiment` holds what every student of a sweep or search shares (configuration, data,
the teacher); the functions here train one student with the pipeline's own loop (`Distiller`
+ `train`, per-epoch checkpoints), fine-tune it with QAT, convert it to int8, count its errors
in TFLite Micro and size its firmware for a board.

Every student of one architecture starts from the same initial weights and sees the same
batches (the seed does not depend on T, alpha or method; the student is built before any teacher
is loaded): points of a sweep, the no-KD baseline included, then differ only in what is swept,
and their differences are not seed noise. Methods with models of their own (ensemble members,
specialists) have them trained once per experiment, around its teacher, by the pipeline's
extra-teachers stage in out/extra-<method>/.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..config import BuildConfig
from ..errors import FirmwareTooLarge

# Offsets from seed * 100, distinct from the pipeline's stage offsets (1-4).
_INIT_SEED_OFFSET = 11
_TRAIN_SEED_OFFSET = 12
_QAT_SEED_OFFSET = 13


@dataclass(frozen=True)
class StudentSpec:
    """What one student is: its architecture and how it learns (method None: labels only)."""

    arch: str
    method: str | None = "hinton"
    temperature: float = 20.0
    alpha: float = 0.9
    seed: int | None = None  # None: the build's seed; a number: one of a sweep's --seeds

    @property
    def is_baseline(self) -> bool:
        return self.method is None

    @property
    def key(self) -> str:
        """A readable file name for the point, e.g. mlp-30-30__hinton__T4__a0.9 (+ __s2 for seed 2
        of a sweep over seeds)."""
        name = (
            f"{self.arch}__baseline"
            if self.is_baseline
            else f"{self.arch}__{self.method}__T{self.temperature:g}__a{self.alpha:g}"
        )
        return name if self.seed is None else f"{name}__s{self.seed}"

    def seed_or(self, default: int) -> int:
        """The seed this student's initial weights and batches come from."""
        return default if self.seed is None else self.seed


@dataclass
class Experiment:
    """What every student of one sweep or search shares."""

    config: BuildConfig
    out: Path
    dataset: Any  # tinykd.data.base.Dataset
    task: Any  # tinykd.data.Task
    teacher_path: Path
    teacher_id: str  # the teacher stage's fingerprint: part of every point's settings
    log: Callable[[str], None] = print

    def load_teacher(self):
        from ..models.store import load_model

        return load_model(self.teacher_path)

    def extra_build(self, method: str):
        """The build folder out/extra-<method> where a method with models of its own (ensemble
        members, specialists) has them trained by the pipeline's extra-teachers stage, around this
        experiment's teacher: once, and reused while its settings hold. (Made anew on each call:
        cheap, and nothing of it, such as its data, travels with the experiment to trial processes.)"""
        from ..pipeline import Build

        c = self.config
        config = dataclasses.replace(
            c,
            distill=dataclasses.replace(c.distill, method=method),
            teacher=dataclasses.replace(c.teacher, model=str(self.teacher_path)),
        )
        return Build(config, self.out / f"extra-{method}", log=self.log)

    def kd_pair(self, spec: StudentSpec, stage: str):
        """(loss, teacher) a student of `spec` learns with in `stage` ("distill" or "qat"), or
        (None, None) for a baseline: the method at the spec's T and alpha over the teacher, and for a
        method with models of its own, over those too (its recipe's kd_pair, as in a build)."""
        from ..distill.methods import get_method, get_recipe
        from ..pipeline.training_stages import Resolved

        if spec.is_baseline:
            return None, None
        if not self._has_extra_models(spec.method):
            return get_method(spec.method, spec.temperature, spec.alpha), self.load_teacher()
        # Read, never trained, here: in a sweep this runs in trial processes, and the models are the
        # ones the driver trained (open_experiment) and fingerprinted into the point's settings.
        build = self.extra_build(spec.method)
        return get_recipe(spec.method).kd_pair(Resolved(build, spec.temperature, spec.alpha), stage)

    def prepare_models(self, method: str | None) -> None:
        """Train the method's own models if it has any and they are not there yet: what
        open_experiment does for its methods, and a caller of train_student must do first."""
        if method is not None and self._has_extra_models(method):
            self.extra_build(method).run("extra-teachers")

    def data_settings(self) -> dict:
        # Where the data was found does not matter (checksums make every copy equal).
        return dataclasses.asdict(dataclasses.replace(self.config.data, dir=""))

    def student_settings(self, spec: StudentSpec) -> dict:
        """What a student's weights depend on: its spec, the teacher, the seed, the data and
        the student training settings."""
        c = self.config
        settings = {
            "spec": vars(spec).copy(),
            "teacher": self.teacher_id,
            "seed": spec.seed_or(c.seed),
            "data": self.data_settings(),
            "student": vars(c.student).copy(),
        }
        if c.data_seed >= 0:  # unset, points made before the setting existed still match
            settings["data_seed"] = c.data_seed
        return settings | self.kd_settings(spec)

    def kd_settings(self, spec: StudentSpec) -> dict:
        """What a KD student depends on besides its spec and the teacher (part of every point's
        settings in sweeps, fit and searches): its start, and the method's own models."""
        if spec.is_baseline:
            return {}
        # Since 2026-11-30 a KD student starts where the baseline does (built before the teacher is
        # loaded); points made before started elsewhere and are trained again.
        settings = {"start": "baseline's"}
        if self._has_extra_models(spec.method):
            settings["extra_models"] = self.extra_build(spec.method).fingerprint("extra-teachers")
        return settings

    @staticmethod
    def _has_extra_models(method: str) -> bool:
        from ..distill.methods import get_recipe

        return get_recipe(method).extra_models


@dataclass
class FirmwareSize:
    """Flash and RAM of a model's firmware on a board, whether or not it fits."""

    board: str
    flash_used: int
    ram_used: int
    flash_budget: int
    ram_budget: int
    arena_bytes: int
    macs: int
    params: int  # parameters stored in flash, as the code generator counts them
    exact: bool = True  # False: the linker refused before the sizes could be read

    @property
    def fits(self) -> bool:
        return self.flash_used <= self.flash_budget and self.ram_used <= self.ram_budget

    def over_budget(self) -> str:
        """'flash by N B and RAM by M B', or '' when it fits."""
        if not self.exact:
            return "its budget (the linker refused it before its sizes could be read)"
        over = []
        if self.flash_used > self.flash_budget:
            over.append(f"flash by {self.flash_used - self.flash_budget:,} B")
        if self.ram_used > self.ram_budget:
            over.append(f"RAM by {self.ram_used - self.ram_budget:,} B")
        return " and ".join(over)

    def to_dict(self) -> dict:
        return {**dataclasses.asdict(self), "fits": self.fits, "over_budget": self.over_budget()}


def open_experiment(config: BuildConfig, out: str | Path, log: Callable[[str], None] = print, methods=()) -> Experiment:
    """Load the data and get the teacher through the pipeline's train-teacher stage in
    out/teacher: trained once and reused while its settings hold, or, with [teacher] model
    (--teacher-model), the given file, checked against the task and known by its bytes. The
    models of their own that `methods` need (ensemble members, specialists) are trained here too,
    once, before any trial starts (trials side by side would train them twice)."""
    from ..pipeline import Build

    teacher_build = Build(config, Path(out) / "teacher", log=log)  # also checks that out is writable
    teacher_build.run("train-teacher")
    experiment = Experiment(
        config,
        Path(out),
        teacher_build.dataset,
        teacher_build.task,
        teacher_build.out / "teacher.keras",
        teacher_build.fingerprint("train-teacher"),
        log,
    )
    for method in dict.fromkeys(methods):
        experiment.prepare_models(method)
    return experiment


def searchable_methods() -> tuple[str, ...]:
    """Methods a sweep, fit or T/alpha search distils students with: one loss at (T, alpha) over
    models fixed before the student trains (the teacher; ensemble members and specialists, trained
    once per experiment). Online's peers and self's generations train with the student: not these."""
    from ..distill.methods import searchable_methods

    return searchable_methods()


def _seed(experiment: Experiment, spec: StudentSpec, offset: int) -> int:
    """Set a run's seed, in a fresh Keras session."""
    from ..distill.training import seed_everything

    return seed_everything(spec.seed_or(experiment.config.seed) * 100 + offset, fresh_session=True)


def _learn(experiment: Experiment, model, kd, spec: StudentSpec, section, *, epochs: int, seed: int, **kwargs):
    """Train `model` with `kd` = (loss, teacher) and [section]'s batch size and learning rate."""
    from ..distill import Distiller, train

    d = experiment.dataset
    method, teacher = kd
    wrapper = Distiller(model, teacher, spec.temperature, spec.alpha, method=method)
    return train(
        wrapper,
        d.x_train,
        d.y_train,
        (d.x_val, d.y_val),
        epochs=epochs,
        batch_size=section.batch_size,
        learning_rate=section.learning_rate,
        seed=seed,
        max_shift=experiment.config.data.jitter,
        **kwargs,
    )


def train_student(experiment: Experiment, spec: StudentSpec, epochs: int, checkpoint_dir: Path):
    """Build the student from its fixed initial weights and train it for `epochs` in total (a
    method with models of its own needs `experiment.prepare_models(method)` first).

    A checkpoint in `checkpoint_dir` from a shorter run is continued, not restarted (the
    successive halving of `tinykd fit` trains survivors further this way). Returns
    (student, TrainResult).
    """
    from ..models import build_model

    c, d = experiment.config, experiment.dataset
    _seed(experiment, spec, _INIT_SEED_OFFSET)
    # Built before any teacher is loaded (loading a model draws random numbers): every student of
    # one architecture, the baseline included, starts from the same weights.
    student = build_model(spec.arch, d.input_shape, d.num_classes)
    kd = experiment.kd_pair(spec, "distill")  # after the session reset, like every model of the run
    result = _learn(
        experiment,
        student,
        kd,
        spec,
        c.student,
        epochs=epochs,
        seed=spec.seed_or(c.seed) * 100 + _TRAIN_SEED_OFFSET,
        checkpoint_dir=checkpoint_dir,
        label=spec.key,
    )
    return student, result


def quantize_to_int8(experiment: Experiment, student, spec: StudentSpec, checkpoint_dir: Path, tflite_path: Path):
    """QAT (config.qat epochs, still distilling with the spec's method), then full-int8
    conversion to `tflite_path`. Returns the QAT run's TrainResult."""
    from ..export import convert_int8
    from ..quantize import quantize_student

    c, d = experiment.config, experiment.dataset
    seed = _seed(experiment, spec, _QAT_SEED_OFFSET)
    kd = experiment.kd_pair(spec, "qat")
    qat_student = quantize_student(student)
    result = _learn(
        experiment,
        qat_student,
        kd,
        spec,
        c.qat,
        epochs=c.qat.epochs,
        seed=seed,
        checkpoint_dir=checkpoint_dir,
        label=f"{spec.key} QAT",
    )
    convert_int8(
        qat_student,
        d.x_train,
        tflite_path,
        samples=c.qat.calibration_samples,
        input_quantization=experiment.task.input_quantization,
    )
    return result


def float_errors(model, x: np.ndarray, y: np.ndarray, num_classes: int):
    from ..evaluate import classification_result, predict_logits

    return classification_result("float", predict_logits(model, x), y, num_classes)


def int8_test_errors(experiment: Experiment, tflite_path: Path):
    """Errors of the int8 model on the test set in the TFLite Micro interpreter (the kernels a device runs)."""
    from ..evaluate import classification_result, int8_outputs_tflm
    from ..export import tflite_io_quantization
    from ..export.convert import quantize_input

    d = experiment.dataset
    x_int8 = quantize_input(d.x_test, tflite_io_quantization(tflite_path).input)
    return classification_result("int8_tflm", int8_outputs_tflm(tflite_path, x_int8), d.y_test, d.num_classes)


def measure_firmware(tflite_path: Path, board, out_dir: Path, device_frontend: str | None = None) -> FirmwareSize:
    """Generate and compile the board's firmware for the model (with the task's device frontend,
    whose code and audio buffer count too) and read its sizes; a model that does not fit is
    measured too (from build_firmware's FirmwareTooLarge) instead of failing."""
    from ..boards import load_board
    from ..firmware.build import build_firmware
    from ..firmware.codegen import generate_model_sources

    board = load_board(board)
    try:
        fw = build_firmware(tflite_path, board, out_dir, device_frontend)
    except FirmwareTooLarge as exc:
        with tempfile.TemporaryDirectory() as tmp:
            sources = generate_model_sources(tflite_path, Path(tmp) / "model")
        # Sizes None: the linker refused the image before they could be read; it is over budget.
        exact = exc.flash_used is not None and exc.ram_used is not None
        return FirmwareSize(
            board.name,
            exc.flash_used if exact else exc.flash_budget + 1,
            exc.ram_used if exact else exc.ram_budget + 1,
            exc.flash_budget,
            exc.ram_budget,
            sources.arena_bytes,
            sources.macs,
            sources.param_count,
            exact=exact,
        )
    b, s = fw.build, fw.sources
    return FirmwareSize(
        board.name, b.flash_used, b.ram_used, b.flash_budget, b.ram_budget, s.arena_bytes, s.macs, s.param_count
    )


def settings_digest(settings: dict) -> str:
    return hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:16]


def read_finished(path: Path, settings: dict) -> dict | None:
    """The saved result at `path` if it was made with exactly `settings`, else None."""
    if not path.exists():
        return None
    try:
        saved = json.loads(path.read_text())
    except json.JSONDecodeError:
        return None
    return saved if saved.get("settings") == json.loads(json.dumps(settings, default=str)) else None


def remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
