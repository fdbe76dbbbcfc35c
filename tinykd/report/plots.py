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
                ax.text(j, i, str(m[i, j]), ha="center", va="center", fontsize=8,
                        color="white" if m[i, j] > threshold else "black")
    fig.colorbar(image, ax=ax, shrink=0.8, label="count + 1")
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
