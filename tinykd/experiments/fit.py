"""`tinykd fit --board B`: search MLP student widths and depths for the most accurate int8
student that fits the board's flash and RAM (and, optionally, a latency limit).

1. Size every candidate without training: build it, convert the untrained model to int8,
   generate and compile the board's firmware, read flash and RAM (cached in out/sizes/).
   Candidates over a budget, or over --max-latency, are dropped with their sizes.
2. Successive halving over the rest: train all (distilling from the teacher) for a few
   epochs, keep the better half by validation errors, train the survivors on to twice the
   epochs (continuing from their checkpoints), and so on up to the configured student epochs.
3. The winner gets QAT, int8 conversion, its test errors in TFLite Micro and a real firmware
   build for the board; fit.json, fit.md and plots/fit_front.png report the search.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from tqdm.auto import tqdm

from ..config import BuildConfig, DistillConfig
from ..errors import TinykdError
from ..fileio import write_json, write_text
from .pareto import pareto_front
from .points import (
    Experiment,
    FirmwareSize,
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

# Instructions per multiply-accumulate of our runtime's FULLY_CONNECTED kernel (DSP build),
# measured on QEMU mps2-an386 for the 784-300-300-10 MLP (benchmarks/runtime.md). QEMU counts
# instructions; a real Cortex-M needs at least as many cycles (more with flash wait states),
# so latencies estimated from it are lower bounds.
INSTRUCTIONS_PER_MAC = 1.97
MAX_DEPTH = 4


@dataclass
class Candidate:
    arch: str
    size: FirmwareSize
    latency_ms: float  # estimated, see INSTRUCTIONS_PER_MAC
    rejected: str = ""  # why it was dropped before training ("" = kept)
    val_errors: dict[int, int] = field(default_factory=dict)  # epochs trained -> validation errors

    def to_dict(self) -> dict:
        return {
            "arch": self.arch,
            **self.size.to_dict(),
            "latency_ms_estimate": round(self.latency_ms, 3),
            "rejected": self.rejected or None,
            "val_errors_by_epochs": {str(k): v for k, v in self.val_errors.items()},
        }


@dataclass
class FitResult:
    out: Path
    chosen: dict
    candidates: list[Candidate]
    files: list[Path]
    next_command: str  # what the user runs next: a full build of the chosen student


def parse_sizes(widths: str, depths: str) -> tuple[list[int], list[int]]:
    """--widths and --depths as lists of positive integers; TinykdError naming the bad value."""

    def integers(option: str, text: str, example: str, upper: int | None) -> list[int]:
        values = []
        for item in (s.strip() for s in str(text).split(",")):
            if not item.isdigit() or int(item) < 1 or (upper is not None and int(item) > upper):
                limit = f" between 1 and {upper}" if upper else " >= 1"
                raise TinykdError(
                    f"{option}: {item!r} is not a whole number{limit}. Give a comma-separated "
                    f"list, e.g. {option} {example}."
                )
            values.append(int(item))
        return sorted(set(values))

    return (integers("--widths", widths, "32,64,128,256", None), integers("--depths", depths, "1,2,3", MAX_DEPTH))


def candidate_archs(widths: list[int], depths: list[int]) -> list[str]:
    """mlp-W, mlp-W-W, ... for every width and depth: the registry's plain ReLU MLPs."""
    return [f"mlp-{'-'.join([str(w)] * d)}" for d in depths for w in widths]


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
    return f"tinykd build --student {arch} --board {board}{extra}"


def estimate_latency_ms(macs: int, clock_hz: int) -> float:
    return 1000.0 * macs * INSTRUCTIONS_PER_MAC / clock_hz


