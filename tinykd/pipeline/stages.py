"""The stages of a build, what each depends on, and how its training runs are seeded and named.

A stage's fingerprint hashes `STAGE_SETTINGS[stage](config)` (its reprs are part of every
build folder's stages.json: change them and existing builds redo the stage) and the
fingerprints of its `UPSTREAM` stages.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..config import BuildConfig
from ..firmware.digest import firmware_sources_digest

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


def _recipe(c: BuildConfig):
    from ..distill.methods import get_recipe

    return get_recipe(c.distill.method)


def _seeds(c: BuildConfig):
    """The build's seed, and the data's own where one is set (unset, builds made before the
    setting existed keep their fingerprints)."""
    return c.seed if c.data_seed < 0 else (c.seed, ("data_seed", c.data_seed))


def _data_settings(c: BuildConfig):
    """What shapes the data and a digest of the files it is read from, not where they were found:
    every copy of the same files is the same data, another dataset in the same folder is not."""
    from ..data import data_digest

    settings = dataclasses.replace(c.data, dir="")
    digest = data_digest(c)
    return settings if digest is None else (settings, digest)


def _teacher_settings(c: BuildConfig):
    """A loaded teacher is known by its bytes (a copy elsewhere is the same teacher); a trained one by
    how it was trained."""
    if c.teacher.model:
        return ("loaded", hashlib.sha256(Path(c.teacher.model).read_bytes()).hexdigest())
    return c.teacher


def distill_settings(c: BuildConfig):
    """The [distill] settings the chosen method reads (a change to another method's keys redoes
    nothing), the T/alpha search's when it runs, the early stopping's patience, and which model ships."""
    kd = c.distill
    settings = (kd.method, kd.temperature, kd.alpha) + _recipe(c).key_settings(kd)
    if kd.searched and _recipe(c).searchable:
        # "auto": the chosen T and alpha follow from the grid (and the stage's other settings),
        # so a finished build is reused as it is; a new grid chooses again.
        settings += (("search", kd.search_temperatures, kd.search_alphas, kd.search_epochs, kd.search_train),)
    settings += (("patience", kd.patience),)
    # The default ("better") adds nothing, so builds made before the key existed are reused.
    return settings if kd.ship == "better" else settings + (("ship", kd.ship),)


# The settings each stage's result depends on (besides the upstream stages it reads).
STAGE_SETTINGS: dict[str, Callable[[BuildConfig], Any]] = {
    "train-teacher": lambda c: (c.task, _seeds(c), _data_settings(c), _teacher_settings(c)),
    "extra-teachers": lambda c: (c.task, _seeds(c), _data_settings(c), _recipe(c).extra_model_settings(c)),
    "distill": lambda c: (c.task, _seeds(c), _data_settings(c), c.student, distill_settings(c)),
    "qat": lambda c: (c.qat, distill_settings(c)),
    "convert": lambda c: (c.qat.calibration_samples,),
    "export": lambda c: (),
    "firmware": lambda c: (c.board, firmware_sources_digest()),
    "evaluate": lambda c: (c.data.test_limit,),
    "device": lambda c: (c.device.limit, c.device.port),
    "report": lambda c: (),
}

UPSTREAM = {
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


def stage_fingerprint(config: BuildConfig, stage: str) -> str:
    """16 hex digits of the stage's settings and, recursively, its upstream stages' fingerprints."""
    parts = [repr(STAGE_SETTINGS[stage](config))]
    parts += [stage_fingerprint(config, up) for up in UPSTREAM[stage]]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]


# Training runs: the stage that owns each, and the name of its checkpoint folder.
OWNER_STAGE = {
    "train-teacher": "train-teacher",
    "extra-teachers": "extra-teachers",
    "baseline": "distill",
    "distill": "distill",
    "qat": "qat",
}
CHECKPOINT_LABEL = {
    "train-teacher": "teacher",
    "extra-teachers": "extra",
    "baseline": "baseline",
    "distill": "student",
    "qat": "student_qat",
}
# Offsets keep each stage's random stream distinct yet fixed by the one seed. The no-KD baseline
# has none of its own: it starts as the KD student does (training_stages.distill).
SEED_OFFSET = {"train-teacher": 1, "distill": 2, "qat": 4, "extra-teachers": 5, "kd-search": 6}
