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
from dataclasses import dataclass
from pathlib import Path

from tqdm.auto import tqdm

from ..config import BuildConfig
from ..errors import TinykdError
from ..fileio import write_json
from . import points
from .fit_report import next_command, write_outputs
from .fit_sizing import (
    INSTRUCTIONS_PER_MAC,
    MAX_DEPTH,
    Candidate,
    candidate_archs,
    estimate_latency_ms,
    parse_sizes,
    sized_candidate,
)
from .points import Experiment, StudentSpec

__all__ = [
    "INSTRUCTIONS_PER_MAC",
    "MAX_DEPTH",
    "Candidate",
    "FitResult",
    "candidate_archs",
    "default_fit_dir",
    "estimate_latency_ms",
    "next_command",
    "parse_sizes",
    "run_fit",
]


@dataclass
class FitResult:
    out: Path
    chosen: dict
    candidates: list[Candidate]
    files: list[Path]
    next_command: str  # what the user runs next: a full build of the chosen student


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
    single_teacher = points.single_teacher_methods()
    if config.distill.method not in single_teacher:
        raise TinykdError(
            f"tinykd fit distils each candidate from one teacher; method {config.distill.method!r} needs extra "
            f"teachers, peers or generations. Use --method {', '.join(single_teacher)} for the search, then "
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
    experiment = points.open_experiment(config, out, log=log)
    candidates = [
        sized_candidate(experiment, arch, board)
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
    files = write_outputs(experiment, board, candidates, rounds, chosen, max_latency_ms)
    return FitResult(experiment.out, chosen, candidates, files, next_command(chosen["arch"], board.name, config))


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
        student, _ = points.train_student(experiment, _spec(experiment, arch), epochs, work)
        recorded[str(epochs)] = points.float_errors(student, d.x_val, d.y_val, d.num_classes).errors
        write_json(record, recorded)
    return recorded[str(epochs)]


def _work(experiment: Experiment, arch: str, min_epochs: int) -> Path:
    """A candidate's checkpoints, keyed by everything that shapes its weights: a rerun with the
    same settings continues them, one with other settings never picks them up."""
    c = experiment.config
    key = points.settings_digest(
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
    saved = points.read_finished(path, settings)
    if saved is not None:
        experiment.log(f"  {winner.arch}: int8 model finished earlier, kept ({path})")
        return saved
    started = time.perf_counter()
    work = _work(experiment, winner.arch, min_epochs)
    student, _ = points.train_student(experiment, spec, max(1, c.student.epochs), work)
    test = points.float_errors(student, d.x_test, d.y_test, d.num_classes)
    tflite = experiment.out / f"{winner.arch}_int8.tflite"
    qat_work = work.with_name(work.name + "-qat")
    points.quantize_to_int8(experiment, student, spec, qat_work, tflite)
    int8 = points.int8_test_errors(experiment, tflite)
    size = points.measure_firmware(tflite, board, experiment.out / "firmware")
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
    points.remove_tree(qat_work)
    experiment.log(
        f"  chosen {winner.arch}: {int8.errors} int8 test errors / {int8.total}, flash "
        f"{size.flash_used:,} B, RAM {size.ram_used:,} B" + ("" if size.fits else " (does NOT fit!)")
    )
    return chosen


def default_fit_dir(config: BuildConfig) -> Path:
    return Path("build") / f"fit-{config.task}-{config.board}"