def run_fit(
    config: BuildConfig,
    out: str | Path,
    widths: list[int],
    depths: list[int],
    *,
    max_latency_ms: float | None = None,
    min_epochs: int = 1,
    log: Callable[[str], None] = print,
) -> FitResult:
    """Size, prune, successively halve, and finish the winner; see the module docstring."""
    from ..boards import load_board

    if config.task != "mnist":
        raise TinykdError(
            f"tinykd fit searches MLP widths and depths, which suit MNIST only; task {config.task!r} has no "
            "searchable family yet. For keyword spotting, compare the DS-CNN students directly: "
            "`tinykd build --task kws --student ds-cnn-s` (or ds-cnn-xs for <= 64 KB RAM)."
        )
    if config.distill.method not in single_teacher_methods():
        raise TinykdError(
            f"tinykd fit distils each candidate from one teacher; method {config.distill.method!r} needs extra "
            f"teachers, peers or generations. Use --method {', '.join(single_teacher_methods())} for the search, then "
            f"`tinykd build --method {config.distill.method} --student <chosen>` for the chosen size."
        )
    if max_latency_ms is not None and not max_latency_ms > 0:
        raise TinykdError(
            f"--max-latency must be > 0 milliseconds (got {max_latency_ms:g}). Leave it out for no latency limit."
        )
    if min_epochs < 1:
        raise TinykdError(
            f"--min-epochs must be >= 1 (got {min_epochs}): the first round trains each candidate for that many epochs."
        )
    board = load_board(config.board)
    experiment = open_experiment(config, out, log=log)
    candidates = [
        _sized(experiment, arch, board)
        for arch in tqdm(candidate_archs(widths, depths), desc="sizing", unit="candidate", dynamic_ncols=True)
    ]
    for c in candidates:
        if not c.size.fits:
            c.rejected = f"over {c.size.over_budget()}"
        elif max_latency_ms is not None and c.latency_ms > max_latency_ms:
            c.rejected = f"estimated {c.latency_ms:.2f} ms > {max_latency_ms:g} ms"
        log(
            f"  {c.arch}: flash {c.size.flash_used:,} / {c.size.flash_budget:,} B, RAM {c.size.ram_used:,} / "
            f"{c.size.ram_budget:,} B, ~{c.latency_ms:.2f} ms" + (f": rejected, {c.rejected}" if c.rejected else "")
        )
    kept = [c for c in candidates if not c.rejected]
    if not kept:
        smallest = min(candidates, key=lambda c: c.size.flash_used)
        raise TinykdError(
            f"No candidate fits {board.name} (flash {smallest.size.flash_budget:,} B, RAM "
            f"{smallest.size.ram_budget:,} B"
            + (f", {max_latency_ms:g} ms" if max_latency_ms else "")
            + f"): the smallest, {smallest.arch}, needs flash {smallest.size.flash_used:,} B and RAM "
            f"{smallest.size.ram_used:,} B, ~{smallest.latency_ms:.2f} ms. Try smaller --widths or --depths"
            + (", or a larger --max-latency." if max_latency_ms else ", or a board with more memory.")
        )
    rounds = _successive_halving(experiment, kept, min_epochs)
    winner = rounds[-1]["ranking"][0]
    chosen = _finish(experiment, next(c for c in kept if c.arch == winner), board, min_epochs)
    files = _write_outputs(experiment, board, candidates, rounds, chosen, max_latency_ms)
    return FitResult(experiment.out, chosen, candidates, files, next_command(chosen["arch"], board.name, config))


def _sized(experiment: Experiment, arch: str, board) -> Candidate:
    """Flash, RAM and MACs of an untrained `arch` on the board, cached in out/sizes/."""
    from ..distill.training import seed_everything
    from ..export import convert_int8
    from ..firmware.digest import firmware_sources_digest
    from ..models import build_model

    c, d = experiment.config, experiment.dataset
    settings = {
        "arch": arch,
        "board": board.name,
        "task": c.task,
        "firmware": firmware_sources_digest(),
        "calibration_samples": c.qat.calibration_samples,
    }
    path = experiment.out / "sizes" / f"{arch}.json"
    saved = read_finished(path, settings)
    if saved is None:
        work = experiment.out / "checkpoints" / f"size-{arch}"
        seed_everything(c.seed * 100, fresh_session=True)
        model = build_model(arch, d.input_shape, d.num_classes)
        # Sizes follow the architecture; trained weights move them by up to ~1-2 % (the generator's
        # choices depend on value ranges), so the winner is measured again once trained.
        tflite = convert_int8(
            model,
            d.x_train,
            work / "untrained.tflite",
            samples=c.qat.calibration_samples,
            input_quantization=experiment.task.input_quantization,
        )
        size = measure_firmware(tflite, board, work / "firmware")
        saved = {"settings": settings, "size": size.to_dict()}
        write_json(path, saved)
        remove_tree(work)
    fields = {k: v for k, v in saved["size"].items() if k not in ("fits", "over_budget")}
    size = FirmwareSize(**fields)
    return Candidate(arch, size, estimate_latency_ms(size.macs, board.clock_hz))


