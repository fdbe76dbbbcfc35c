"""`tinykd fit`'s report: fit.json, fit.md and plots/fit_front.png, and the build command of the
chosen student."""

from __future__ import annotations

from pathlib import Path

from ..config import BuildConfig, DistillConfig
from ..fileio import write_json, write_text
from .fit_sizing import Candidate, instructions_per_mac
from .pareto import pareto_front
from .points import Experiment


def next_command(arch: str, board: str, config: BuildConfig) -> str:
    """The build of the chosen student, with the distillation settings of the search where they
    differ from the defaults."""
    kd, default = config.distill, DistillConfig()
    extra = "".join(
        f" {flag} {value:g}" if isinstance(value, float) else f" {flag} {value}"
        for flag, value, base in (
            ("--method", kd.method, default.method),
            ("-T", kd.temperature, default.temperature),
            ("--alpha", kd.alpha, default.alpha),
        )
        if value != base
    )
    task = f" --task {config.task}" if config.task != "mnist" else ""
    return f"tinykd build{task} --student {arch} --board {board}{extra}"


def write_outputs(
    experiment: Experiment,
    board,
    candidates: list[Candidate],
    rungs: list[dict],
    chosen: dict,
    max_latency_ms: float | None,
    boards: list,
    budget_usd: float | None = None,
) -> list[Path]:
    """Write fit.json, fit.md and plots/fit_front.png; returns the files."""
    from ..report import plots

    out, c = experiment.out, experiment.config
    trained = [x for x in candidates if x.val_errors]
    val_total = len(experiment.dataset.y_val)
    # Each candidate at the longest training it got: those dropped early are lower bounds.
    points = [
        {
            "label": f"{x.arch} ({max(x.val_errors)} ep)",
            "flash": x.size.flash_used,
            "ram": x.size.ram_used,
            "accuracy": 1 - x.val_errors[max(x.val_errors)] / val_total,
        }
        for x in trained
    ]
    front = pareto_front([p["flash"] for p in points], [p["accuracy"] for p in points])
    chosen_index = next(i for i, x in enumerate(trained) if x.arch == chosen["arch"])
    rejected = [
        {"label": f"{x.arch}: {x.rejected}", "flash": x.size.flash_used, "ram": x.size.ram_used}
        for x in candidates
        if x.rejected
    ]
    budget = next(x.size for x in candidates if x.arch == chosen["arch"])
    plot = plots.accuracy_vs_size(
        points,
        front,
        budget.flash_budget,
        budget.ram_budget,
        f"Students for {board.name}: validation accuracy vs memory (int8 sizes)",
        out / "plots" / "fit_front.png",
        chosen=chosen_index,
        rejected=rejected,
    )
    summary = {
        "tinykd_fit": 1,
        "task": c.task,
        "board": board.name,
        "seed": c.seed,
        "flash_budget": budget.flash_budget,
        "ram_budget": budget.ram_budget,
        "max_latency_ms": max_latency_ms,
        "budget_usd": budget_usd,
        "boards": [{"board": b.name, "price_usd": b.price_usd, "core": b.core} for b in boards],
        "latency_model": "MACs x instructions/MAC of the board's core family, counted on QEMU "
        f"({instructions_per_mac(board)} on {board.core}; benchmarks/device.md) / the board's clock "
        f"({board.clock_hz:,} Hz for {board.name}): a lower bound",
        "teacher": {
            "path": str(experiment.teacher_path),
            "fingerprint": experiment.teacher_id,
            "loaded_from": c.teacher.model or None,
        },
        "distill": vars(c.distill).copy(),
        "student_epochs": c.student.epochs,
        "candidates": [x.to_dict() for x in candidates],
        "scheduler": {
            "name": "ASHA (Ray Tune)",
            "reduction_factor": 2,
            "grace_period_epochs": rungs[0]["epochs"],
            "max_epochs": rungs[-1]["epochs"],
        },
        "rungs": rungs,
        "pareto_front_flash": [trained[i].arch for i in front],
        "chosen": {k: v for k, v in chosen.items() if k != "settings"},
        "next_command": next_command(chosen["arch"], board.name, c),
        "plots": [str(plot.relative_to(out))],
    }
    files = [plot, write_json(out / "fit.json", summary), write_text(out / "fit.md", _markdown(summary, val_total))]
    return files


