"""`tinykd sweep`: distil many students (temperatures x alphas x architectures x methods) from
one teacher, resumably, and plot what the grid shows.

Each point is one Ray Tune trial of a grid search (tinykd.trials: Ray embedded on this machine,
or a cluster joined with --address), trained, converted to int8 and sized for the board by
`train_point`. A finished point is one JSON file in out/points/, keyed by its settings: a rerun
with the same settings hands only the missing points to Ray, and an interrupted point resumes
from its per-epoch checkpoints. The summary (sweep.json, sweep.md, plots/) is rewritten from all
points at the end of every run.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..config import BuildConfig
from ..errors import TinykdError
from ..fileio import write_json
from ..firmware.digest import firmware_sources_digest
from ..trials import EMBEDDED, RayOptions, Trial, run_trials
from .points import (
    Experiment,
    StudentSpec,
    float_errors,
    int8_test_errors,
    measure_firmware,
    open_experiment,
    quantize_to_int8,
    read_finished,
    remove_tree,
    settings_digest,
    train_student,
)
from .sweep_grid import SweepGrid, parse_grid
from .sweep_report import write_summary

__all__ = ["SweepGrid", "SweepResult", "default_sweep_dir", "parse_grid", "run_sweep", "train_point"]


@dataclass
class SweepResult:
    out: Path
    points: list[dict]
    trained: int  # points run now
    skipped: int  # points finished by an earlier run with the same settings
    files: list[Path]


def run_sweep(
    config: BuildConfig,
    out: str | Path,
    grid: SweepGrid,
    *,
    int8: bool = True,
    baselines: bool = True,
    ray: RayOptions | None = EMBEDDED,
    log: Callable[[str], None] = print,
) -> SweepResult:
    """Train every point of the grid not finished yet (as Ray Tune trials; `ray=None`: one after
    another in this process, no Ray), then write sweep.json, sweep.md and plots/."""
    from ..boards import load_board

    board = load_board(config.board)
    specs = grid.specs(baselines)
    experiment = open_experiment(config, out, log=log, methods=[spec.method for spec in specs])
    todo = []
    for spec in specs:
        settings = _point_settings(experiment, spec, board if int8 else None)
        if _finished(experiment, spec, settings, board) is None:
            todo.append({"name": spec.key, **vars(spec), "settings": settings, "board": board.name})
    run_trials(experiment, train_point, todo, options=ray, desc="sweep")
    points = [_saved_point(experiment, spec) for spec in specs]
    files = write_summary(experiment, grid, points, board, int8)
    return SweepResult(experiment.out, points, len(todo), len(specs) - len(todo), files)


def _point_settings(experiment: Experiment, spec: StudentSpec, board) -> dict:
    """What a point's training and int8 results depend on (its flash also on the firmware
    sources, which are tracked apart: see _measure)."""
    c = experiment.config
    settings = {
        "task": c.task,
        "seed": spec.seed_or(c.seed),
        "data": experiment.data_settings(),
        "teacher": experiment.teacher_id,
        "student": {
            "arch": spec.arch,
            "epochs": c.student.epochs,
            "batch_size": c.student.batch_size,
            "learning_rate": c.student.learning_rate,
        },
        "method": spec.method,
        "temperature": spec.temperature,
        "alpha": spec.alpha,
        "int8": None,
    }
    if board is not None and not spec.is_baseline:
        settings["int8"] = {"qat": vars(c.qat).copy(), "board": board.name}
    return settings | experiment.kd_settings(spec)


def _measure(experiment: Experiment, point: dict, board, work: Path) -> None:
    """Flash and RAM of the point's int8 model on the board, with the firmware sources' digest:
    a change to the runtime re-measures a finished point without training it again."""
    size = measure_firmware(experiment.out / point["int8"]["tflite"], board, work / "firmware")
    point["int8"].update(size.to_dict())
    point["firmware_sources"] = firmware_sources_digest()


def _finished(experiment: Experiment, spec: StudentSpec, settings: dict, board) -> dict | None:
    """The point saved by an earlier run with these settings (its flash and RAM measured again
    here when the firmware sources changed since), or None: it must be trained."""
    out = experiment.out
    path = out / "points" / f"{spec.key}.json"
    finished = read_finished(path, settings)
    if finished is None:
        return None
    if finished["int8"] and finished.get("firmware_sources") != firmware_sources_digest():
        _measure(experiment, finished, board, out / "checkpoints" / f"{spec.key}-measure")
        remove_tree(out / "checkpoints" / f"{spec.key}-measure")
        write_json(path, finished)
        experiment.log(
            f"  {spec.key}: finished earlier; the firmware sources changed, so its flash and RAM "
            f"were measured again ({finished['int8']['flash_used']:,} B flash)"
        )
    else:
        experiment.log(f"  {spec.key}: finished earlier, kept ({path})")
    return finished


def _saved_point(experiment: Experiment, spec: StudentSpec) -> dict:
    path = experiment.out / "points" / f"{spec.key}.json"
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        raise TinykdError(
            f"Point {spec.key} ended without its result file {path}. Run the same command again: finished "
            "points are kept and only the missing ones are trained."
        ) from None


def train_point(experiment: Experiment, params: dict, trial: Trial) -> dict:
    """One point of a sweep, as one trial: train the student (resuming from its checkpoints on
    this node), count its float errors, QAT + int8 + TFLite Micro errors + firmware size for the
    board; the .tflite and the point's JSON (last) are kept in the driver's out/."""
    from ..boards import load_board

    d = experiment.dataset
    spec = StudentSpec(params["arch"], params["method"], params["temperature"], params["alpha"], params["seed"])
    settings = params["settings"]
    started = time.perf_counter()
    # Checkpoints keyed by the settings: an interrupted point resumes only under the same ones.
    work = trial.scratch(f"{spec.key}-{settings_digest(settings)}")
    for stale in work.parent.glob(f"{spec.key}-*"):
        if stale != work:
            remove_tree(stale)
    student, trained = train_student(experiment, spec, experiment.config.student.epochs, work / "student")
    val = float_errors(student, d.x_val, d.y_val, d.num_classes)
    test = float_errors(student, d.x_test, d.y_test, d.num_classes)
    point = {
        "key": spec.key,
        "settings": settings,
        "student": spec.arch,
        "method": spec.method or "none",
        "temperature": spec.temperature,
        "alpha": spec.alpha,
        "val_errors": val.errors,
        "val_total": val.total,
        "test_errors": test.errors,
        "test_total": test.total,
        "history": trained.history,
        "int8": None,
    }
    tflite_bytes = None
    if settings["int8"] is not None:
        tflite = work / f"{spec.key}.tflite"
        qat = quantize_to_int8(experiment, student, spec, work / "qat", tflite)
        point["qat_history"] = qat.history
        int8 = int8_test_errors(experiment, tflite)
        tflite_bytes = tflite.read_bytes()
        point["int8"] = {
            "test_errors": int8.errors,
            "test_total": int8.total,
            "accuracy": round(int8.accuracy, 6),
            "tflite": f"models/{spec.key}.tflite",
            "tflite_bytes": len(tflite_bytes),
        }
        size = measure_firmware(tflite, load_board(params["board"]), work / "firmware")
        point["int8"].update(size.to_dict())
        point["firmware_sources"] = firmware_sources_digest()
    point["seconds"] = round(time.perf_counter() - started, 1)
    point["ran_on"] = {"node": trial.node, "tf_threads": trial.tf_threads}  # where it trained, how
    if tflite_bytes is not None:
        trial.write(point["int8"]["tflite"], tflite_bytes)
    trial.write(f"points/{spec.key}.json", point)  # last: a point file means its model is there
    remove_tree(work)
    int8_note = (
        f", int8 {point['int8']['test_errors']}, flash {point['int8']['flash_used']:,} B" if point["int8"] else ""
    )
    return {
        "test_errors": test.errors,
        "int8_test_errors": point["int8"]["test_errors"] if point["int8"] else None,
        "summary": f"{spec.key}: {test.errors} test errors / {test.total}{int8_note}",
    }


def default_sweep_dir(config: BuildConfig) -> Path:
    return Path("build") / f"sweep-{config.task}-{config.board}"
