"""`tinykd sweep`: distil many students (temperatures x alphas x architectures x methods) from
one teacher, resumably, and plot what the grid shows.

Each point is one JSON file in out/points/, written when the point is finished and skipped
on a rerun that asks for it with the same settings; an interrupted point resumes from its
per-epoch checkpoints. The summary (sweep.json, sweep.md, plots/) is rewritten from all
points at the end of every run.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from ..config import BuildConfig
from ..errors import TinykdError
from ..fileio import write_json, write_text
from ..firmware.digest import firmware_sources_digest
from .pareto import pareto_front
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
    single_teacher_methods,
    train_student,
)

# Examples the soft-target plot chooses its one example from (the teacher's most uncertain
# correct answer among them: where the small probabilities carry the most).
_SOFT_TARGET_CANDIDATES = 1000


@dataclass(frozen=True)
class SweepGrid:
    temperatures: tuple[float, ...]
    alphas: tuple[float, ...]
    students: tuple[str, ...]
    methods: tuple[str, ...]

    def specs(self, baselines: bool) -> list[StudentSpec]:
        """Every point of the grid, each student's no-KD baseline first when asked for."""
        specs = []
        for arch in self.students:
            if baselines:
                specs.append(StudentSpec(arch, None, 1.0, 0.0))
            specs += [
                StudentSpec(arch, method, t, a)
                for method in self.methods
                for a in self.alphas
                for t in self.temperatures
            ]
        return specs

    def to_dict(self) -> dict:
        return {
            "temperatures": list(self.temperatures),
            "alphas": list(self.alphas),
            "students": list(self.students),
            "methods": list(self.methods),
        }


def _items(option: str, text: str, example: str) -> list[str]:
    items = [s.strip() for s in str(text).split(",")]
    if not text or any(not s for s in items):
        raise TinykdError(
            f"{option} {text!r} has an empty entry. Give a comma-separated list without "
            f"blanks, e.g. {option} {example}."
        )
    return list(dict.fromkeys(items))  # repeats would train the same point twice


def _numbers(option: str, text: str, example: str) -> list[float]:
    values = []
    for item in _items(option, text, example):
        try:
            values.append(float(item))
        except ValueError:
            raise TinykdError(
                f"{option}: {item!r} is not a number. Give a comma-separated list of numbers, e.g. {option} {example}."
            ) from None
    return values


def parse_grid(temperatures: str, alphas: str, students: str, methods: str) -> SweepGrid:
    """The grid from the command line's comma-separated lists; TinykdError naming the bad value."""
    from ..models import check_model_name

    ts = _numbers("--temperatures", temperatures, "1,2,4,8,20")
    bad = [t for t in ts if not t > 0]
    if bad:
        raise TinykdError(
            f"--temperatures: every temperature must be > 0 (got {', '.join(f'{t:g}' for t in bad)}). "
            "Distillation divides the logits by T; Hinton et al. used 1-20, e.g. "
            "--temperatures 1,2,4,8,20."
        )
    al = _numbers("--alphas", alphas, "0.5,0.9")
    bad = [a for a in al if not 0.0 <= a <= 1.0]
    if bad:
        raise TinykdError(
            f"--alphas: alpha is the weight of the soft (teacher) loss and must be in [0, 1] "
            f"(got {', '.join(f'{a:g}' for a in bad)}). Try --alphas 0.5,0.9."
        )
    archs = _items("--students", students, "mlp-30-30,mlp-300-300")
    for arch in archs:
        try:
            check_model_name(arch)
        except TinykdError as exc:
            raise TinykdError(f"--students: {exc}") from None
    ms = _items("--methods", methods, "hinton,rkd")
    sweepable = single_teacher_methods()
    bad = [m for m in ms if m not in sweepable]
    if bad:
        raise TinykdError(
            f"--methods: {', '.join(bad)} cannot be swept; a sweep distils each student from one "
            f"teacher at each (T, alpha), which {', '.join(sweepable)} do. The other methods need extra "
            "teachers, peers or generations: compare them with `tinykd build --method NAME`."
        )
    return SweepGrid(tuple(ts), tuple(al), tuple(archs), tuple(ms))


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
    log: Callable[[str], None] = print,
) -> SweepResult:
    """Train every point of the grid not finished yet, then write sweep.json, sweep.md and plots/."""
    from ..boards import load_board

    board = load_board(config.board)
    experiment = open_experiment(config, out, log=log)
    specs = grid.specs(baselines)
    points, trained = [], 0
    for spec in tqdm(specs, desc="sweep", unit="point", dynamic_ncols=True):
        point, ran = _run_point(experiment, spec, board if int8 else None)
        points.append(point)
        trained += ran
    files = _write_summary(experiment, grid, points, board, int8)
    return SweepResult(experiment.out, points, trained, len(specs) - trained, files)


