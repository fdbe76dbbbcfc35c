"""Plots of the report. Deterministic PNGs: no timestamps or version strings in the metadata."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from ..fileio import atomic_path  # noqa: E402

_PNG_METADATA = {"Software": None}


def _save(fig, path: Path) -> Path:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight", metadata=_PNG_METADATA)
    plt.close(fig)
    return path


def training_curves(histories: dict[str, dict[str, list[float]]], path: Path) -> Path:
    """Validation accuracy and training loss per epoch, one line per trained model."""
    fig, (ax_acc, ax_loss) = plt.subplots(1, 2, figsize=(11, 4))
    for name, h in histories.items():
        if h.get("val_accuracy"):
            epochs = np.arange(1, len(h["val_accuracy"]) + 1)
            ax_acc.plot(epochs, 100 * (1 - np.asarray(h["val_accuracy"])), marker="o", label=name)
        if h.get("loss"):
            ax_loss.plot(np.arange(1, len(h["loss"]) + 1), h["loss"], marker="o", label=name)
    ax_acc.set(title="Validation error", xlabel="epoch", ylabel="error (%)")
    ax_acc.set_yscale("log")
    ax_loss.set(title="Training loss (KD models: soft + hard)", xlabel="epoch", ylabel="loss")
    for ax in (ax_acc, ax_loss):
        ax.grid(alpha=0.3)
        ax.legend()
    return _save(fig, path)


def confusion_matrix(confusion: list[list[int]], class_names: list[str], title: str, path: Path) -> Path:
    m = np.asarray(confusion)
    size = max(5.0, 0.5 * len(class_names) + 2)
    fig, ax = plt.subplots(figsize=(size, size * 0.85))
    # Log colour scale so the few off-diagonal errors are visible next to the large diagonal.
    image = ax.imshow(m + 1, cmap="Blues", norm=matplotlib.colors.LogNorm())
    ax.set_xticks(range(len(class_names)), class_names, rotation=45 if len(class_names) > 10 else 0)
    ax.set_yticks(range(len(class_names)), class_names)
    ax.set(xlabel="predicted", ylabel="true", title=title)
    threshold = m.max() / 2
    for i in range(len(m)):
        for j in range(len(m)):
            if m[i, j]:
                ax.text(
                    j,
                    i,
                    str(m[i, j]),
                    ha="center",
                    va="center",
                    fontsize=8,
                    color="white" if m[i, j] > threshold else "black",
                )
    fig.colorbar(image, ax=ax, shrink=0.8, label="count + 1")
    return _save(fig, path)


def feature_images(
    features: np.ndarray,
    titles: list[str],
    wrong: list[bool],
    path: Path,
    xlabel: str = "frame (20 ms)",
    ylabel: str = "MFCC coefficient",
) -> Path:
    """Input feature maps (e.g. 49 x 10 MFCC) side by side; wrongly classified ones framed in red."""
    n = len(features)
    cols = min(n, 4)
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.6 * rows), squeeze=False)
    for ax in axes.flat[n:]:
        ax.axis("off")
    for ax, f, title, bad in zip(axes.flat, features, titles, wrong):
        # Time runs left to right, coefficient 0 at the bottom, as in a spectrogram.
        ax.imshow(np.asarray(f).reshape(f.shape[0], -1).T, origin="lower", aspect="auto", cmap="magma")
        ax.set_title(title, fontsize=9, color="#b00020" if bad else "black")
        ax.set(xlabel=xlabel, ylabel=ylabel)
        if bad:
            for side in ax.spines.values():
                side.set(color="#b00020", linewidth=2)
    fig.tight_layout()
    return _save(fig, path)


def error_bars(errors: dict[str, int], total: int, references: dict[str, int], path: Path) -> Path:
    """Test errors per model, with the paper's numbers as reference lines where they apply."""
    fig, ax = plt.subplots(figsize=(8, 4))
    names = list(errors)
    bars = ax.bar(names, [errors[n] for n in names], color="#4c72b0")
    ax.bar_label(bars)
    for label, value in references.items():
        ax.axhline(value, ls="--", lw=1, color="grey")
        ax.text(len(names) - 0.5, value, f" {label}: {value}", va="bottom", ha="right", fontsize=8, color="dimgray")
    ax.set(ylabel=f"test errors (of {total})", title="Test errors by model")
    ax.tick_params(axis="x", rotation=20)
    return _save(fig, path)


