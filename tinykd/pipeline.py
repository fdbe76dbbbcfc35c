"""The build: stages that read and write files in one build directory.

Each stage records a fingerprint of the settings and upstream stages it depends on in
stages.json. A stage whose artifacts exist with the same fingerprint is skipped, so an
interrupted build resumes where it stopped and changing one setting redoes only what it
affects. Training stages also resume mid-way from their per-epoch checkpoints.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from .config import BuildConfig
from .errors import TinykdError
from .fileio import write_json, write_text
from .firmware.digest import firmware_sources_digest

STAGES = (
    "train-teacher",
    "extra-teachers",
    "distill",
    "qat",
    "convert",
    "export",
    "firmware",
    "evaluate",
    "device",
    "report",
)

# The settings each stage's result depends on (besides the upstream stages it reads).
_STAGE_SETTINGS: dict[str, Callable[[BuildConfig], Any]] = {
    "train-teacher": lambda c: (c.task, c.seed, _data_settings(c), _teacher_settings(c)),
    "extra-teachers": lambda c: (c.task, c.seed, _data_settings(c), _extra_teacher_settings(c)),
    "distill": lambda c: (c.task, c.seed, _data_settings(c), c.student, _distill_settings(c)),
    "qat": lambda c: (c.qat, _distill_settings(c)),
    "convert": lambda c: (c.qat.calibration_samples,),
    "export": lambda c: (),
    "firmware": lambda c: (c.board, firmware_sources_digest()),
    "evaluate": lambda c: (c.data.test_limit,),
    "device": lambda c: (c.device.limit, c.device.port),
    "report": lambda c: (),
}


def _data_settings(c: BuildConfig):
    """What shapes the data, not where it was found: checksums make every copy the same."""
    return dataclasses.replace(c.data, dir="")


def _teacher_settings(c: BuildConfig):
    """A loaded teacher is known by its bytes (a copy elsewhere is the same teacher); a trained one by
    how it was trained."""
    if c.teacher.model:
        return ("loaded", hashlib.sha256(Path(c.teacher.model).read_bytes()).hexdigest())
    return c.teacher


def _distill_settings(c: BuildConfig):
    """The [distill] settings the chosen method reads (a change to another method's keys redoes nothing)."""
    from .config import METHOD_KEYS

    kd = c.distill
    return (kd.method, kd.temperature, kd.alpha) + tuple((k, getattr(kd, k)) for k in METHOD_KEYS.get(kd.method, ()))


def _extra_teacher_settings(c: BuildConfig):
    """Only ensemble and specialists train extra teachers; for the other methods the stage is empty."""
    if c.distill.method not in ("ensemble", "specialists"):
        return ("none",)
    return (dataclasses.replace(c.teacher, model=""), _distill_settings(c)[:1] + _distill_settings(c)[3:])


_UPSTREAM = {
    "train-teacher": (),
    "extra-teachers": ("train-teacher",),
    "distill": ("train-teacher", "extra-teachers"),
    "qat": ("distill",),
    "convert": ("qat",),
    "export": ("convert",),
    "firmware": ("convert",),
    "evaluate": ("train-teacher", "extra-teachers", "distill", "qat", "convert"),
    "device": ("firmware", "evaluate"),
    "report": ("evaluate", "firmware"),
}


# Training runs: the stage that owns each, and the name of its checkpoint folder.
_OWNER_STAGE = {
    "train-teacher": "train-teacher",
    "extra-teachers": "extra-teachers",
    "baseline": "distill",
    "distill": "distill",
    "qat": "qat",
}
_CHECKPOINT_LABEL = {
    "train-teacher": "teacher",
    "extra-teachers": "extra",
    "baseline": "baseline",
    "distill": "student",
    "qat": "student_qat",
}
# Offsets keep each stage's random stream distinct yet fixed by the one seed.
_SEED_OFFSET = {"train-teacher": 1, "distill": 2, "baseline": 3, "qat": 4, "extra-teachers": 5}


@dataclass
class StageRecord:
    fingerprint: str
    seconds: float
    artifacts: list[str]
    info: dict[str, Any] = field(default_factory=dict)


class Build:
    """One build directory and the stages that fill it. Usable from Python as from the CLI."""

    def __init__(
        self, config: BuildConfig, out_dir: str | Path, force: bool = False, log: Callable[[str], None] = print
    ):
        self.config = config
        self.out = Path(out_dir)
        self.force = force
        self.log = log
        self._check_writable()
        self.state_path = self.out / "stages.json"
        self.records: dict[str, StageRecord] = self._load_state()
        write_text(self.out / "config.toml", config.to_toml())

    # ---- bookkeeping -------------------------------------------------------------------
    def _check_writable(self) -> None:
        try:
            self.out.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=self.out):
                pass
        except OSError as exc:
            raise TinykdError(
                f"Cannot write to the output folder {self.out} ({exc.strerror}). Choose a folder you "
                "can write to with --out."
            ) from None

    def _load_state(self) -> dict[str, StageRecord]:
        if not self.state_path.exists():
            return {}
        try:
            raw = json.loads(self.state_path.read_text())
            return {k: StageRecord(**v) for k, v in raw.items()}
        except (json.JSONDecodeError, TypeError):
            self.log(f"note: {self.state_path} was unreadable; every stage will run again")
            return {}

    def _save_state(self) -> None:
        write_json(self.state_path, {k: vars(v) for k, v in self.records.items()})

    def fingerprint(self, stage: str) -> str:
        parts = [repr(_STAGE_SETTINGS[stage](self.config))]
        parts += [self.fingerprint(up) for up in _UPSTREAM[stage]]
        return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]

    def is_done(self, stage: str) -> bool:
        record = self.records.get(stage)
        return (
            record is not None
            and record.fingerprint == self.fingerprint(stage)
            and all((self.out / a).exists() for a in record.artifacts)
        )

    def run(self, stage: str) -> StageRecord:
        """Run one stage (and, first, any upstream stage not yet done)."""
        for up in _UPSTREAM[stage]:
            if not self.is_done(up):
                self.run(up)
        if self.is_done(stage) and not self.force:
            self.log(f"[{stage}] up to date, skipped ({self.records[stage].seconds:.0f} s when built)")
            return self.records[stage]
        if self.force:
            self._remove_checkpoints(stage, keep=None)
        self.log(f"[{stage}] running")
        self._fresh_keras_names()
        started = time.perf_counter()
        artifacts, info = getattr(self, "_stage_" + stage.replace("-", "_"))()
        record = StageRecord(self.fingerprint(stage), round(time.perf_counter() - started, 2), artifacts, info)
        self.records[stage] = record
        self._save_state()
        self.log(f"[{stage}] done in {record.seconds:.0f} s")
        return record

    def run_all(self) -> None:
        """Every stage. On a hardware board the device stage waits for `tinykd flash` + `evaluate`."""
        for stage in STAGES:
            if stage == "device" and not self.board.is_qemu:
                self.log(
                    f"[device] skipped: flash the {self.board.name} with `tinykd flash`, then run "
                    "`tinykd evaluate` to measure on it"
                )
                continue
            self.run(stage)

    @cached_property
    def board(self):
        from .boards import load_board

        return load_board(self.config.board)

    # ---- shared inputs -------------------------------------------------------------------
    @cached_property
    def task(self):
        from .data import get_task

        return get_task(self.config.task)

    @cached_property
    def dataset(self):
        from .data import load_dataset

        return load_dataset(self.config)

    @staticmethod
    def _fresh_keras_names() -> None:
        """Keras numbers automatic layer names per process (tfmot's quantize_layer becomes
        quantize_layer_1 when loaded a second time) and names land in the .tflite. Each stage
        starts from a fresh naming state, so its bytes never depend on what ran before it."""
        import tf_keras as keras

        import tinykd  # noqa: F401

        keras.backend.clear_session()

    def _seed(self, stage: str) -> int:
        import tensorflow as tf
        import tf_keras as keras

        import tinykd  # noqa: F401

        tf.config.experimental.enable_op_determinism()
        seed = self.config.seed * 100 + _SEED_OFFSET[stage]
        keras.utils.set_random_seed(seed)
        return seed

    def _checkpoints(self, stage: str) -> Path:
        """Per-epoch checkpoints of one training run, keyed by the stage's fingerprint so that a
        resumed run never picks up weights trained with other settings."""
        fingerprint = self.fingerprint(_OWNER_STAGE[stage])
        self._remove_checkpoints(stage, keep=fingerprint)
        return self.out / "checkpoints" / f"{_CHECKPOINT_LABEL[stage]}-{fingerprint}"

    def _remove_checkpoints(self, stage: str, keep: str | None) -> None:
        for owned, owner in _OWNER_STAGE.items():
            if owner != _OWNER_STAGE.get(stage, stage):
                continue
            for folder in (self.out / "checkpoints").glob(f"{_CHECKPOINT_LABEL[owned]}-*"):
                if keep is None or not folder.name.endswith(f"-{keep}"):
                    shutil.rmtree(folder, ignore_errors=True)

    def model_path(self, name: str) -> Path:
        # QAT models round-trip only through HDF5 (tfmot's quantize layers lose variables
        # in the .keras format), so the QAT student alone is stored as .h5.
        return self.out / (f"{name}.h5" if name == "student_qat" else f"{name}.keras")

    def load_model(self, name: str):
        from .models.store import load_model

        return load_model(self.model_path(name))

    def _train(
        self,
        stage: str,
        model,
        section,
        kd=None,
        *,
        seed: int | None = None,
        checkpoint_dir=None,
        label: str | None = None,
    ):
        """Train `model` with `kd` = (method, teacher) from `_kd_method`, or on the labels alone (None)."""
        import tf_keras as keras

        import tinykd  # noqa: F401

        from .distill import Distiller, train

        d = self.dataset
        method, teacher = kd if kd is not None else (None, None)
        wrapper = Distiller(model, teacher, method=method)
        if seed is None:
            seed = self._seed(stage)
        else:
            keras.utils.set_random_seed(seed)
        return train(
            wrapper,
            d.x_train,
            d.y_train,
            (d.x_val, d.y_val),
            epochs=section.epochs,
            batch_size=section.batch_size,
            learning_rate=section.learning_rate,
            seed=seed,
            max_shift=self.config.data.jitter,
            checkpoint_dir=checkpoint_dir or self._checkpoints(stage),
            label=label or _CHECKPOINT_LABEL[stage],
        )

    def _kd_method(self, stage: str):
        """(method, teacher model) the configured method distils with in `stage` (distill or qat).

        online learns with a peer (trained too: a fresh one in distill, the distilled peer again in
        QAT); self (QAT only: distill runs `born_again`) with the previous generation; the others
        with the build's teacher plus, for ensemble and specialists, the extra teachers."""
        from .distill.methods import Specialist, get_method
        from .models import build_model

        kd = self.config.distill
        name, t, a = kd.method, kd.temperature, kd.alpha
        if name == "online":
            if stage == "qat":
                return get_method(name, t, a), self.load_model("peer")
            d = self.dataset
            return get_method(name, t, a), build_model(
                kd.peer or self.config.student.arch, d.input_shape, d.num_classes
            )
        if name == "self":
            previous = "baseline" if kd.generations == 1 else f"generation{kd.generations - 1}"
            return get_method(name, t, a), self.load_model(previous)
        teacher = self.load_model("teacher")
        if name == "ensemble":
            others = [self.load_model(f"teacher{i}") for i in range(1, kd.teachers)]
            return get_method(name, t, a, teachers=others, mean=kd.mean), teacher
        if name == "specialists":
            groups = json.loads((self.out / "specialists.json").read_text())["groups"]
            specialists = [Specialist(self.load_model(f"specialist{i}"), g) for i, g in enumerate(groups)]
            return get_method(name, t, a, specialists=specialists), teacher
        return get_method(name, t, a), teacher

    # ---- stages --------------------------------------------------------------------------
    def _stage_train_teacher(self):
        from .models import build_model, count_params
        from .models.store import save_model

        self._seed("train-teacher")
        d, c = self.dataset, self.config.teacher
        if c.model:
            return self._load_teacher(Path(c.model))
        teacher = build_model(c.arch, d.input_shape, d.num_classes)
        result = self._train("train-teacher", teacher, c)
        save_model(teacher, self.out / "teacher.keras")
        self._save_history("teacher", result)
        return ["teacher.keras"], {"params": count_params(teacher), "train_seconds": result.seconds}

    def _load_teacher(self, path: Path):
        """--teacher-model: a saved teacher instead of training one (e.g. one shared by several builds)."""
        from .models import count_params
        from .models.store import load_model, save_model

        d = self.dataset
        teacher = load_model(path)
        inputs, outputs = tuple(teacher.inputs[0].shape[1:]), int(teacher.outputs[0].shape[-1])
        if inputs != tuple(d.input_shape) or outputs != d.num_classes:
            raise TinykdError(
                f"The teacher model {path} takes inputs of shape {inputs} and has {outputs} outputs, but task "
                f"'{self.config.task}' has inputs {tuple(d.input_shape)} and {d.num_classes} classes. Give a "
                "teacher trained for this task, or leave --teacher-model out to train one."
            )
        save_model(teacher, self.out / "teacher.keras")
        # A teacher trained here before would leave its curves in the report.
        (self.out / "history" / "teacher.json").unlink(missing_ok=True)
        self.log(f"  teacher loaded from {path} ({count_params(teacher):,} parameters), not trained")
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        return ["teacher.keras"], {"params": count_params(teacher), "loaded_from": str(path), "sha256": digest}

    def _stage_extra_teachers(self):
        """The teachers a method needs besides the build's: ensemble's other members, or specialists."""
        method = self.config.distill.method
        if method == "ensemble":
            return self._train_ensemble_teachers()
        if method == "specialists":
            return self._train_specialists()
        return [], {"teachers": 0}

    def _train_ensemble_teachers(self):
        from .models import build_model, count_params
        from .models.store import save_model

        d, c, kd = self.dataset, self.config.teacher, self.config.distill
        arch = kd.ensemble_arch or c.arch
        folder = self._checkpoints("extra-teachers")
        artifacts, info = [], {"arch": arch, "params": {}, "train_seconds": {}}
        for i in range(1, kd.teachers):
            # Each member its own seed: same data, different initialisation, order and jitter.
            seed = self._seed("extra-teachers") + 1000 * i
            model = build_model(arch, d.input_shape, d.num_classes)
            result = self._train(
                "extra-teachers", model, c, seed=seed, checkpoint_dir=folder / f"teacher{i}", label=f"teacher{i}"
            )
            save_model(model, self.out / f"teacher{i}.keras")
            self._save_history(f"teacher{i}", result)
            artifacts.append(f"teacher{i}.keras")
            info["params"][f"teacher{i}"] = count_params(model)
            info["train_seconds"][f"teacher{i}"] = result.seconds
        return artifacts, info

    def _train_specialists(self):
        from .distill.methods import find_groups, soft_confusion, train_specialists
        from .evaluate import predict_logits
        from .models.store import save_model

        d, c, kd = self.dataset, self.config.teacher, self.config.distill
        generalist = self.load_model("teacher")
        logits = predict_logits(generalist, d.x_val)
        probs = np.exp(logits - logits.max(axis=1, keepdims=True))
        probs /= probs.sum(axis=1, keepdims=True)
        confusion = soft_confusion(probs, d.y_val, d.num_classes)
        groups = find_groups(confusion, kd.specialists, kd.specialist_classes)
        names = d.class_names
        self.log(
            "  specialist groups (most confused on validation): "
            + "; ".join("{" + ", ".join(names[k] for k in g) + "}" for g in groups)
        )
        # Fine-tuning from the generalist's weights: a quarter of its learning rate keeps what the
        # body already knows while the new output layer settles.
        section = dataclasses.replace(c, epochs=kd.specialist_epochs, learning_rate=c.learning_rate / 4)
        specialists = train_specialists(
            generalist,
            groups,
            d.x_train,
            d.y_train,
            (d.x_val, d.y_val),
            checkpoint_dir=self._checkpoints("extra-teachers"),
            seed=self._seed("extra-teachers"),
            epochs=section.epochs,
            batch_size=section.batch_size,
            learning_rate=section.learning_rate,
            max_shift=self.config.data.jitter,
        )
        artifacts = []
        for i, s in enumerate(specialists):
            save_model(s.model, self.out / f"specialist{i}.keras")
            self._save_history(f"specialist{i}", s)
            artifacts.append(f"specialist{i}.keras")
        write_json(
            self.out / "specialists.json",
            {
                "groups": groups,
                "class_names": list(names),
                "validation_soft_confusion": np.round(confusion, 3).tolist(),
            },
        )
        return artifacts + ["specialists.json"], {"groups": groups, "train_seconds": [s.seconds for s in specialists]}

    def _stage_distill(self):
        from .models import build_model, count_params
        from .models.store import save_model

        d, c, kd = self.dataset, self.config.student, self.config.distill
        self._seed("baseline")
        baseline = build_model(c.arch, d.input_shape, d.num_classes)
        base_result = self._train("baseline", baseline, c)
        save_model(baseline, self.out / "baseline.keras")
        self._save_history("baseline", base_result)
        self._seed("distill")
        extra = []
        if kd.method == "self":
            student, kd_result, extra = self._born_again(baseline)
        else:
            student = build_model(c.arch, d.input_shape, d.num_classes)
            kd_pair = self._kd_method("distill")
            kd_result = self._train("distill", student, c, kd_pair)
            if kd.method == "online":
                save_model(kd_pair[1], self.out / "peer.keras")
                extra = ["peer.keras"]
        save_model(student, self.out / "student.keras")
        self._save_history("student", kd_result)
        return ["baseline.keras", "student.keras"] + extra, {
            "params": count_params(student),
            "baseline_seconds": base_result.seconds,
            "student_seconds": kd_result.seconds,
        }

    def _born_again(self, baseline):
        """self: generations 1..N of the student's architecture, generation 0 being the no-KD
        baseline; the last is the student, the ones between are kept as generation<k>.keras."""
        from .distill import TrainResult, born_again
        from .models import build_model
        from .models.store import save_model

        d, c, kd = self.dataset, self.config.student, self.config.distill
        generations = born_again(
            lambda: build_model(c.arch, d.input_shape, d.num_classes),
            kd.generations,
            d.x_train,
            d.y_train,
            (d.x_val, d.y_val),
            checkpoint_dir=self._checkpoints("distill"),
            seed=self._seed("distill"),
            temperature=kd.temperature,
            alpha=kd.alpha,
            first=baseline,
            label="student",
            epochs=c.epochs,
            batch_size=c.batch_size,
            learning_rate=c.learning_rate,
            max_shift=self.config.data.jitter,
        )
        kept = []
        for k, generation in enumerate(generations[1:-1], start=1):
            save_model(generation.model, self.out / f"generation{k}.keras")
            self._save_history(f"generation{k}", generation)
            kept.append(f"generation{k}.keras")
        last = generations[-1]
        seconds = round(sum(g.seconds for g in generations[1:]), 2)
        return last.model, TrainResult(last.history, seconds, c.epochs), kept

    def _stage_qat(self):
        from .models.store import save_model
        from .quantize import quantize_student

        self._seed("qat")
        qat_student = quantize_student(self.load_model("student"))
        result = self._train("qat", qat_student, self.config.qat, self._kd_method("qat"))
        save_model(qat_student, self.model_path("student_qat"))
        self._save_history("student_qat", result)
        return [self.model_path("student_qat").name], {"train_seconds": result.seconds}

    def _stage_convert(self):
        from .export import convert_int8

        path = convert_int8(
            self.load_model("student_qat"),
            self.dataset.x_train,
            self.out / "model_int8.tflite",
            samples=self.config.qat.calibration_samples,
            input_quantization=self.task.input_quantization,
        )
        data = path.read_bytes()
        return ["model_int8.tflite"], {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}

    def _stage_export(self):
        from .export import tflite_io_quantization, write_c_array

        tflite = self.out / "model_int8.tflite"
        write_c_array(tflite, self.out, tflite_io_quantization(tflite), self.dataset.class_names)
        return ["model_data.h", "model_data.cc"], {}

    def _stage_firmware(self):
        from .firmware.build import build_firmware

        fw = build_firmware(self.out / "model_int8.tflite", self.board, self.out / "firmware")
        b = fw.build
        self.log(
            f"  {self.board.name}: flash {b.flash_used:,} of {b.flash_budget:,} B, "
            f"RAM {b.ram_used:,} of {b.ram_budget:,} B (arena {fw.sources.arena_bytes:,} B)"
        )
        for note in fw.summary()["notes"]:
            self.log(f"  note: {note}")
        return ["firmware/firmware.json"], fw.summary()

    def _stage_device(self):
        if self.task.load_test_audio is not None:
            return self._stage_device_audio()
        from .device.evaluate import compare_with_host, run_on_device
        from .evaluate import classification_result
        from .export import tflite_io_quantization
        from .export.convert import quantize_input

        d, c = self.dataset, self.config.device
        n = min(c.limit or len(d.y_test), len(d.y_test))
        x_int8 = quantize_input(d.x_test[:n], tflite_io_quantization(self.out / "model_int8.tflite").input)
        firmware = json.loads((self.out / "firmware" / "firmware.json").read_text())
        self.log(f"  streaming {n} test examples to {self.board.name}")
        run = run_on_device(
            self.board,
            firmware["elf"],
            x_int8,
            expected_sha256=firmware["model_sha256"],
            port=c.port or None,
            instances=c.instances,
        )
        host = np.load(self.out / "host_int8_outputs.npy")[:n]
        result = classification_result("device", run.outputs, d.y_test[:n], d.num_classes)
        host_result = classification_result("host_int8_tflm", host, d.y_test[:n], d.num_classes)
        comparison = compare_with_host(run.outputs, host)
        device = {
            "board": run.board,
            "where": run.where,
            "examples": n,
            "seconds": run.seconds,
            "device": result.to_dict(),
            "host_int8": host_result.to_dict(),
            "host_vs_device": comparison,
            "latency": run.latency(self.board.clock_hz),
        }
        write_json(self.out / "device.json", device)
        self.log(
            f"  on device: {result.errors} errors / {n}; host int8: {host_result.errors}; "
            f"outputs differing from the host: {comparison['mismatches']}"
        )
        return ["device.json"], {"errors": result.errors, "mismatches": comparison["mismatches"]}

    def _stage_device_audio(self):
        """Tasks whose device preprocesses raw input itself (KWS): stream the raw test clips;
        the device runs its feature extractor, then the model. Its features must equal the
        host's (same C code) and its outputs the host's int8 outputs on those features."""
        from .data import load_test_audio
        from .device.evaluate import compare_with_host, run_audio_on_device
        from .evaluate import classification_result
        from .export import tflite_io_quantization
        from .export.convert import quantize_input

        d, c = self.dataset, self.config.device
        n = min(c.limit or len(d.y_test), len(d.y_test))
        audio = load_test_audio(self.config)
        if len(audio) != len(d.y_test):
            raise TinykdError(
                f"The raw test clips ({len(audio)}) do not line up with the test features "
                f"({len(d.y_test)}); the dataset changed during the build. Run again with --force."
            )
        host_features = quantize_input(d.x_test[:n], tflite_io_quantization(self.out / "model_int8.tflite").input)
        firmware = json.loads((self.out / "firmware" / "firmware.json").read_text())
        self.log(f"  streaming {n} raw test clips to {self.board.name} (features computed on the device)")
        run = run_audio_on_device(
            self.board,
            firmware["elf"],
            audio[:n],
            expected_sha256=firmware["model_sha256"],
            port=c.port or None,
            instances=c.instances,
        )
        host = np.load(self.out / "host_int8_outputs.npy")[:n]
        feature_mismatches = int(np.any(run.features.reshape(n, -1) != host_features.reshape(n, -1), axis=1).sum())
        result = classification_result("device", run.outputs, d.y_test[:n], d.num_classes)
        host_result = classification_result("host_int8_tflm", host, d.y_test[:n], d.num_classes)
        comparison = compare_with_host(run.outputs, host)
        frontend = run.frontend_latency(self.board.clock_hz)
        device = {
            "board": run.board,
            "where": run.where,
            "examples": n,
            "seconds": run.seconds,
            "input": "raw audio (int16, 16 kHz, 1 s); features computed on the device",
            "device": result.to_dict(),
            "host_int8": host_result.to_dict(),
            "host_vs_device": comparison,
            "feature_mismatches": feature_mismatches,
            "latency": run.latency(self.board.clock_hz),
            "frontend_latency": frontend,
        }
        write_json(self.out / "device.json", device)
        self.log(
            f"  on device: {result.errors} errors / {n}; host int8: {host_result.errors}; "
            f"outputs differing from the host: {comparison['mismatches']}; "
            f"feature vectors differing: {feature_mismatches}"
        )
        return ["device.json"], {
            "errors": result.errors,
            "mismatches": comparison["mismatches"],
            "feature_mismatches": feature_mismatches,
        }

    def _stage_evaluate(self):
        from .evaluate import classification_result, int8_outputs_litert, int8_outputs_tflm, predict_logits
        from .export import tflite_io_quantization
        from .export.convert import quantize_input

        d = self.dataset
        results = {}
        for name in ("teacher", "baseline", "student", "student_qat"):
            self.log(f"  evaluating {name} (float) on {len(d.y_test)} test examples")
            logits = predict_logits(self.load_model(name), d.x_test)
            results[name] = classification_result(name, logits, d.y_test, d.num_classes)
        method_results, method_info = self._evaluate_method_models()
        results.update(method_results)
        tflite = self.out / "model_int8.tflite"
        quant = tflite_io_quantization(tflite)
        x_int8 = quantize_input(d.x_test, quant.input)
        litert = int8_outputs_litert(tflite, x_int8)
        tflm = int8_outputs_tflm(tflite, x_int8)
        results["int8_litert"] = classification_result("int8_litert", litert, d.y_test, d.num_classes)
        results["int8_tflm"] = classification_result("int8_tflm", tflm, d.y_test, d.num_classes)
        mismatches = int(np.any(litert != tflm, axis=1).sum())
        max_difference = int(np.abs(litert.astype(np.int16) - tflm.astype(np.int16)).max())
        prediction_disagreements = int((litert.argmax(1) != tflm.argmax(1)).sum())
        np.save(self.out / "host_int8_outputs.npy", tflm)
        evaluation = {
            "test_examples": int(len(d.y_test)),
            "models": {k: v.to_dict() for k, v in results.items()},
            "int8_litert_vs_tflm_mismatches": mismatches,
            "int8_litert_vs_tflm_max_difference": max_difference,
            "int8_litert_vs_tflm_prediction_disagreements": prediction_disagreements,
            "class_names": d.class_names,
            **method_info,
        }
        write_json(self.out / "evaluation.json", evaluation)
        for name, r in results.items():
            self.log(f"  {name:<12} {r.errors:>5} errors / {r.total}  ({100 * r.accuracy:.2f} %)")
        self.log(
            f"  int8 outputs differing between LiteRT and TFLite Micro: {mismatches} "
            f"(largest difference {max_difference} step, {prediction_disagreements} different predictions)"
        )
        return ["evaluation.json", "host_int8_outputs.npy"], {"mismatches": mismatches}

    def _evaluate_method_models(self):
        """Float test results of the models a method adds: ensemble members and the ensemble itself
        (their mean at T = 1), the generalist combined with its specialists (T = 1) and each
        specialist on its own task (its classes or dustbin), the online peer, born-again generations."""
        from .distill.methods import combine_log_probs, ensemble_log_probs, specialist_labels
        from .distill.methods.specialists import TOP_K
        from .evaluate import classification_result, predict_logits

        d, kd = self.dataset, self.config.distill
        results, info = {}, {}

        def evaluate(name, logits):
            results[name] = classification_result(name, np.asarray(logits), d.y_test, d.num_classes)

        if kd.method in ("ensemble", "specialists"):
            teacher_logits = predict_logits(self.load_model("teacher"), d.x_test)
        if kd.method == "ensemble":
            members = [teacher_logits]
            for i in range(1, kd.teachers):
                members.append(predict_logits(self.load_model(f"teacher{i}"), d.x_test))
                evaluate(f"teacher{i}", members[-1])
            evaluate("ensemble", ensemble_log_probs(members, 1.0, None, kd.mean).numpy())
        elif kd.method == "specialists":
            groups = json.loads((self.out / "specialists.json").read_text())["groups"]
            outputs, info["specialists"] = [], []
            for i, group in enumerate(groups):
                outputs.append(predict_logits(self.load_model(f"specialist{i}"), d.x_test))
                own = specialist_labels(d.y_test, group)
                wrong = int(np.sum(outputs[-1].argmax(1) != own))
                info["specialists"].append(
                    {
                        "classes": group,
                        "errors": wrong,
                        "total": int(len(own)),
                        "test_examples_of_its_classes": int(np.sum(own < len(group))),
                    }
                )
            evaluate("specialists", combine_log_probs(teacher_logits, outputs, groups, 1.0, TOP_K).numpy())
        elif kd.method == "online":
            evaluate("peer", predict_logits(self.load_model("peer"), d.x_test))
        elif kd.method == "self":
            for k in range(1, kd.generations):
                evaluate(f"generation{k}", predict_logits(self.load_model(f"generation{k}"), d.x_test))
        return results, info

    def _stage_report(self):
        from .report import write_report

        paths = write_report(self)
        return [str(p.relative_to(self.out)) for p in paths], {}

    def _save_history(self, name: str, result) -> None:
        write_json(self.out / "history" / f"{name}.json", {"history": result.history, "seconds": result.seconds})


def default_out_dir(config: BuildConfig) -> Path:
    return Path("build") / f"{config.task}-{config.board}"


def stage_times(build: Build) -> dict[str, float]:
    return {k: v.seconds for k, v in build.records.items()}


__all__ = ["Build", "STAGES", "default_out_dir", "stage_times"]
