"""`tinykd fit`'s candidates and their sizes: the MLP widths x depths it searches, and each
candidate's flash, RAM and estimated latency on the board, measured untrained (cached in
out/sizes/)."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import TinykdError
from ..fileio import write_json
from .points import Experiment, FirmwareSize, measure_firmware, read_finished, remove_tree

# Instructions per multiply-accumulate of our runtime's FULLY_CONNECTED kernel in an MLP, counted
# on QEMU for the --quick MNIST student (784-300-300-10; benchmarks/device.md): cores with the DSP
# extension (M4/M7/M33/M55) on mps2-an386, the M3 on mps2-an385, the M0 (and M0+, which runs the
# same Thumb-1 code) on microbit-qemu. QEMU counts instructions; a real core needs at least as many
# cycles (more with flash wait states), so latencies estimated from them are lower bounds.
INSTRUCTIONS_PER_MAC = {"dsp": 1.54, "cortex-m3": 2.82, "cortex-m0": 6.63}
MAX_DEPTH = 4


@dataclass(frozen=True)
class Family:
    """The students `tinykd fit` searches for a task: a width and a depth name each candidate."""

    name: str
    widths: str  # default --widths
    depths: str  # default --depths
    max_depth: int
    pattern: str  # the architecture name, from {w} and {d}

    def arch(self, width: int, depth: int) -> str:
        if self.name == "mlp":
            return "mlp-" + "-".join([str(width)] * depth)
        return self.pattern.format(w=width, d=depth)


# MLPs (width = units per hidden layer, depth = hidden layers) for MNIST; for keyword spotting
# DS-CNNs (width = channels, depth = depthwise-separable blocks): ds-cnn-s is 64x4, ds-cnn-xs 32x3.
MLP = Family("mlp", "16,32,64,128,256,512", "1,2,3", MAX_DEPTH, "mlp-{w}...")
DS_CNN = Family("ds-cnn", "16,32,48,64", "2,3,4", 6, "ds-cnn-{w}x{d}")
FAMILIES = {"mnist": MLP, "kws": DS_CNN}


def instructions_per_mac(board) -> float:
    if board.has_dsp:
        return INSTRUCTIONS_PER_MAC["dsp"]
    return INSTRUCTIONS_PER_MAC.get(board.cpu, INSTRUCTIONS_PER_MAC["cortex-m0"])


@dataclass
class Candidate:
    arch: str
    size: FirmwareSize  # on `size.board`: the board it was sized for (the cheapest it fits, with a budget)
    latency_ms: float  # estimated on that board, see INSTRUCTIONS_PER_MAC
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


def parse_sizes(widths: str, depths: str, family: Family = MLP) -> tuple[list[int], list[int]]:
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

    return (
        integers("--widths", widths, family.widths, None),
        integers("--depths", depths, family.depths, family.max_depth),
    )


def candidate_archs(widths: list[int], depths: list[int], family: Family = MLP) -> list[str]:
    """Every width at every depth: mlp-W, mlp-W-W, ... (the registry's plain ReLU MLPs) or
    ds-cnn-WxD (DS-CNNs of W channels and D blocks)."""
    return [family.arch(w, d) for d in depths for w in widths]


def estimate_latency_ms(macs: int, board) -> float:
    return 1000.0 * macs * instructions_per_mac(board) / board.clock_hz


def boards_under_budget(budget_usd: float) -> list:
    """The boards with a unit price of at most `budget_usd`, cheapest first."""
    from ..boards import list_boards

    priced = sorted((b for b in list_boards() if b.price_usd is not None), key=lambda b: (b.price_usd, b.name))
    if not priced:
        raise TinykdError("No board file has a [price]: --budget-usd has nothing to choose from.")
    under = [b for b in priced if b.price_usd <= budget_usd]
    if not under:
        cheapest = priced[0]
        raise TinykdError(
            f"No board costs at most ${budget_usd:g}: the cheapest is {cheapest.name} at ${cheapest.price_usd:.2f} "
            f"({cheapest.price_source}, {cheapest.price_date}). Raise --budget-usd (see `tinykd boards`)."
        )
    return under


def placed_candidate(experiment: Experiment, arch: str, boards: list, max_latency_ms: float | None) -> Candidate:
    """`arch` sized on the first of `boards` (cheapest first) where it fits and meets the latency
    limit; when none does, on the last one tried, with why it was rejected."""
    for board in boards:
        c = sized_candidate(experiment, arch, board)
        if not c.size.fits:
            c.rejected = f"over {c.size.over_budget()}"
        elif max_latency_ms is not None and c.latency_ms > max_latency_ms:
            c.rejected = f"estimated {c.latency_ms:.2f} ms > {max_latency_ms:g} ms"
        if not c.rejected:
            return c
    if len(boards) > 1:
        c.rejected = f"fits none of the {len(boards)} boards (on {c.size.board}: {c.rejected})"
    return c


def sized_candidate(experiment: Experiment, arch: str, board) -> Candidate:
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
    path = experiment.out / "sizes" / board.name / f"{arch}.json"
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
        size = measure_firmware(tflite, board, work / "firmware", experiment.task.device_frontend)
        saved = {"settings": settings, "size": size.to_dict()}
        write_json(path, saved)
        remove_tree(work)
    fields = {k: v for k, v in saved["size"].items() if k not in ("fits", "over_budget")}
    size = FirmwareSize(**fields)
    return Candidate(arch, size, estimate_latency_ms(size.macs, board))
