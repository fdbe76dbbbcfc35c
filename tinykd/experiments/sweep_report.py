"""`tinykd sweep`'s summary: sweep.json, sweep.md and the plots (errors vs temperature, int8
accuracy vs memory with its Pareto front, the teacher's soft targets), from every point."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..fileio import write_json, write_text
from .pareto import pareto_front
from .points import Experiment, float_errors
from .seed_stats import over_seeds
from .sweep_grid import SweepGrid

# Examples the soft-target plot chooses its one example from (the teacher's most uncertain
# correct answer among them: where the small probabilities carry the most).
_SOFT_TARGET_CANDIDATES = 1000
# What the points' own files keep and sweep.json leaves out (histories, where a point ran).
_POINT_DETAILS = ("history", "qat_history", "settings", "firmware_sources", "ran_on")


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


def write_summary(experiment: Experiment, grid: SweepGrid, points: list[dict], board, int8: bool) -> list[Path]:
    """Rewrite sweep.json, sweep.md and plots/ from every point of the grid; returns the files."""
    from ..report import plots

    out, d, c = experiment.out, experiment.dataset, experiment.config
    plot_dir = out / "plots"
    kd = [p for p in points if p["method"] != "none"]
    total = len(d.y_test)
    # Over several seeds the plots show each setting's mean.
    baselines = _baseline_means(points)
    lines = _mean_lines(kd, grid, lambda p: p["test_errors"])
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
        int8_lines = _mean_lines(quantized, grid, lambda p: p["int8"]["test_errors"])
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
    seeds = over_seeds(points) if len(grid.seeds) > 1 else []
    if seeds:
        written.append(
            plots.errors_over_seeds(
                [
                    (s.student, s.method, s.temperature, s.alpha, s.float_errors, s.int8_errors, s.verdict)
                    for s in seeds
                ],
                total,
                f"Test errors over {len(grid.seeds)} seeds (mean ± sd)",
                plot_dir / "errors_over_seeds.png",
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
        "points": [{k: v for k, v in p.items() if k not in _POINT_DETAILS} for p in points],
        "over_seeds": [s.to_dict() for s in seeds],
        "pareto_front_flash": front_keys,
        "soft_targets": soft,
        "plots": [str(p.relative_to(out)) for p in written],
    }
    written.append(write_json(out / "sweep.json", summary))
    written.append(write_text(out / "sweep.md", _markdown(summary, points)))
    return written


def _mean_lines(points: list[dict], grid: SweepGrid, errors) -> dict[str, list[tuple[float, float]]]:
    """Plot lines: label -> [(T, errors)], the mean over seeds where a point has several."""
    by_t: dict[str, dict[float, list[int]]] = {}
    for p in points:
        by_t.setdefault(_line_label(p, grid), {}).setdefault(p["temperature"], []).append(errors(p))
    return {label: [(t, _mean(v)) for t, v in ts.items()] for label, ts in by_t.items()}


def _baseline_means(points: list[dict]) -> dict[str, float]:
    """Each student's no-KD test errors (the mean over seeds)."""
    groups: dict[str, list[int]] = {}
    for p in points:
        if p["method"] == "none":
            groups.setdefault(p["student"], []).append(p["test_errors"])
    return {k: _mean(v) for k, v in groups.items()}


def _mean(values: list[int]) -> float | int:
    """An int for one value (one seed: the table's own number), else the mean to 0.1."""
    return values[0] if len(values) == 1 else round(sum(values) / len(values), 1)


def paired_text(paired: dict | None) -> str:
    """A paired difference (PairedDifference.to_dict) as a table cell."""
    if not paired:
        return "-"
    low, high = paired["interval"]
    verdict = paired["verdict"]
    shown = f"**{verdict}**" if verdict != "no difference shown" else verdict
    return f"{paired['mean']:+.1f} ± {paired['sd']:.1f} (CI {low:+.1f} to {high:+.1f}): {shown}"