def _spec(experiment: Experiment, arch: str) -> StudentSpec:
    kd = experiment.config.distill
    return StudentSpec(arch, kd.method, kd.temperature, kd.alpha)


def _successive_halving(experiment: Experiment, kept: list[Candidate], min_epochs: int) -> list[dict]:
    """Rounds of (train survivors to E epochs, rank by validation errors, keep the better half),
    E doubling each round up to the configured student epochs; a last survivor trains to the
    full epochs. Ties go to the smaller flash. Returns the rounds; the last one's ranking
    starts with the winner."""
    full = experiment.config.student.epochs
    survivors = sorted(kept, key=lambda c: c.size.flash_used)
    # A lone candidate has nothing to be compared with: it trains to the full epochs at once.
    epochs = max(1, full) if len(survivors) == 1 else min(max(1, min_epochs), max(1, full))
    rounds = []
    while True:
        for c in tqdm(
            survivors, desc=f"round {len(rounds) + 1} (to epoch {epochs})", unit="student", dynamic_ncols=True
        ):
            c.val_errors[epochs] = _val_errors_at(experiment, c.arch, epochs, min_epochs)
        ranking = sorted(survivors, key=lambda c: (c.val_errors[epochs], c.size.flash_used))
        rounds.append(
            {
                "epochs": epochs,
                "ranking": [c.arch for c in ranking],
                "val_errors": {c.arch: c.val_errors[epochs] for c in ranking},
            }
        )
        experiment.log(
            f"  round {len(rounds)} (to epoch {epochs}): "
            + ", ".join(f"{c.arch} {c.val_errors[epochs]}" for c in ranking)
            + " validation errors"
        )
        # At the full epochs more rounds would only rank the same numbers again: the best one wins.
        if epochs >= max(1, full):
            return rounds
        survivors = ranking[: math.ceil(len(ranking) / 2)]
        epochs = max(1, full) if len(survivors) == 1 else min(2 * epochs, max(1, full))


def _val_errors_at(experiment: Experiment, arch: str, epochs: int, min_epochs: int) -> int:
    """Validation errors of the candidate after `epochs` epochs in total, trained on from its
    checkpoint. Recorded beside the checkpoint: a rerun, whose checkpoint may already be
    further on, ranks each round with the numbers the first run had."""
    d, work = experiment.dataset, _work(experiment, arch, min_epochs)
    record = work / "val_errors.json"
    recorded = json.loads(record.read_text()) if record.exists() else {}
    if str(epochs) not in recorded:
        student, _ = train_student(experiment, _spec(experiment, arch), epochs, work)
        recorded[str(epochs)] = float_errors(student, d.x_val, d.y_val, d.num_classes).errors
        write_json(record, recorded)
    return recorded[str(epochs)]


def _work(experiment: Experiment, arch: str, min_epochs: int) -> Path:
    """A candidate's checkpoints, keyed by everything that shapes its weights: a rerun with the
    same settings continues them, one with other settings never picks them up."""
    c = experiment.config
    key = settings_digest(
        {
            "spec": vars(_spec(experiment, arch)),
            "teacher": experiment.teacher_id,
            "seed": c.seed,
            "data": experiment.data_settings(),
            "student": vars(c.student),
            "min_epochs": min_epochs,
        }
    )
    return experiment.out / "checkpoints" / f"{arch}-{key}"


