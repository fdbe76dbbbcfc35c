"""`tinykd fit --board B` (or `--budget-usd N`): search student widths and depths (MLPs for
MNIST; DS-CNN channels and blocks for keyword spotting) for the most accurate int8 student that
fits the board's flash and RAM (and, optionally, a latency limit).

1. Size every candidate without training: build it, convert the untrained model to int8,
   generate and compile the board's firmware, read flash and RAM (cached in out/sizes/).
   Candidates over a budget, or over --max-latency, are dropped with their sizes.
2. Ray Tune's ASHA over the rest, one trial per candidate (distilling from the teacher): a
   trial reports its validation errors at each rung (--min-epochs, then doubling up to the
   configured student epochs; training continues from its checkpoints) and ASHA stops it there
   unless it is in the better half of the candidates that reached that rung before it. The
   trials start largest flash first, one at a time by default: ASHA decides in the order
   results arrive, so this order makes the same seed stop the same candidates on every run and
   cluster. Validation errors per rung are kept in out/rungs/: a rerun reports them again
   without training, and ASHA repeats its decisions.
3. The winner (fewest validation errors at the full epochs, then smaller flash) gets QAT, int8
   conversion, its test errors in TFLite Micro and a real firmware build for the board, as one
   more trial; fit.json, fit.md and plots/fit_front.png report the search, its rungs and what
   ASHA stopped.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tqdm.auto import tqdm

from ..config import BuildConfig
from ..errors import TinykdError
from ..trials import EMBEDDED, RayOptions, Trial, run_trials
from . import points
from .fit_report import next_command, write_outputs
from .fit_sizing import (
    FAMILIES,
    INSTRUCTIONS_PER_MAC,
    MAX_DEPTH,
    Candidate,
    boards_under_budget,
    candidate_archs,
    estimate_latency_ms,
    parse_sizes,
    placed_candidate,
)
from .points import Experiment, StudentSpec

__all__ = [
    "FAMILIES",
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
    "train_candidate",
    "finish_winner",
]

REDUCTION_FACTOR = 2  # ASHA keeps the better half at each rung


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
    widths: list[int] | None,
    depths: list[int] | None,
    *,
    max_latency_ms: float | None = None,
    budget_usd: float | None = None,
    min_epochs: int = 1,
    ray: RayOptions = EMBEDDED,
    concurrent: int = 1,
    log: Callable[[str], None] = print,
) -> FitResult:
    """Size, prune, ASHA, and finish the winner; see the module docstring. `concurrent` > 1 runs
    that many candidates at once: faster on a cluster, but ASHA's stops then depend on which
    results arrive first, so the same seed may choose differently. `budget_usd`: instead of
    config.board, every board with a unit price up to that: each candidate is sized on the
    cheapest board it fits, and the most accurate one wins, on its cheapest board."""
    from ..boards import load_board

    if config.task not in FAMILIES:
        raise TinykdError(
            f"tinykd fit searches MLP widths and depths for MNIST and DS-CNN channels and blocks for keyword "
            f"spotting (--task kws); task {config.task!r} has no searchable family yet. Compare students "
            "directly with `tinykd build --student ...` (e.g. cnn-s, cnn-m, mlp-W-W)."
        )
    searchable = points.searchable_methods()
    if config.distill.method not in searchable:
        raise TinykdError(
            f"tinykd fit distils each candidate from models trained before it; method {config.distill.method!r} "
            f"trains peers or generations with the student. Use --method {', '.join(searchable)} for the search, "
            f"then `tinykd build --method {config.distill.method} --student <chosen>` for the chosen size."
        )
    if max_latency_ms is not None and not max_latency_ms > 0:
        raise TinykdError(
            f"--max-latency must be > 0 milliseconds (got {max_latency_ms:g}). Leave it out for no latency limit."
        )
    if min_epochs < 1:
        raise TinykdError(
            f"--min-epochs must be >= 1 (got {min_epochs}): the first round trains each candidate for that many epochs."
        )
    family = FAMILIES[config.task]
    default_widths, default_depths = parse_sizes(family.widths, family.depths, family)
    widths, depths = widths or default_widths, depths or default_depths
    boards = boards_under_budget(budget_usd) if budget_usd is not None else [load_board(config.board)]
    experiment = points.open_experiment(config, out, log=log, methods=[config.distill.method])
    if budget_usd is not None:
        log(f"  boards up to ${budget_usd:g}: " + ", ".join(f"{b.name} ${b.price_usd:.2f}" for b in boards))
    candidates = [
        placed_candidate(experiment, arch, boards, max_latency_ms)
        for arch in tqdm(candidate_archs(widths, depths, family), desc="sizing", unit="candidate", dynamic_ncols=True)
    ]
    for c in candidates:
        log(
            f"  {c.arch} on {c.size.board}: flash {c.size.flash_used:,} / {c.size.flash_budget:,} B, RAM "
            f"{c.size.ram_used:,} / {c.size.ram_budget:,} B, ~{c.latency_ms:.2f} ms"
            + (f": rejected, {c.rejected}" if c.rejected else "")
        )
    kept = [c for c in candidates if not c.rejected]
    if not kept:
        smallest = min(candidates, key=lambda c: c.size.flash_used)
        where = (
            f"any of the {len(boards)} boards up to ${budget_usd:g}; on {smallest.size.board} (flash "
            if budget_usd is not None
            else f"{smallest.size.board} (flash "
        )
        raise TinykdError(
            f"No candidate fits {where}{smallest.size.flash_budget:,} B, RAM "
            f"{smallest.size.ram_budget:,} B"
            + (f", {max_latency_ms:g} ms" if max_latency_ms else "")
            + f"): the smallest, {smallest.arch}, needs flash {smallest.size.flash_used:,} B and RAM "
            f"{smallest.size.ram_used:,} B, ~{smallest.latency_ms:.2f} ms. Try smaller --widths or --depths"
            + (", or a larger --max-latency." if max_latency_ms else "")
            + (", or a larger --budget-usd." if budget_usd is not None else ", or a board with more memory.")
        )
    rungs, winner = _asha(experiment, kept, min_epochs, ray, concurrent)
    board = load_board(winner.size.board)
    chosen = _finish(experiment, winner, board, min_epochs, ray)
    files = write_outputs(experiment, board, candidates, rungs, chosen, max_latency_ms, boards, budget_usd)
    return FitResult(experiment.out, chosen, candidates, files, next_command(chosen["arch"], board.name, config))


def _spec(experiment: Experiment, arch: str) -> StudentSpec:
    kd = experiment.config.distill
    return StudentSpec(arch, kd.method, *kd.numbers())  # "auto": no search here, the fallback


def rung_epochs(full: int, min_epochs: int) -> list[int]:
    """The epochs at which ASHA compares candidates (its milestones: min_epochs, doubling, below
    the full epochs), then the full epochs, where the survivors finish."""
    full, first = max(1, full), min(max(1, min_epochs), max(1, full))
    rungs = []
    while first < full:
        rungs.append(first)
        first *= REDUCTION_FACTOR
    return rungs + [full]


def _asha(experiment: Experiment, kept: list[Candidate], min_epochs: int, ray: RayOptions, concurrent: int):
    """One trial per candidate under Tune's ASHA; returns (rungs, winner)."""
    from ray.tune.schedulers import ASHAScheduler

    if concurrent < 1:
        raise TinykdError(f"fit needs at least one trial at a time (got concurrent={concurrent}).")
    full = max(1, experiment.config.student.epochs)
    epochs = rung_epochs(full, min_epochs)
    # Largest first: the likeliest to be accurate sets the bar that the smaller ones must clear.
    ordered = sorted(kept, key=lambda c: (-c.size.flash_used, c.arch))
    trials = [
        {
            "name": c.arch,
            "arch": c.arch,
            "epochs": epochs,
            "record": f"rungs/{_work_key(experiment, c.arch, min_epochs)}.json",
        }
        for c in ordered
    ]
    asha = ASHAScheduler(
        time_attr="epochs",
        max_t=full,
        grace_period=epochs[0],
        reduction_factor=REDUCTION_FACTOR,
        stop_last_trials=False,
    )
    outcomes = run_trials(
        experiment,
        train_candidate,
        trials,
        options=ray,
        desc="fit (ASHA)",
        scheduler=asha,
        metric="val_errors",
        mode="min",
        max_concurrent=concurrent,
    )
    by_arch = {c.arch: c for c in ordered}
    stopped_at = {}
    for outcome in outcomes:
        c = by_arch[outcome.params["arch"]]
        for report in outcome.reports:
            if "val_errors" in report and "epochs" in report:
                c.val_errors[int(report["epochs"])] = int(report["val_errors"])
        if outcome.stopped:
            stopped_at[c.arch] = max(c.val_errors)
    rungs = []
    for e in epochs:
        reached = [c for c in ordered if e in c.val_errors]
        ranking = sorted(reached, key=lambda c: (c.val_errors[e], c.size.flash_used))
        rungs.append(
            {
                "epochs": e,
                "ranking": [c.arch for c in ranking],
                "val_errors": {c.arch: c.val_errors[e] for c in ranking},
                "stopped": [c.arch for c in reached if stopped_at.get(c.arch) == e],
            }
        )
        experiment.log(
            f"  rung at epoch {e}: "
            + ", ".join(f"{c.arch} {c.val_errors[e]}" for c in ranking)
            + " validation errors"
            + (f"; ASHA stopped {', '.join(rungs[-1]['stopped'])}" if rungs[-1]["stopped"] else "")
        )
    finishers = [c for c in ordered if c.arch not in stopped_at and full in c.val_errors]
    winner = min(finishers, key=lambda c: (c.val_errors[full], c.size.flash_used))
    return rungs, winner


