"""The outputs of `tinykd reproduce hinton-mnist`: results.json, hinton-mnist.md, errors-vs-T.png and
training-curves.png."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..fileio import write_json, write_text
from ..report.hinton2015 import PAPER_BIAS, PAPER_ERRORS, PAPER_THREE_ERRORS, TOLERANCE, within_tolerance
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


def total_seconds(results: list[dict]) -> float:
    """The table's time: each row's wall time, or its training time over interrupted runs when longer."""
    return sum(max(r["wall_seconds"], r["train_seconds"]) for r in results)


def _settings_text(r: dict) -> str:
    s = r["settings"]
    parts = [
        s["arch"],
        f"{s['epochs']} ep",
        f"{s.get('optimizer', 'adam')} lr {s['learning_rate']:g}",
        f"jitter ±{s['jitter']}" if s["jitter"] else "no jitter",
    ]
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
        return PAPER_SMALL.get(int(name.split("-")[1]), "— (not in the paper)")
    return "—"


def _verdict(name: str, errors: int, total: int) -> str:
    return within_tolerance(name, errors, total)[1] if name in PAPER_ERRORS else "—"


def verdicts(results: list[dict]) -> dict[str, bool]:
    """Reproduced or not, for every row (and the paper-bias line) the paper gives a number for."""
    out = {
        r["name"]: within_tolerance(r["name"], r["errors"], r.get("total", 10_000))[0]
        for r in results
        if r["name"] in PAPER_ERRORS
    }
    for r in results:
        if r.get("bias_correction"):
            errors = r["bias_correction"]["paper"]["errors"]
            out["omit3-bias-paper"] = within_tolerance("omit3-bias-paper", errors, r["total"])[0]
    return out


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
                "within": _verdict(r["name"], r["errors"], r["total"]),
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
                        "within": _verdict("omit3-bias-paper", c["errors"], r["total"]) if key == "paper" else "—",
                        "settings": f"validation errors {c['val_errors']} of {r['val_total']}",
                        "wall": "—",
                    }
                )
    return lines


def title(results: list[dict]) -> str:
    """'reproduced' only when every row with a paper number is within the tolerance."""
    judged = verdicts(results)
    good = sum(judged.values())
    if judged and good == len(judged):
        state = "reproduced"
    elif good:
        state = f"{good} of {len(judged)} rows with a paper number reproduced"
    else:
        state = "not reproduced"
    return f"# Hinton, Vinyals & Dean (2015) §3, MNIST: {state} (within ±{TOLERANCE:.0%} of the paper's errors)"


def markdown(settings: dict, results: list[dict]) -> str:
    total = results[0]["total"] if results else 0
    lines = [
        title(results),
        "",
        f"Test errors of {total} test images (paper: of 10 000). Seed {settings['seed']}"
        + (", **--quick** (tiny data, 1–2 epochs: a smoke run, not a reproduction)" if settings["quick"] else "")
        + f". Batch {settings['batch_size']}, learning rates decayed along a cosine to 0; the teacher learns "
        f"from all training images, the students from all but {settings['val_size']} held out for validation, "
        "unjittered (the paper's transfer set has no translations). Reproduced: within "
        f"{TOLERANCE:.0%} of the paper's errors (fewer also counts, except for the labels-only baseline).",
        "",
        "| experiment | ours | paper | reproduced | settings | wall time |",
        "|---|---:|---|---|---|---:|",
    ]
    for line in table_rows(results):
        lines.append(
            f"| {line['experiment']} | {line['ours']} | {line['paper']} | {line['within']} | {line['settings']} "
            f"| {line['wall']} |"
        )
    lines += [
        "",
        f"Total time of the rows: {_minutes(total_seconds(results))} (a row resumed after an interruption "
        "counts its training over every run).",
        "",
        "![errors vs T](errors-vs-T.png)",
        "",
        "Training curves (the teacher's on the test set, watched only; the students' on validation), "
        "with the paper's errors as dotted lines:",
        "",
        "![training curves](training-curves.png)",
        "",
    ]
    return "\n".join(lines)


def training_curves(results: list[dict], path: Path) -> Path:
    """Error rate per epoch of the teacher and the 800-800 nets (the teacher's on test, the
    students' on validation, which is easier than test), each ending in a star at its final test
    error, with the paper's test errors as dotted lines: how far each row still was from the
    paper when its schedule ended, and whether it had stopped improving."""
    from ..report.plots import _save, plt

    fig, ax = plt.subplots(figsize=(9, 4.8))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    names = ("teacher", "baseline-800", "kd-800", "kd-800-jitter")
    shown = [r for r in results if r["name"] in names and r.get("curve")]
    right = max((len(r["curve"]["errors"]) for r in shown), default=1)
    for colour, r in zip(colours, shown):
        curve = r["curve"]
        rate = 100 * np.asarray(curve["errors"]) / curve["total"]
        epochs = np.arange(1, len(rate) + 1)
        ax.plot(epochs, rate, color=colour, lw=1.2, label=f"{r['name']} ({curve['on']} per epoch)")
        test = 100 * r["errors"] / r["total"]
        ax.plot([len(rate)], [test], marker="*", ms=12, color=colour, mec="black", mew=0.5)
        if r["name"] in PAPER_ERRORS:
            paper = 100 * PAPER_ERRORS[r["name"]] / 10_000
            ax.axhline(paper, color=colour, ls=":", lw=1)
            ax.text(
                right, paper, f"paper {r['name']}: {paper:.2f} %", va="bottom", ha="right", fontsize=8, color=colour
            )
    ax.set_yscale("log")
    ax.set(
        xlabel="epoch",
        ylabel="error rate (%)",
        title="Hinton MNIST: error per epoch; ★ final test error; dotted: the paper's test errors",
    )
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8, loc="upper right")
    return _save(fig, path)


def errors_vs_temperature(results: list[dict], path: Path) -> Path:
    """Test errors against T, one panel per student width, with its labels-only baseline."""
    from ..report.plots import _save, plt

    by_width: dict[int, dict] = {}
    for r in results:
        s = r["settings"]
        if s.get("omit_class") is not None or s["jitter"] or not s["arch"].startswith("mlp-"):
            continue  # the teacher and the variants of the 800-800 row are not on the T axis
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
    training_curves(rows, out / "training-curves.png")
    return Reproduction(out, rows, table, results_path, plot)
