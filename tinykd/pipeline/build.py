"""`Build`: one build directory, the bookkeeping of its stages, and the helpers stages share.

Each stage records a fingerprint of the settings and upstream stages it depends on in
stages.json. A stage whose artifacts exist with the same fingerprint is skipped, so an
interrupted build resumes where it stopped and changing one setting redoes only what it
affects. Training stages also resume mid-way from their per-epoch checkpoints.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from ..config import BuildConfig
from ..errors import TinykdError
from ..fileio import write_json, write_text
from . import measure_stages, model_stages, training_stages
from .stages import CHECKPOINT_LABEL, OWNER_STAGE, SEED_OFFSET, STAGES, UPSTREAM, stage_fingerprint

# What runs each stage: a function of the Build returning (artifacts, info).
_RUNNERS: dict[str, Callable[[Build], tuple[list[str], dict]]] = {
    "train-teacher": training_stages.train_teacher,
    "extra-teachers": training_stages.extra_teachers,
    "distill": training_stages.distill,
    "qat": training_stages.qat,
    "convert": model_stages.convert,
    "export": model_stages.export,
    "firmware": model_stages.firmware,
    "evaluate": measure_stages.evaluate,
    "device": measure_stages.device,
    "report": measure_stages.report,
}


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
        return stage_fingerprint(self.config, stage)

    def is_done(self, stage: str) -> bool:
        record = self.records.get(stage)
        return (
            record is not None
            and record.fingerprint == self.fingerprint(stage)
            and all((self.out / a).exists() for a in record.artifacts)
        )

    def run(self, stage: str) -> StageRecord:
        """Run one stage (and, first, any upstream stage not yet done)."""
        for up in UPSTREAM[stage]:
            if not self.is_done(up):
                self.run(up)
        if self.is_done(stage) and not self.force:
            self.log(f"[{stage}] up to date, skipped ({self.records[stage].seconds:.0f} s when built)")
            return self.records[stage]
        if self.force:
            self._remove_checkpoints(stage, keep=None)
        # Recorded only when a stage runs with it: a Build made to look (fingerprints, is_done) must
        # not leave a config.toml that no longer describes the folder's finished stages.
        write_text(self.out / "config.toml", self.config.to_toml())
        self.log(f"[{stage}] running")
        self._fresh_keras_names()
        started = time.perf_counter()
        artifacts, info = _RUNNERS[stage](self)
        record = StageRecord(self.fingerprint(stage), round(time.perf_counter() - started, 2), artifacts, info)
        self.records[stage] = record
        self._save_state()
        self.log(f"[{stage}] done in {record.seconds:.0f} s")
        return record

    def run_all(self) -> None:
        """Every stage. On a hardware board the device stage waits for `tinykd flash` + `evaluate`,
        unless QEMU models the board's chip (`emulated_by`): then it runs there."""
        for stage in STAGES:
            if stage == "device" and not self.board.is_qemu and not self.board.emulated_by:
                self.log(
                    f"[device] skipped: flash the {self.board.name} with `tinykd flash`, then run "
                    "`tinykd evaluate` to measure on it"
                )
                continue
            self.run(stage)

    # ---- shared inputs -------------------------------------------------------------------
    @cached_property
    def board(self):
        from ..boards import load_board

        return load_board(self.config.board)

    @cached_property
    def task(self):
        from ..data import get_task

        return get_task(self.config.task)

    @cached_property
    def dataset(self):
        from ..data import load_dataset

        return load_dataset(self.config)

    @cached_property
    def recipe(self):
        """The distillation method's build recipe (tinykd.distill.methods.BuildRecipe)."""
        from ..distill.methods import get_recipe

        return get_recipe(self.config.distill.method)

    # ---- helpers for the stages and the method recipes ---------------------------------------
    @staticmethod
    def _fresh_keras_names() -> None:
        """Keras numbers automatic layer names per process (tfmot's quantize_layer becomes
        quantize_layer_1 when loaded a second time) and names land in the .tflite. Each stage
        starts from a fresh naming state, so its bytes never depend on what ran before it."""
        import tf_keras as keras

        import tinykd  # noqa: F401

        keras.backend.clear_session()

    def seed(self, stage: str) -> int:
        """Seed every random generator for `stage`'s training run; returns the seed."""
        from ..distill.training import seed_everything

        return seed_everything(self.config.seed * 100 + SEED_OFFSET[stage])

    def checkpoints(self, stage: str) -> Path:
        """Per-epoch checkpoints of one training run, keyed by the stage's fingerprint so that a
        resumed run never picks up weights trained with other settings."""
        fingerprint = self.fingerprint(OWNER_STAGE[stage])
        self._remove_checkpoints(stage, keep=fingerprint)
        return self.out / "checkpoints" / f"{CHECKPOINT_LABEL[stage]}-{fingerprint}"

    def _remove_checkpoints(self, stage: str, keep: str | None) -> None:
        for owned, owner in OWNER_STAGE.items():
            if owner != OWNER_STAGE.get(stage, stage):
                continue
            for folder in (self.out / "checkpoints").glob(f"{CHECKPOINT_LABEL[owned]}-*"):
                if keep is None or not folder.name.endswith(f"-{keep}"):
                    shutil.rmtree(folder, ignore_errors=True)

    def model_path(self, name: str) -> Path:
        # QAT models round-trip only through HDF5 (tfmot's quantize layers lose variables
        # in the .keras format), so the QAT student alone is stored as .h5.
        return self.out / (f"{name}.h5" if name == "student_qat" else f"{name}.keras")

    def load_model(self, name: str):
        from ..models.store import load_model

        return load_model(self.model_path(name))

    def save_model(self, model, name: str) -> str:
        """Save `model` as `name` in the build folder; returns its file name (the artifact)."""
        from ..models.store import save_model

        path = self.model_path(name)
        save_model(model, path)
        return path.name

    def new_model(self, arch: str):
        """A fresh model of `arch` for the task's inputs and classes."""
        from ..models import build_model

        d = self.dataset
        return build_model(arch, d.input_shape, d.num_classes)

    def save_history(self, name: str, result) -> None:
        write_json(self.out / "history" / f"{name}.json", {"history": result.history, "seconds": result.seconds})

    def train(
        self,
        stage: str,
        model,
        section,
        kd=None,
        *,
        seed: int | None = None,
        checkpoint_dir=None,
        label: str | None = None,
        patience: int = 0,
    ):
        """Train `model` with [section]'s epochs, batch size and learning rate, distilling with
        `kd` = (method, teacher) (a recipe's `kd_pair`) or on the labels alone (None). The seed
        is the stage's unless given; checkpoints go to the stage's folder unless given;
        `patience` > 0 stops early on validation (tinykd.distill.train)."""
        import tf_keras as keras

        import tinykd  # noqa: F401

        from ..distill import Distiller, train

        d = self.dataset
        method, teacher = kd if kd is not None else (None, None)
        wrapper = Distiller(model, teacher, method=method)
        if seed is None:
            seed = self.seed(stage)
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
            checkpoint_dir=checkpoint_dir or self.checkpoints(stage),
            label=label or CHECKPOINT_LABEL[stage],
            patience=patience,
        )


def default_out_dir(config: BuildConfig) -> Path:
    return Path("build") / f"{config.task}-{config.board}"