def errors_vs_temperature(
    lines: dict[str, list[tuple[float, int]]], baselines: dict[str, int], total: int, title: str, path: Path
) -> Path:
    """Test errors against the distillation temperature, one line per student (and setting);
    each student's no-KD baseline, where given, as a dashed line in the same colour."""
    fig, ax = plt.subplots(figsize=(8, 4.5))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, (label, points) in enumerate(lines.items()):
        colour = colours[i % len(colours)]
        ts, errors = zip(*sorted(points))
        ax.plot(ts, errors, marker="o", color=colour, label=label)
        student = label.split(" ")[0]
        if student in baselines:
            ax.axhline(baselines[student], ls="--", lw=1, color=colour)
            ax.text(
                max(ts),
                baselines[student],
                f" {student} no KD: {baselines[student]}",
                va="bottom",
                ha="right",
                fontsize=8,
                color=colour,
            )
    temperatures = sorted({t for points in lines.values() for t, _ in points})
    ax.set_xscale("log")
    ax.set_xticks(temperatures, [f"{t:g}" for t in temperatures])
    ax.minorticks_off()
    ax.set(xlabel="temperature T", ylabel=f"test errors (of {total})", title=title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, path)


def errors_over_seeds(settings: list[tuple], total: int, title: str, path: Path) -> Path:
    """One panel per student: each setting's test errors as mean ± sd over seeds, float (circle)
    and int8 (square); the no-KD baseline's mean ± sd as a shaded band. `settings`: tuples of
    (student, method, T, alpha, float Spread, int8 Spread or None, verdict)."""
    students = list(dict.fromkeys(s[0] for s in settings))
    rows_per = {st: [s for s in settings if s[0] == st and s[1] != "none"] for st in students}
    height = max(2.5, 0.45 * max(len(r) for r in rows_per.values()) + 1.5)
    fig, axes = plt.subplots(1, len(students), figsize=(6 * len(students), height), squeeze=False)
    colours = {"better": "tab:green", "worse": "tab:red"}
    for ax, student in zip(axes[0], students):
        base = next((s[4] for s in settings if s[0] == student and s[1] == "none"), None)
        if base is not None:
            ax.axvspan(base.mean - base.sd, base.mean + base.sd, color="0.85", label=f"no KD: {base.text()}")
            ax.axvline(base.mean, color="0.5", lw=1, ls="--")
        rows = rows_per[student]
        for y, (*_, floats, int8, verdict) in enumerate(rows):
            colour = colours.get(verdict, "tab:blue")
            ax.errorbar(floats.mean, y + 0.12, xerr=floats.sd, fmt="o", color=colour, capsize=3)
            if int8 is not None:
                ax.errorbar(int8.mean, y - 0.12, xerr=int8.sd, fmt="s", mfc="none", color=colour, capsize=3)
        ax.set_yticks(range(len(rows)), [f"{m} T={t:g} α={a:g}" for _, m, t, a, *_ in rows])
        ax.set_ylim(len(rows) - 0.5, -0.5)  # first setting on top
        ax.set(xlabel=f"test errors (of {total}): ● float, □ int8", title=student)
        ax.grid(alpha=0.3, axis="x")
        if base is not None:
            ax.legend(fontsize=8, loc="best")
    fig.suptitle(title + "\ngreen: better than no KD beyond the spread, red: worse", fontsize=10, y=1.02)
    fig.tight_layout()
    return _save(fig, path)