def _markdown(s: dict, val_total: int) -> str:
    ch, fw = s["chosen"], s["chosen"]["firmware"]
    front = set(s["pareto_front_flash"])
    lines = [
        f"# tinykd fit: {s['task']} on {s['board']}",
        "",
        *(
            [
                f"Price budget ${s['budget_usd']:g}: boards "
                + ", ".join(f"{b['board']} (${b['price_usd']:.2f}, {b['core']})" for b in s["boards"])
                + "; each candidate was sized on the cheapest of them it fits, and the winner runs on "
                + f"**{s['board']}**.",
                "",
            ]
            if s["budget_usd"] is not None
            else []
        ),
        f"Budget on {s['board']}: flash {s['flash_budget']:,} B, RAM {s['ram_budget']:,} B"
        + (f", latency {s['max_latency_ms']:g} ms" if s["max_latency_ms"] else "")
        + ".",
        "",
        f"**Chosen: {ch['arch']}**: {ch['test_errors_int8']} int8 test errors of {ch['test_total']} in TFLite Micro "
        f"({ch['test_errors_float']} as float), flash {fw['flash_used']:,} B, RAM {fw['ram_used']:,} B "
        f"(arena {fw['arena_bytes']:,} B), ~{ch['latency_ms_estimate']:.2f} ms estimated"
        + ("" if fw["fits"] else f"; **the final firmware does not fit: over {fw['over_budget']}**")
        + ".",
        "",
        "Next:",
        "",
        "```bash",
        s["next_command"],
        "```",
        "",
        "## Candidates",
        "",
        f"Sized untrained (int8, firmware compiled for the board); latency = {s['latency_model']}. Validation "
        f"errors (of {val_total}) at each of ASHA's rungs; ★ = on the Pareto front of accuracy vs flash.",
        "",
        "| candidate | board | params | MACs | flash (B) | RAM (B) | latency (ms, est.) | "
        + " | ".join(f"val errors @ {r['epochs']} ep" for r in s["rungs"])
        + " | result |",
        "|---|---|---|---|---|---|---|" + "---|" * len(s["rungs"]) + "---|",
    ]
    for x in s["candidates"]:
        by_epochs = x["val_errors_by_epochs"]
        cells = [str(by_epochs.get(str(r["epochs"]), "")) if x["arch"] in r["val_errors"] else "" for r in s["rungs"]]
        if x["rejected"]:
            result = f"rejected: {x['rejected']}"
        elif x["arch"] == ch["arch"]:
            result = "**chosen**"
        else:
            trained = max(int(k) for k in by_epochs)
            result = f"stopped by ASHA after {trained} epoch{'s' if trained > 1 else ''}"
        star = " ★" if x["arch"] in front else ""
        lines.append(
            f"| {x['arch']}{star} | {x['board']} | {x['params']:,} | {x['macs']:,} | {x['flash_used']:,} | "
            f"{x['ram_used']:,} | {x['latency_ms_estimate']:.2f} | " + " | ".join(cells) + f" | {result} |"
        )
    sched = s["scheduler"]
    lines += [
        "",
        "## ASHA",
        "",
        f"{sched['name']}: one trial per candidate, largest flash first; at each rung a candidate goes on only "
        f"if it is in the better 1/{sched['reduction_factor']} of those that reached the rung before it "
        f"(first rung {sched['grace_period_epochs']} epoch(s), last {sched['max_epochs']}).",
        "",
        "| rung (epochs) | reached it (val errors, best first) | stopped there |",
        "|---|---|---|",
    ]
    for r in s["rungs"]:
        reached = ", ".join(f"{arch} {r['val_errors'][arch]}" for arch in r["ranking"])
        lines.append(f"| {r['epochs']} | {reached} | {', '.join(r['stopped']) or '-'} |")
    title = "Validation accuracy vs flash and RAM: Pareto front, budgets dashed, chosen circled"
    plot = s["plots"][0]
    lines += ["", "## Plot", "", f"[{plot}]({plot})", "", f"![{title}]({plot})", ""]
    return "\n".join(lines) + "\n"