def _work_key(experiment: Experiment, arch: str, min_epochs: int) -> str:
    """A candidate's name and the digest of everything that shapes its weights: its checkpoints
    and recorded rungs are continued by a rerun with the same settings, never by another."""
    key = points.settings_digest(experiment.student_settings(_spec(experiment, arch)) | {"min_epochs": min_epochs})
    return f"{arch}-{key}"


def train_candidate(experiment: Experiment, params: dict, trial: Trial) -> dict:
    """One candidate as one ASHA trial: train to each rung's epochs (continuing from the
    checkpoint on this node), report the validation errors there; ASHA may stop it at any rung.
    Errors already recorded in out/rungs/ (a rerun) are reported without training."""
    d, arch = experiment.dataset, params["arch"]
    recorded = trial.read_json(params["record"]) or {}
    work = trial.scratch(params["record"].removeprefix("rungs/").removesuffix(".json"))
    *rungs, full = params["epochs"]
    for epochs in [*rungs, full]:
        if str(epochs) not in recorded:
            student, _ = points.train_student(experiment, _spec(experiment, arch), epochs, work)
            recorded[str(epochs)] = points.float_errors(student, d.x_val, d.y_val, d.num_classes).errors
            trial.write(params["record"], recorded)
        if epochs != full:
            trial.report(epochs=epochs, val_errors=recorded[str(epochs)])
    return {
        "epochs": full,
        "val_errors": recorded[str(full)],
        "summary": f"{arch}: {recorded[str(full)]} validation errors after {full} epochs",
    }