def _point_settings(experiment: Experiment, spec: StudentSpec, board) -> dict:
    """What a point's training and int8 results depend on (its flash also on the firmware
    sources, which are tracked apart: see _measure)."""
    c = experiment.config
    settings = {
        "task": c.task,
        "seed": c.seed,
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
    return settings


def _measure(experiment: Experiment, point: dict, board, work: Path) -> None:
    """Flash and RAM of the point's int8 model on the board, with the firmware sources' digest:
    a change to the runtime re-measures a finished point without training it again."""
    size = measure_firmware(experiment.out / point["int8"]["tflite"], board, work / "firmware")
    point["int8"].update(size.to_dict())
    point["firmware_sources"] = firmware_sources_digest()


def _run_point(experiment: Experiment, spec: StudentSpec, board) -> tuple[dict, bool]:
    out, d = experiment.out, experiment.dataset
    settings = _point_settings(experiment, spec, board)
    path = out / "points" / f"{spec.key}.json"
    finished = read_finished(path, settings)
    if finished is not None:
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
        return finished, False
    started = time.perf_counter()
    # Checkpoints keyed by the settings: an interrupted point resumes only under the same ones.
    work = out / "checkpoints" / f"{spec.key}-{settings_digest(settings)}"
    for stale in (out / "checkpoints").glob(f"{spec.key}-*"):
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
    if settings["int8"] is not None:
        tflite = out / "models" / f"{spec.key}.tflite"
        qat = quantize_to_int8(experiment, student, spec, work / "qat", tflite)
        point["qat_history"] = qat.history
        int8 = int8_test_errors(experiment, tflite)
        point["int8"] = {
            "test_errors": int8.errors,
            "test_total": int8.total,
            "accuracy": round(int8.accuracy, 6),
            "tflite": str(tflite.relative_to(out)),
            "tflite_bytes": tflite.stat().st_size,
        }
        _measure(experiment, point, board, work)
    point["seconds"] = round(time.perf_counter() - started, 1)
    write_json(path, point)
    remove_tree(work)
    int8_note = (
        f", int8 {point['int8']['test_errors']}, flash {point['int8']['flash_used']:,} B" if point["int8"] else ""
    )
    experiment.log(f"  {spec.key}: {test.errors} test errors / {test.total}{int8_note}")
    return point, True


def _line_label(point: dict, grid: SweepGrid) -> str:
    """The student's name, plus method and alpha when the grid varies them."""
    parts = [point["student"]]
    if len(grid.methods) > 1:
        parts.append(point["method"])
    if len(grid.alphas) > 1:
        parts.append(f"α={point['alpha']:g}")
    return " ".join(parts)


def _soft_target_plot(experiment: Experiment, grid: SweepGrid, path: Path) -> tuple[Path, dict]:
    """The teacher's soft targets for one test example at T = 1 and the swept temperatures."""
    from ..evaluate import predict_logits
    from ..report import plots

    d = experiment.dataset
    n = min(_SOFT_TARGET_CANDIDATES, len(d.y_test))
    logits = predict_logits(experiment.load_teacher(), d.x_test[:n]).astype(np.float64)

    def softmax(z):
        z = z - z.max(axis=-1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=-1, keepdims=True)

    p1 = softmax(logits)
    entropy = -(p1 * np.log(np.clip(p1, 1e-30, None))).sum(axis=-1)
    correct = p1.argmax(axis=-1) == d.y_test[:n]
    index = int(np.argmax(np.where(correct, entropy, -np.inf))) if correct.any() else 0
    temperatures = sorted({1.0, *grid.temperatures})
    probabilities = {t: softmax(logits[index] / t) for t in temperatures}
    true_class = int(d.y_test[index])
    plots.soft_targets(
        probabilities,
        d.class_names,
        true_class,
        d.x_test[index],
        f"Teacher's soft targets for test example {index} (class {d.class_names[true_class]})",
        path,
    )
    return path, {
        "test_index": index,
        "true_class": d.class_names[true_class],
        "probabilities": {f"{t:g}": [round(float(v), 6) for v in p] for t, p in probabilities.items()},
    }


def _write_summary(experiment: Experiment, grid: SweepGrid, points: list[dict], board, int8: bool) -> list[Path]:
    from ..report import plots

    out, d, c = experiment.out, experiment.dataset, experiment.config
    plot_dir = out / "plots"
    baselines = {p["student"]: p["test_errors"] for p in points if p["method"] == "none"}
    kd = [p for p in points if p["method"] != "none"]
    total = len(d.y_test)
    lines: dict[str, list[tuple[float, int]]] = {}
    for p in kd:
        lines.setdefault(_line_label(p, grid), []).append((p["temperature"], p["test_errors"]))
    written = [
        plots.errors_vs_temperature(
            lines,
            baselines,
            total,
            "KD students (float): test errors vs temperature",
            plot_dir / "errors_vs_temperature.png",
        )
    ]
    quantized = [p for p in kd if p["int8"]]
    front_keys: list[str] = []
    if quantized:
        int8_lines: dict[str, list[tuple[float, int]]] = {}
        for p in quantized:
            int8_lines.setdefault(_line_label(p, grid), []).append((p["temperature"], p["int8"]["test_errors"]))
        written.append(
            plots.errors_vs_temperature(
                int8_lines,
                {},
                total,
                "int8 students (TFLite Micro): test errors vs temperature",
                plot_dir / "int8_errors_vs_temperature.png",
            )
        )
        scatter = [
            {
                "label": f"{p['student']} T={p['temperature']:g}",
                "flash": p["int8"]["flash_used"],
                "ram": p["int8"]["ram_used"],
                "accuracy": p["int8"]["accuracy"],
            }
            for p in quantized
        ]
        front = pareto_front([s["flash"] for s in scatter], [s["accuracy"] for s in scatter])
        front_keys = [quantized[i]["key"] for i in front]
        first = quantized[0]["int8"]
        written.append(
            plots.accuracy_vs_size(
                scatter,
                front,
                first["flash_budget"],
                first["ram_budget"],
                f"int8 students on {board.name}: accuracy vs memory",
                plot_dir / "accuracy_vs_flash.png",
            )
        )
    soft_path, soft = _soft_target_plot(experiment, grid, plot_dir / "soft_targets.png")
    written.append(soft_path)
    teacher = float_errors(experiment.load_teacher(), d.x_test, d.y_test, d.num_classes)

    summary = {
        "tinykd_sweep": 1,
        "task": c.task,
        "board": board.name if int8 else None,
        "seed": c.seed,
        "teacher": {
            "path": str(experiment.teacher_path),
            "fingerprint": experiment.teacher_id,
            "arch": None if c.teacher.model else c.teacher.arch,
            "loaded_from": c.teacher.model or None,
            "test_errors": teacher.errors,
        },
        "grid": grid.to_dict(),
        "int8": int8,
        "student_epochs": c.student.epochs,
        "qat_epochs": c.qat.epochs,
        "dataset": d.summary(),
        "test_examples": total,
        "val_examples": len(d.y_val),
        "points": [
            {k: v for k, v in p.items() if k not in ("history", "qat_history", "settings", "firmware_sources")}
            for p in points
        ],
        "pareto_front_flash": front_keys,
        "soft_targets": soft,
        "plots": [str(p.relative_to(out)) for p in written],
    }
    written.append(write_json(out / "sweep.json", summary))
    written.append(write_text(out / "sweep.md", _markdown(summary, points, baselines)))
    return written


def _markdown(summary: dict, points: list[dict], baselines: dict[str, int]) -> str:
    total = summary["test_examples"]
    g, t = summary["grid"], summary["teacher"]
    lines = [
        f"# tinykd sweep: {summary['task']}" + (f" on {summary['board']}" if summary["board"] else ""),
        "",
        f"Teacher: `{t['loaded_from'] or t['path']}` ({t['arch'] or 'loaded'}), {t['test_errors']} test errors. "
        f"Students: {', '.join(g['students'])}; methods {', '.join(g['methods'])}; "
        f"T in {{{', '.join(f'{x:g}' for x in g['temperatures'])}}}; "
        f"alpha in {{{', '.join(f'{a:g}' for a in g['alphas'])}}}; student epochs: {summary['student_epochs']}"
        + (
            f", QAT epochs: {summary['qat_epochs']}, int8 errors in TFLite Micro (no-KD baselines: float only)"
            if summary["int8"]
            else ""
        )
        + ". Every student of one architecture starts from the same weights and sees the same batches, "
        "so the rows differ only in what is swept.",
        "",
        f"| student | method | T | α | val errors (of {summary['val_examples']}) | test errors, float (of {total}) | "
        "vs no KD | int8 test errors | flash (B) | RAM (B) | fits |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    front = set(summary["pareto_front_flash"])
    for p in points:
        q, kd = p["int8"], p["method"] != "none"
        baseline = baselines.get(p["student"])
        gain = f"{p['test_errors'] - baseline:+d}" if kd and baseline is not None else ""
        setting = f"{p['method']} | {p['temperature']:g} | {p['alpha']:g}" if kd else "none (labels only) | - | -"
        if q:
            star = " ★" if p["key"] in front else ""
            fits = "yes" if q["fits"] else f"no: over {q['over_budget']}"
            int8 = f"{q['test_errors']}{star} | {q['flash_used']:,} | {q['ram_used']:,} | {fits}"
        else:
            int8 = "- | - | - | -"
        lines.append(f"| {p['student']} | {setting} | {p['val_errors']} | {p['test_errors']} | {gain} | {int8} |")
    lines += [
        "",
        "★: on the Pareto front of int8 accuracy vs flash (no other point is both smaller and better).",
        "",
        "## Plots",
        "",
    ]
    titles = {
        "errors_vs_temperature.png": "Test errors vs temperature (float students; dashed: no-KD baselines)",
        "int8_errors_vs_temperature.png": "Test errors vs temperature (int8 students in TFLite Micro)",
        "accuracy_vs_flash.png": "int8 accuracy vs flash and RAM, with the Pareto front and the board's budgets",
        "soft_targets.png": (
            f"The teacher's soft targets for test example {summary['soft_targets']['test_index']} "
            "at several temperatures"
        ),
    }
    for rel in summary["plots"]:
        title = titles.get(Path(rel).name, Path(rel).name)
        lines += [f"### {title}", "", f"[{rel}]({rel})", "", f"![{title}]({rel})", ""]
    return "\n".join(lines) + "\n"


def default_sweep_dir(config: BuildConfig) -> Path:
    return Path("build") / f"sweep-{config.task}-{config.board}"
