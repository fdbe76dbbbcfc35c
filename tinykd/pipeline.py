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
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .config import BuildConfig
from .errors import TinykdError
from .fileio import write_json, write_text

STAGES = ("train-teacher", "distill", "qat", "convert", "export", "firmware", "evaluate", "device", "report")

# The settings each stage's result depends on (besides the upstream stages it reads).
_STAGE_SETTINGS: dict[str, Callable[[BuildConfig], Any]] = {
    "train-teacher": lambda c: (c.task, c.seed, _data_settings(c), c.teacher),
    "distill": lambda c: (c.task, c.seed, _data_settings(c), c.student, c.distill),
    "qat": lambda c: (c.qat, c.distill),
    "convert": lambda c: (c.qat.calibration_samples,),
    "export": lambda c: (),
    "firmware": lambda c: (c.board, _firmware_sources_digest()),
    "evaluate": lambda c: (c.data.test_limit,),
    "device": lambda c: (c.device.limit, c.device.port),
    "report": lambda c: (),
}


def _data_settings(c: BuildConfig):
    """What shapes the data, not where it was found: checksums make every copy the same."""
    return dataclasses.replace(c.data, dir="")


_UPSTREAM = {
    "train-teacher": (),
    "distill": ("train-teacher",),
    "qat": ("distill",),
    "convert": ("qat",),
    "export": ("convert",),
    "firmware": ("convert",),
    "evaluate": ("train-teacher", "distill", "qat", "convert"),
    "device": ("firmware", "evaluate"),
    "report": ("evaluate", "firmware"),
}


def _firmware_sources_digest() -> str:
    """Hash of firmware/ so that a changed runtime or app rebuilds the firmware."""
    from .firmware.project import firmware_dir

    h = hashlib.sha256()
    for path in sorted(firmware_dir().rglob("*")):
        if path.is_file() and path.suffix in {".c", ".h", ".cpp", ".ino", ".in", ".ld"}:
            h.update(path.name.encode())
            h.update(path.read_bytes())
    return h.hexdigest()[:16]


# Training runs: the stage that owns each, and the name of its checkpoint folder.
_OWNER_STAGE = {"train-teacher": "train-teacher", "baseline": "distill", "distill": "distill", "qat": "qat"}
_CHECKPOINT_LABEL = {"train-teacher": "teacher", "baseline": "baseline", "distill": "student", "qat": "student_qat"}
# Offsets keep each stage's random stream distinct yet fixed by the one seed.
_SEED_OFFSET = {"train-teacher": 1, "distill": 2, "baseline": 3, "qat": 4}


@dataclass
class StageRecord:
    fingerprint: str
    seconds: float
    artifacts: list[str]
    info: dict[str, Any] = field(default_factory=dict)