def kd_search(points: list[dict], chosen: tuple[float, float], baseline: int | None, total: int, path: Path) -> Path:
    """Validation errors of the T/alpha search, against T (log scale), one line per alpha; the
    chosen point ringed; the no-KD baseline's validation errors (after its full training, which
    the search's short runs are not) as a dashed line for scale."""
    fig, ax = plt.subplots(figsize=(7, 4))
    alphas = sorted({p["alpha"] for p in points})
    for alpha in alphas:
        row = sorted((p["temperature"], p["val_errors"]) for p in points if p["alpha"] == alpha)
        ts, errors = zip(*row)
        ax.plot(ts, errors, marker="o", label=f"alpha {alpha:g}")
    best = next(p for p in points if (p["temperature"], p["alpha"]) == tuple(chosen))
    ax.plot(
        [best["temperature"]],
        [best["val_errors"]],
        marker="o",
        markersize=14,
        markerfacecolor="none",
        markeredgecolor="black",
        linestyle="none",
        label=f"chosen: T {chosen[0]:g}, alpha {chosen[1]:g}",
    )
    if baseline is not None:
        ax.axhline(baseline, ls="--", lw=1, color="grey", label=f"no KD, fully trained: {baseline}")
    temperatures = sorted({p["temperature"] for p in points})
    ax.set_xscale("log")
    ax.set_xticks(temperatures, [f"{t:g}" for t in temperatures])
    ax.minorticks_off()
    ax.set(xlabel="temperature T", ylabel=f"validation errors (of {total})", title="T and alpha chosen on validation")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, path)


def accuracy_vs_size(
    points: list[dict],
    front: list[int],
    flash_budget: int,
    ram_budget: int,
    title: str,
    path: Path,
    chosen: int | None = None,
    rejected: list[dict] | None = None,
) -> Path:
    """Accuracy against flash (with the Pareto front) and against RAM, budgets as vertical lines.

    `points`: dicts with label, flash, ram, accuracy (0..1); `front`: indices into points on
    the flash front; `chosen`: index to highlight; `rejected`: dicts with label (saying why),
    flash, ram of models ruled out before training (no accuracy: ticks along the bottom).
    """
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5), sharey=True)
    accuracy = np.asarray([100 * p["accuracy"] for p in points], dtype=float)
    for ax, key, budget in ((axes[0], "flash", flash_budget), (axes[1], "ram", ram_budget)):
        sizes = np.asarray([p[key] for p in points], dtype=float)
        ax.scatter(sizes, accuracy, color="#4c72b0", zorder=3, label="students")
        # Students of one size sit on one vertical line, often at nearly equal accuracy: their
        # labels are stacked downwards from the best one so that they stay readable. RAM differs
        # little between students, so labels there would pile up: the flash panel names them.
        stacked: dict[float, int] = {}
        for i in sorted(range(len(points)), key=lambda i: -accuracy[i]) if key == "flash" else []:
            row = stacked[sizes[i]] = stacked.get(sizes[i], -1) + 1
            top = max(accuracy[j] for j in range(len(points)) if sizes[j] == sizes[i])
            ax.annotate(
                points[i]["label"],
                (sizes[i], top),
                textcoords="offset points",
                xytext=(6, 2 - 9 * row),
                fontsize=7,
                va="top",
            )
        if key == "flash" and front:
            ax.step(
                sizes[front],
                accuracy[front],
                where="post",
                color="#dd8452",
                lw=1.5,
                zorder=2,
                marker="D",
                ms=5,
                label="Pareto front",
            )
        if chosen is not None:
            ax.scatter(
                [sizes[chosen]],
                [accuracy[chosen]],
                s=160,
                facecolors="none",
                edgecolors="#c44e52",
                lw=2,
                zorder=4,
                label=f"chosen: {points[chosen]['label']}",
            )
        for r in rejected or []:
            ax.axvline(r[key], ymax=0.06, color="grey", lw=2)
            if key != "flash":
                continue
            ax.annotate(
                r["label"],
                (r[key], 0),
                xycoords=("data", "axes fraction"),
                xytext=(2, 12),
                textcoords="offset points",
                fontsize=7,
                color="dimgray",
                rotation=90,
            )
        ax.axvline(budget, ls="--", color="#c44e52", lw=1.2, label=f"budget {budget:,} B")
        ax.set_xscale("log")
        # Decimal kB/MB on the log scale's powers of ten; minor labels (2x10^4 ...) would crowd the axis.
        ax.xaxis.set_major_formatter(
            matplotlib.ticker.FuncFormatter(lambda v, _: f"{v / 1e6:g} MB" if v >= 1e6 else f"{v / 1e3:g} kB")
        )
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.set(xlabel=f"{'flash' if key == 'flash' else 'RAM'} used (log scale)")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8, loc="best")
    axes[0].set_ylabel("accuracy (%)")
    fig.suptitle(title)
    return _save(fig, path)