def _seeds_markdown(summary: dict) -> list[str]:
    rows = summary["over_seeds"]
    if not rows:
        return []
    seeds = ", ".join(map(str, summary["grid"]["seeds"]))
    lines = [
        f"## Over seeds {seeds}",
        "",
        "Test errors as mean ± sample sd over the student seeds (initial weights and batch order; one teacher). "
        "**better** / **worse**: the setting's mean ± sd range and its student's no-KD baseline's do not "
        "overlap, on float errors (the baselines are not quantised); else within the seeds' spread. "
        "**Paired**: the setting's float errors minus the baseline's of the same seed (same initial weights "
        "and batches), mean ± sd with a 95 % Student-t interval; **fewer** / **more errors** when it excludes 0.",
        "",
        "| student | method | T | α | float test errors | int8 test errors | vs no KD (float) | paired difference |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        kd = r["method"] != "none"
        setting = f"{r['method']} | {r['temperature']:g} | {r['alpha']:g}" if kd else "none (labels only) | - | -"
        f, q = r["float_errors"], r["int8_errors"]
        int8 = f"{q['mean']:.1f} ± {q['sd']:.1f}" if q else "-"
        judged = f"**{r['verdict']}**" if r["verdict"] in ("better", "worse") else r["verdict"]
        lines.append(
            f"| {r['student']} | {setting} | {f['mean']:.1f} ± {f['sd']:.1f} | {int8} | {judged} | "
            f"{paired_text(r['paired'])} |"
        )
    return lines + [""]


def _markdown(summary: dict, points: list[dict]) -> str:
    total = summary["test_examples"]
    # Each KD point against the baseline of its own student and seed.
    baselines = {(p["student"], p["settings"]["seed"]): p["test_errors"] for p in points if p["method"] == "none"}
    seeds = summary["grid"]["seeds"]
    several = len(seeds) > 1
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
        + ". Every student of one architecture starts from the same weights and sees the same batches"
        + (f" for one seed (seeds: {', '.join(map(str, seeds))})" if several else "")
        + ", so the rows differ only in what is swept.",
        "",
        f"| student |{' seed |' if several else ''} method | T | α | val errors (of {summary['val_examples']}) | "
        f"test errors, float (of {total}) | vs no KD | int8 test errors | flash (B) | RAM (B) | fits |",
        "|---|" + ("---|" if several else "") + "---|---|---|---|---|---|---|---|---|---|",
    ]
    front = set(summary["pareto_front_flash"])
    for p in points:
        q, kd = p["int8"], p["method"] != "none"
        baseline = baselines.get((p["student"], p["settings"]["seed"]))
        gain = f"{p['test_errors'] - baseline:+d}" if kd and baseline is not None else ""
        setting = f"{p['method']} | {p['temperature']:g} | {p['alpha']:g}" if kd else "none (labels only) | - | -"
        if q:
            star = " ★" if p["key"] in front else ""
            fits = "yes" if q["fits"] else f"no: over {q['over_budget']}"
            int8 = f"{q['test_errors']}{star} | {q['flash_used']:,} | {q['ram_used']:,} | {fits}"
        else:
            int8 = "- | - | - | -"
        seed = f" {p['settings']['seed']} |" if several else ""
        lines.append(f"| {p['student']} |{seed} {setting} | {p['val_errors']} | {p['test_errors']} | {gain} | {int8} |")
    lines += [
        "",
        "★: on the Pareto front of int8 accuracy vs flash (no other point is both smaller and better).",
        "",
        *_seeds_markdown(summary),
        "## Plots",
        "",
    ]
    titles = {
        "errors_vs_temperature.png": "Test errors vs temperature (float students; dashed: no-KD baselines)",
        "int8_errors_vs_temperature.png": "Test errors vs temperature (int8 students in TFLite Micro)",
        "accuracy_vs_flash.png": "int8 accuracy vs flash and RAM, with the Pareto front and the board's budgets",
        "errors_over_seeds.png": "Test errors over seeds (mean ± sd), float and int8, against each no-KD baseline",
        "soft_targets.png": (
            f"The teacher's soft targets for test example {summary['soft_targets']['test_index']} "
            "at several temperatures"
        ),
    }
    for rel in summary["plots"]:
        title = titles.get(Path(rel).name, Path(rel).name)
        lines += [f"### {title}", "", f"[{rel}]({rel})", "", f"![{title}]({rel})", ""]
    return "\n".join(lines) + "\n"