class Build:
    """One build directory and the stages that fill it. Usable from Python as from the CLI."""

    def __init__(self, config: BuildConfig, out_dir: str | Path, force: bool = False, log: Callable[[str], None] = print):
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
                self.log(f"[device] skipped: flash the {self.board.name} with `tinykd flash`, then run "
                         "`tinykd evaluate` to measure on it")
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
        c = self.config.data
        return self.task.load(c.dir or None, val_size=c.val_size, seed=self.config.seed,
                              train_limit=c.train_limit, test_limit=c.test_limit)

    @staticmethod
    def _fresh_keras_names() -> None:
        """Keras numbers automatic layer names per process (tfmot's quantize_layer becomes
        quantize_layer_1 when loaded a second time) and names land in the .tflite. Each stage
        starts from a fresh naming state, so its bytes never depend on what ran before it."""
        import tinykd  # noqa: F401
        import tf_keras as keras

        keras.backend.clear_session()

    def _seed(self, stage: str) -> int:
        import tinykd  # noqa: F401
        import tensorflow as tf
        import tf_keras as keras

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

    def _train(self, stage: str, model, teacher, section, temperature=1.0, alpha=0.0):
        from .distill import Distiller, train
        from .distill.methods import get_method

        d = self.dataset
        # The configured method applies wherever there is a teacher (KD and QAT); the teacher
        # and the baseline learn from the labels alone.
        method = get_method(self.config.distill.method, temperature, alpha) if teacher is not None else None
        wrapper = Distiller(model, teacher, temperature, alpha, method=method)
        return train(wrapper, d.x_train, d.y_train, (d.x_val, d.y_val), epochs=section.epochs,
                     batch_size=section.batch_size, learning_rate=section.learning_rate,
                     seed=self._seed(stage), max_shift=self.config.data.jitter,
                     checkpoint_dir=self._checkpoints(stage), label=_CHECKPOINT_LABEL[stage])

    # ---- stages --------------------------------------------------------------------------
    def _stage_train_teacher(self):
        from .models import build_model, count_params
        from .models.store import save_model

        self._seed("train-teacher")
        d, c = self.dataset, self.config.teacher
        teacher = build_model(c.arch, d.input_shape, d.num_classes)
        result = self._train("train-teacher", teacher, None, c)
        save_model(teacher, self.out / "teacher.keras")
        self._save_history("teacher", result)
        return ["teacher.keras"], {"params": count_params(teacher), "train_seconds": result.seconds}

    def _stage_distill(self):
        from .models import build_model, count_params
        from .models.store import save_model

        d, c, kd = self.dataset, self.config.student, self.config.distill
        teacher = self.load_model("teacher")
        self._seed("baseline")
        baseline = build_model(c.arch, d.input_shape, d.num_classes)
        base_result = self._train("baseline", baseline, None, c)
        save_model(baseline, self.out / "baseline.keras")
        self._save_history("baseline", base_result)
        self._seed("distill")
        student = build_model(c.arch, d.input_shape, d.num_classes)
        kd_result = self._train("distill", student, teacher, c, kd.temperature, kd.alpha)
        save_model(student, self.out / "student.keras")
        self._save_history("student", kd_result)
        return ["baseline.keras", "student.keras"], {
            "params": count_params(student),
            "baseline_seconds": base_result.seconds,
            "student_seconds": kd_result.seconds,
        }

    def _stage_qat(self):
        from .models.store import save_model
        from .quantize import quantize_student

        self._seed("qat")
        teacher, student = self.load_model("teacher"), self.load_model("student")
        qat_student = quantize_student(student)
        kd = self.config.distill
        result = self._train("qat", qat_student, teacher, self.config.qat, kd.temperature, kd.alpha)
        save_model(qat_student, self.model_path("student_qat"))
        self._save_history("student_qat", result)
        return [self.model_path("student_qat").name], {"train_seconds": result.seconds}

    def _stage_convert(self):
        from .export import convert_int8

        path = convert_int8(self.load_model("student_qat"), self.dataset.x_train, self.out / "model_int8.tflite",
                            samples=self.config.qat.calibration_samples,
                            input_quantization=self.task.input_quantization)
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
        self.log(f"  {self.board.name}: flash {b.flash_used:,} of {b.flash_budget:,} B, "
                 f"RAM {b.ram_used:,} of {b.ram_budget:,} B (arena {fw.sources.arena_bytes:,} B)")
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
        run = run_on_device(self.board, firmware["elf"], x_int8, expected_sha256=firmware["model_sha256"],
                            port=c.port or None, instances=c.instances)
        host = np.load(self.out / "host_int8_outputs.npy")[:n]
        result = classification_result("device", run.outputs, d.y_test[:n], d.num_classes)
        host_result = classification_result("host_int8_tflm", host, d.y_test[:n], d.num_classes)
        comparison = compare_with_host(run.outputs, host)
        device = {
            "board": run.board, "where": run.where, "examples": n, "seconds": run.seconds,
            "device": result.to_dict(), "host_int8": host_result.to_dict(),
            "host_vs_device": comparison, "latency": run.latency(self.board.clock_hz),
        }
        write_json(self.out / "device.json", device)
        self.log(f"  on device: {result.errors} errors / {n}; host int8: {host_result.errors}; "
                 f"outputs differing from the host: {comparison['mismatches']}")
        return ["device.json"], {"errors": result.errors, "mismatches": comparison["mismatches"]}

    def _stage_device_audio(self):
        """Tasks whose device preprocesses raw input itself (KWS): stream the raw test clips;
        the device runs its feature extractor, then the model. Its features must equal the
        host's (same C code) and its outputs the host's int8 outputs on those features."""
        from .device.evaluate import compare_with_host, run_audio_on_device
        from .evaluate import classification_result
        from .export import tflite_io_quantization
        from .export.convert import quantize_input

        d, c, dc = self.dataset, self.config.device, self.config.data
        n = min(c.limit or len(d.y_test), len(d.y_test))
        audio = self.task.load_test_audio(dc.dir or None, seed=self.config.seed, train_limit=dc.train_limit,
                                          test_limit=dc.test_limit)
        if len(audio) != len(d.y_test):
            raise TinykdError(
                f"The raw test clips ({len(audio)}) do not line up with the test features "
                f"({len(d.y_test)}); the dataset changed during the build. Run again with --force."
            )
        host_features = quantize_input(d.x_test[:n], tflite_io_quantization(self.out / "model_int8.tflite").input)
        firmware = json.loads((self.out / "firmware" / "firmware.json").read_text())
        self.log(f"  streaming {n} raw test clips to {self.board.name} (features computed on the device)")
        run = run_audio_on_device(self.board, firmware["elf"], audio[:n], expected_sha256=firmware["model_sha256"],
                                  port=c.port or None, instances=c.instances)
        host = np.load(self.out / "host_int8_outputs.npy")[:n]
        feature_mismatches = int(np.any(run.features.reshape(n, -1) != host_features.reshape(n, -1), axis=1).sum())
        result = classification_result("device", run.outputs, d.y_test[:n], d.num_classes)
        host_result = classification_result("host_int8_tflm", host, d.y_test[:n], d.num_classes)
        comparison = compare_with_host(run.outputs, host)
        frontend = run.frontend_latency(self.board.clock_hz)
        device = {
            "board": run.board, "where": run.where, "examples": n, "seconds": run.seconds,
            "input": "raw audio (int16, 16 kHz, 1 s); features computed on the device",
            "device": result.to_dict(), "host_int8": host_result.to_dict(),
            "host_vs_device": comparison, "feature_mismatches": feature_mismatches,
            "latency": run.latency(self.board.clock_hz), "frontend_latency": frontend,
        }
        write_json(self.out / "device.json", device)
        self.log(f"  on device: {result.errors} errors / {n}; host int8: {host_result.errors}; "
                 f"outputs differing from the host: {comparison['mismatches']}; "
                 f"feature vectors differing: {feature_mismatches}")
        return ["device.json"], {"errors": result.errors, "mismatches": comparison["mismatches"],
                                 "feature_mismatches": feature_mismatches}

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
        }
        write_json(self.out / "evaluation.json", evaluation)
        for name, r in results.items():
            self.log(f"  {name:<12} {r.errors:>5} errors / {r.total}  ({100 * r.accuracy:.2f} %)")
        self.log(f"  int8 outputs differing between LiteRT and TFLite Micro: {mismatches} "
                 f"(largest difference {max_difference} step, {prediction_disagreements} different predictions)")
        return ["evaluation.json", "host_int8_outputs.npy"], {"mismatches": mismatches}

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