def soft_targets(
    probabilities: dict[float, np.ndarray],
    class_names: list[str],
    true_class: int,
    image: np.ndarray | None,
    title: str,
    path: Path,
) -> Path:
    """The teacher's softmax(logits / T) for one example at several temperatures, log scale:
    the higher T, the more of the 'dark knowledge' in the small probabilities shows."""
    has_image = image is not None and image.ndim >= 2
    fig, axes = plt.subplots(
        1,
        2 if has_image else 1,
        figsize=(11 if has_image else 9, 4),
        gridspec_kw={"width_ratios": [1, 4]} if has_image else None,
    )
    ax = axes[-1] if has_image else axes
    if has_image:
        axes[0].imshow(np.squeeze(image), cmap="gray_r")
        axes[0].set(title=f"true class: {class_names[true_class]}", xticks=[], yticks=[])
    temperatures = sorted(probabilities)
    width = 0.8 / len(temperatures)
    x = np.arange(len(class_names))
    for i, t in enumerate(temperatures):
        ax.bar(x + (i - (len(temperatures) - 1) / 2) * width, probabilities[t], width, label=f"T = {t:g}")
    ax.set_yscale("log")
    ax.set_ylim(1e-6, 1.5)
    ax.set_xticks(x, class_names, rotation=45 if len(class_names) > 10 else 0)
    ax.set(xlabel="class", ylabel="teacher probability (log scale)", title=title)
    ax.grid(alpha=0.3, axis="y")
    ax.legend(fontsize=8)
    return _save(fig, path)


def layer_profile(profile: dict, title: str, path: Path) -> Path:
    """Per-layer counts measured on the device as horizontal bars (first layer on top), each
    labelled with its share and its count per MAC: the layer to shrink is the longest bar."""
    rows = [r for r in profile["layers"] if r["runs_code"]]
    unit, per = profile["unit"], profile["per_mac_label"]
    labels = [f"{r['layer']}: {r['op'].lower()}" for r in rows]
    counts = np.asarray([r["count"] for r in rows], dtype=float)
    fig, ax = plt.subplots(figsize=(9, 0.9 + 0.38 * len(rows)))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    kinds = list(dict.fromkeys(r["op"] for r in rows))
    bars = ax.barh(np.arange(len(rows)), counts, color=[colours[kinds.index(r["op"]) % len(colours)] for r in rows])
    notes = [f"{r['share']:.1f} %" + (f", {r['per_mac']:.2f} {per}" if r["per_mac"] is not None else "") for r in rows]
    ax.bar_label(bars, notes, padding=3, fontsize=8)
    ax.set_yticks(np.arange(len(rows)), labels, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, max(counts.max(), 1.0) * 1.35)
    what = "instructions (QEMU, not cycles)" if unit == "instructions" else unit
    ax.set(xlabel=f"{what} per inference", title=f"Per-layer profile on the device: {title}")
    ax.grid(alpha=0.3, axis="x")
    return _save(fig, path)


def board_selection(
    points: list[tuple[str, float, float | None, bool]], max_latency_ms: float | None, title: str, path: Path
) -> Path:
    """Latency against unit price, one point per board (name, price, latency ms, chosen); the
    boards not chosen (too big or too slow) are hollow."""
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, price, latency, chosen in points:
        if latency is None:
            continue
        colour = "tab:blue" if chosen else "tab:gray"
        ax.scatter(price, latency, s=50, facecolors=colour if chosen else "none", edgecolors=colour)
        ax.annotate(name, (price, latency), fontsize=8, xytext=(4, 3), textcoords="offset points")
    if max_latency_ms is not None:
        ax.axhline(max_latency_ms, color="tab:red", linestyle="--", linewidth=1, label="latency limit")
        ax.legend(loc="upper right")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("unit price (USD, log scale)")
    ax.set_ylabel("ms per inference, lower bound (log scale)")
    ax.set_title(f"{title}: filled = fits{' and fast enough' if max_latency_ms is not None else ''}")
    return _save(fig, path)