def _finish(experiment: Experiment, winner: Candidate, board, min_epochs: int) -> dict:
    """QAT + int8 + TFLite Micro test errors + the real firmware for the board, for the winner."""
    c, d = experiment.config, experiment.dataset
    spec = _spec(experiment, winner.arch)
    settings = {
        "spec": vars(spec).copy(),
        "teacher": experiment.teacher_id,
        "seed": c.seed,
        "data": experiment.data_settings(),
        "student": vars(c.student).copy(),
        "qat": vars(c.qat).copy(),
        "board": board.name,
        "sized": winner.size.to_dict(),
        "min_epochs": min_epochs,
    }
    path = experiment.out / "chosen.json"
    saved = read_finished(path, settings)
    if saved is not None:
        experiment.log(f"  {winner.arch}: int8 model finished earlier, kept ({path})")
        return saved
    started = time.perf_counter()
    work = _work(experiment, winner.arch, min_epochs)
    student, _ = train_student(experiment, spec, max(1, c.student.epochs), work)
    test = float_errors(student, d.x_test, d.y_test, d.num_classes)
    tflite = experiment.out / f"{winner.arch}_int8.tflite"
    qat_work = work.with_name(work.name + "-qat")
    quantize_to_int8(experiment, student, spec, qat_work, tflite)
    int8 = int8_test_errors(experiment, tflite)
    size = measure_firmware(tflite, board, experiment.out / "firmware")
    chosen = {
        "settings": settings,
        "arch": winner.arch,
        "epochs": max(1, c.student.epochs),
        "val_errors": winner.val_errors[max(winner.val_errors)],
        "val_total": len(d.y_val),
        "test_errors_float": test.errors,
        "test_errors_int8": int8.errors,
        "test_total": int8.total,
        "int8_accuracy": round(int8.accuracy, 6),
        "tflite": tflite.name,
        "firmware": size.to_dict(),
        "latency_ms_estimate": round(estimate_latency_ms(size.macs, board.clock_hz), 3),
        "seconds": round(time.perf_counter() - started, 1),
    }
    write_json(path, chosen)
    remove_tree(qat_work)
    experiment.log(
        f"  chosen {winner.arch}: {int8.errors} int8 test errors / {int8.total}, flash "
        f"{size.flash_used:,} B, RAM {size.ram_used:,} B" + ("" if size.fits else " (does NOT fit!)")
    )
    return chosen


def _write_outputs(
    experiment: Experiment,
    board,
    candidates: list[Candidate],
    rounds: list[dict],
    chosen: dict,
    max_latency_ms: float | None,
) -> list[Path]:
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
    budget = candidates[0].size
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
        "latency_model": f"MACs x {INSTRUCTIONS_PER_MAC} instructions/MAC (benchmarks/runtime.md, QEMU) / "
        f"{board.clock_hz:,} Hz: a lower bound",
        "teacher": {
            "path": str(experiment.teacher_path),
            "fingerprint": experiment.teacher_id,
            "loaded_from": c.teacher.model or None,
        },
        "distill": vars(c.distill).copy(),
        "student_epochs": c.student.epochs,
        "candidates": [x.to_dict() for x in candidates],
        "rounds": rounds,
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
        f"Budget: flash {s['flash_budget']:,} B, RAM {s['ram_budget']:,} B"
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
        f"errors (of {val_total}) per round of successive halving; ★ = on the Pareto front of accuracy vs flash.",
        "",
        "| candidate | params | MACs | flash (B) | RAM (B) | latency (ms, est.) | "
        + " | ".join(f"val errors @ {r['epochs']} ep" for r in s["rounds"])
        + " | result |",
        "|---|---|---|---|---|---|" + "---|" * len(s["rounds"]) + "---|",
    ]
    for x in s["candidates"]:
        by_epochs = x["val_errors_by_epochs"]
        cells = [str(by_epochs.get(str(r["epochs"]), "")) if x["arch"] in r["val_errors"] else "" for r in s["rounds"]]
        if x["rejected"]:
            result = f"rejected: {x['rejected']}"
        elif x["arch"] == ch["arch"]:
            result = "**chosen**"
        else:
            trained = max(int(k) for k in by_epochs)
            result = f"dropped after {trained} epoch{'s' if trained > 1 else ''}"
        star = " ★" if x["arch"] in front else ""
        lines.append(
            f"| {x['arch']}{star} | {x['params']:,} | {x['macs']:,} | {x['flash_used']:,} | "
            f"{x['ram_used']:,} | {x['latency_ms_estimate']:.2f} | " + " | ".join(cells) + f" | {result} |"
        )
    title = "Validation accuracy vs flash and RAM: Pareto front, budgets dashed, chosen circled"
    plot = s["plots"][0]
    lines += ["", "## Plot", "", f"[{plot}]({plot})", "", f"![{title}]({plot})", ""]
    return "\n".join(lines) + "\n"


def default_fit_dir(config: BuildConfig) -> Path:
    return Path("build") / f"fit-{config.task}-{config.board}"
