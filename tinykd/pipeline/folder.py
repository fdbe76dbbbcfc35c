"""A build folder remembers how it was made, and later commands on it start from that.

`Build` writes the resolved configuration to `<out>/config.toml` when it runs a stage. A command run later on the same
folder (`tinykd evaluate --out B`, `tinykd flash --out B`) resolves its configuration from that file,
not from the task defaults, so it never retrains a KWS build as MNIST or a `--quick` build with
full settings. An option given on the command line that would change a finished model stage
(training, conversion, firmware) is refused with a message naming the option and the stage; the
user can give the new settings their own folder, or ask for the redo with `--force`. Measurement
settings (which port, how many test examples) change no model and are taken as given.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from ..config import BuildConfig, resolve
from ..errors import TinykdError
from .stages import STAGES, stage_fingerprint

# Stages whose results are models or firmware: redoing one silently would lose work.
MODEL_STAGES = ("train-teacher", "extra-teachers", "distill", "qat", "convert", "export", "firmware")


def recorded_config(out_dir: Path) -> Path | None:
    """The folder's config.toml when the folder holds a build (its stages.json), else None."""
    path = Path(out_dir) / "config.toml"
    return path if path.is_file() and (Path(out_dir) / "stages.json").is_file() else None


def resolve_for_folder(
    out_dir: Path,
    *,
    task: str | None,
    config_file: str | Path | None,
    quick: bool,
    given: dict[str, dict[str, Any]],
    device: dict[str, Any] | None = None,
    force: bool = False,
) -> BuildConfig:
    """The configuration a command on `out_dir` runs with.

    `given` maps each option the user gave (as typed, e.g. "--temperature") to the nested
    configuration override it makes. A new folder resolves as usual (task defaults < --config
    < --quick < options); a folder holding a build starts from its config.toml instead.
    """
    overrides = _merged(given, device)
    recorded = recorded_config(out_dir)
    if recorded is None:
        return resolve(task=task, config_file=config_file, quick=quick, overrides=overrides)
    old = resolve(config_file=recorded)
    if task and task != old.task and not force:
        raise TinykdError(
            f"{out_dir} holds a '{old.task}' build, and --task {task} would retrain it as another task. "
            f"Nothing was run. Give the '{task}' build its own folder (--out), or leave --task out to "
            f"work on the '{old.task}' build."
        )
    new = resolve(task=task, config_file=config_file or recorded, quick=quick, overrides=overrides)
    if force:
        return new
    finished = _finished_model_stages(out_dir)
    changed = [s for s in finished if stage_fingerprint(new, s) != stage_fingerprint(old, s)]
    if changed:
        options = _options_that_change(old, recorded, finished, given, quick, config_file)
        first = min(changed, key=STAGES.index)
        raise TinykdError(
            f"{out_dir} holds a finished build, and {_names(options) or 'the options given'} would change "
            f"its finished stage [{first}] ({_differences(old, new)}), so it would be trained again over "
            "the models that are there. Nothing was run. Give the new settings their own folder "
            f"(--out NEW), leave {'those options' if len(options) > 1 else 'that option'} out to use the "
            "build as it is, or add --force to redo the build in this folder with them."
        )
    return new


def _merged(given: dict[str, dict[str, Any]], device: dict[str, Any] | None) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for override in given.values():
        for section, value in override.items():
            if isinstance(value, dict):
                merged.setdefault(section, {}).update(value)
            else:
                merged[section] = value
    if device:
        merged["device"] = device
    return merged


def _finished_model_stages(out_dir: Path) -> list[str]:
    try:
        records = json.loads((Path(out_dir) / "stages.json").read_text())
    except (OSError, json.JSONDecodeError):
        return []
    return [
        stage
        for stage in MODEL_STAGES
        if isinstance(records.get(stage), dict)
        and all((Path(out_dir) / a).exists() for a in records[stage].get("artifacts", []))
    ]


def _options_that_change(old, recorded, finished, given, quick, config_file) -> list[str]:
    """The options that, each applied alone to the recorded build, change a finished stage."""
    trials: dict[str, dict[str, Any]] = {name: {"overrides": override} for name, override in given.items()}
    if quick:
        trials["--quick"] = {"quick": True}
    if config_file:
        trials[f"--config {config_file}"] = {"config_file": config_file}
    culprits = []
    for name, trial in trials.items():
        alone = resolve(
            config_file=trial.get("config_file", recorded),
            quick=trial.get("quick", False),
            overrides=trial.get("overrides"),
        )
        if any(stage_fingerprint(alone, s) != stage_fingerprint(old, s) for s in finished):
            culprits.append(name)
    return culprits


def _names(options: list[str]) -> str:
    return options[0] if len(options) == 1 else ", ".join(options[:-1]) + " and " + options[-1]


def _differences(old: BuildConfig, new: BuildConfig, most: int = 4) -> str:
    """'distill.temperature 20.0 -> 8.0, …': the settings that differ, for the message."""
    before, after = _flat(dataclasses.asdict(old)), _flat(dataclasses.asdict(new))
    changes = [f"{k} {before.get(k)!r} -> {after.get(k)!r}" for k in after if before.get(k) != after.get(k)]
    more = f", and {len(changes) - most} more" if len(changes) > most else ""
    return ", ".join(changes[:most]) + more


def _flat(d: dict, prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in d.items():
        if isinstance(value, dict):
            flat.update(_flat(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat
