"""The outputs of `tinykd reproduce hinton-mnist`: results.json, hinton-mnist.md and errors-vs-T.png."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..fileio import write_json, write_text
from ..report.hinton2015 import PAPER_BIAS, PAPER_ERRORS, PAPER_THREE_ERRORS
from .hinton_mnist import Reproduction

# What the paper says of the smaller students (it gives no error counts for them).
PAPER_SMALL = {300: "T ≥ 8: all about equally good", 30: "T 2.5–4 clearly best"}


def _minutes(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    return f"{seconds / 60:.1f} min" if seconds >= 60 else f"{seconds:.0f} s"


def _wall(r: dict) -> str:
    """The row's wall time; a row resumed after an interruption also shows its training time in all."""
    text = _minutes(r["wall_seconds"])
    if r["train_seconds"] > r["wall_seconds"]:
        text += f" (training {_minutes(r['train_seconds'])} over interrupted runs)"
    return text


def _settings_text(r: dict) -> str:
    s = r["settings"]
    parts = [s["arch"], f"{s['epochs']} ep", f"jitter ±{s['jitter']}" if s["jitter"] else "no jitter"]
    if "temperature" in s:
        parts.append(f"T={s['temperature']:g} α={s['alpha']:g}")
    parts.append(f"{r['transfer_examples']} train ex.")
    return ", ".join(parts)


def _paper(name: str) -> str:
    if name in PAPER_THREE_ERRORS:
        return f"{PAPER_ERRORS[name]} ({PAPER_THREE_ERRORS[name]} on 3s)"
    if name in PAPER_ERRORS:
        return str(PAPER_ERRORS[name])
    if name.startswith("kd-"):
        return PAPER_SMALL.get(int(name.split("-")[1]), "")
    return "—"


def table_rows(results: list[dict]) -> list[dict]:
    """One line per table row; the omitted-class run adds its two bias-corrected lines."""
    lines = []
    for r in results:
        ours = str(r["errors"])
        correction = r.get("bias_correction")
        if correction:
            ours += f" ({r['errors_per_class'][correction['class']]} on 3s)"
        lines.append(
            {
                "experiment": r["experiment"],
                "ours": ours,
                "paper": _paper(r["name"]),
                "settings": _settings_text(r),
                "wall": _wall(r),
            }
        )
        if correction:
            for key, label in (
                ("paper", f"bias of 3 raised by the paper's {PAPER_BIAS:g}"),
                ("validation", "bias of 3 raised by {:g}, chosen on validation"),
            ):
                c = correction[key]
                lines.append(
                    {
                        "experiment": f"  ↳ {label.format(c['delta'])}",
                        "ours": f"{c['errors']} ({c['class_errors']} on 3s)",
                        "paper": _paper("omit3-bias-paper") if key == "paper" else "— (paper chose 3.5 on test)",
                        "settings": f"validation errors {c['val_errors']} of {r['val_total']}",
                        "wall": "—",
                    }
                )
    return lines


def markdown(settings: dict, results: list[dict]) -> str:
    total = results[0]["total"] if results else 0
    lines = [
        "# Hinton, Vinyals & Dean (2015) §3, MNIST: reproduced",
        "",
        f"Test errors of {total} test images (paper: of 10 000). Seed {settings['seed']}"
        + (", **--quick** (tiny data, 1–2 epochs: a smoke run, not a reproduction)" if settings["quick"] else "")
        + f". Adam, cosine decay from lr {settings['learning_rate']:g}, batch {settings['batch_size']}; "
        f"{settings['val_size']} training images held out for validation. Students learn from the "
        "unjittered training images (the paper's transfer set has no translations).",
        "",
        "| experiment | ours | paper | settings | wall time |",
        "|---|---:|---|---|---:|",
    ]
    for line in table_rows(results):
        lines.append(
            f"| {line['experiment']} | {line['ours']} | {line['paper']} | {line['settings']} | {line['wall']} |"
        )
    lines += [
        "",
        f"Total wall time of the rows: {_minutes(sum(r['wall_seconds'] for r in results))}.",
        "",
        "![errors vs T](errors-vs-T.png)",
        "",
    ]
    return "\n".join(lines)


def errors_vs_temperature(results: list[dict], path: Path) -> Path:
    """Test errors against T, one panel per student width, with its labels-only baseline."""
    from ..report.plots import _save, plt

    by_width: dict[int, dict] = {}
    for r in results:
        s = r["settings"]
        if s.get("omit_class") is not None or not s["arch"].startswith("mlp-"):
            continue
        width = int(s["arch"].split("-")[1])
        entry = by_width.setdefault(width, {"T": [], "errors": [], "baseline": None})
        if "temperature" in s:
            entry["T"].append(s["temperature"])
            entry["errors"].append(r["errors"])
        else:
            entry["baseline"] = r["errors"]
    teacher = next((r["errors"] for r in results if r["name"] == "teacher"), None)
    widths = sorted(by_width, reverse=True)
    fig, axes = plt.subplots(1, len(widths), figsize=(4.2 * len(widths), 3.8), squeeze=False)
    for ax, width in zip(axes[0], widths):
        e = by_width[width]
        order = np.argsort(e["T"])
        ax.plot(np.asarray(e["T"])[order], np.asarray(e["errors"])[order], marker="o", label="distilled")
        if e["baseline"] is not None:
            ax.axhline(e["baseline"], ls="--", color="grey", label="labels only")
        if teacher is not None:
            ax.axhline(teacher, ls=":", color="black", label="teacher")
        ax.set_xscale("log")
        ticks = sorted(set(e["T"]))
        ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
        ax.minorticks_off()
        ax.set(title=f"{width}-{width} student", xlabel="temperature T", ylabel="test errors")
        ax.grid(alpha=0.3)
        ax.legend()
    return _save(fig, path)


def write_outputs(out: Path, settings: dict, results: list[dict]) -> Reproduction:
    rows = [{k: v for k, v in r.items() if k != "skipped"} for r in results]
    results_path = write_json(out / "results.json", {"settings": settings, "rows": rows})
    table = write_text(out / "hinton-mnist.md", markdown(settings, rows))
    plot = errors_vs_temperature(rows, out / "errors-vs-T.png")
    return Reproduction(out, rows, table, results_path, plot)