def _finish(experiment: Experiment, winner: Candidate, board, min_epochs: int, ray: RayOptions) -> dict:
    """The winner's int8 model and firmware (one trial: `finish_winner`), or chosen.json from an
    earlier run with the same settings."""
    c = experiment.config
    settings = experiment.student_settings(_spec(experiment, winner.arch)) | {
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
    params = {
        "name": f"{winner.arch} (int8)",
        "arch": winner.arch,
        "settings": settings,
        "work": _work_key(experiment, winner.arch, min_epochs),
        "val_errors": winner.val_errors[max(winner.val_errors)],
    }
    run_trials(experiment, finish_winner, [params], options=ray, desc="fit (winner)")
    chosen = points.read_finished(path, settings)
    if chosen is None:
        raise TinykdError(f"The winner's trial ended without {path}. Run the same command again to finish it.")
    return chosen


def finish_winner(experiment: Experiment, params: dict, trial: Trial) -> dict:
    """The winner, as one trial: trained to the full epochs (from its checkpoint on this node),
    QAT + int8 + TFLite Micro test errors + the real firmware for the board; chosen.json and
    the .tflite are kept in the driver's out/."""
    from ..boards import load_board

    c, d, arch = experiment.config, experiment.dataset, params["arch"]
    spec, board = _spec(experiment, arch), load_board(params["settings"]["board"])
    started = time.perf_counter()
    work = trial.scratch(params["work"])
    student, _ = points.train_student(experiment, spec, max(1, c.student.epochs), work)
    test = points.float_errors(student, d.x_test, d.y_test, d.num_classes)
    qat_work = work.with_name(work.name + "-qat")
    tflite = qat_work / f"{arch}_int8.tflite"
    points.quantize_to_int8(experiment, student, spec, qat_work, tflite)
    int8 = points.int8_test_errors(experiment, tflite)
    size = points.measure_firmware(tflite, board, qat_work / "firmware", experiment.task.device_frontend)
    chosen = {
        "settings": params["settings"],
        "arch": arch,
        "epochs": max(1, c.student.epochs),
        "val_errors": params["val_errors"],
        "val_total": len(d.y_val),
        "test_errors_float": test.errors,
        "test_errors_int8": int8.errors,
        "test_total": int8.total,
        "int8_accuracy": round(int8.accuracy, 6),
        "tflite": tflite.name,
        "firmware": size.to_dict(),
        "latency_ms_estimate": round(estimate_latency_ms(size.macs, board), 3),
        "seconds": round(time.perf_counter() - started, 1),
    }
    trial.write(tflite.name, tflite.read_bytes())
    trial.write("chosen.json", chosen)
    points.remove_tree(qat_work)
    return {
        "test_errors_int8": int8.errors,
        "summary": f"chosen {arch}: {int8.errors} int8 test errors / {int8.total}, flash "
        f"{size.flash_used:,} B, RAM {size.ram_used:,} B" + ("" if size.fits else " (does NOT fit!)"),
    }


def default_fit_dir(config: BuildConfig, budget_usd: float | None = None) -> Path:
    where = config.board if budget_usd is None else f"under-{budget_usd:g}usd"
    return Path("build") / f"fit-{config.task}-{where}"
