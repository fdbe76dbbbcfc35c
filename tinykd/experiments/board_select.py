"""`tinykd boards --select`: the boards a model fits, their latency and their price, cheapest first.

For every board with a unit price (the virtual QEMU-only boards have none) the model's firmware is
generated and compiled with that board's flags and budgets (flash and RAM after what an OS core
takes). Latency comes from the model itself: its firmware runs one inference on the QEMU board of
the same core family, which counts instructions; at one cycle per instruction (a lower bound: loads,
multiplies and flash wait states cost more on silicon) and the board's clock that is milliseconds.
A core QEMU does not model borrows the nearest one it does (Cortex-M0+ runs the M0's Thumb-1 code).

    selection = select_boards("model_int8.tflite", "out/select", max_latency_ms=50)
    selection.chosen            # the boards that fit (and meet the latency), cheapest first
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..boards import Board, list_boards, load_board
from ..errors import FirmwareTooLarge, TinykdError
from ..fileio import write_json, write_text
from .fit_sizing import instructions_per_mac
from .points import FirmwareSize, measure_firmware

# Cores QEMU does not model, and the modelled core whose instruction count stands in for theirs.
CORE_STAND_INS = {"cortex-m0plus": "cortex-m0"}
# One cycle per instruction: the assumption that turns QEMU's instruction counts into a latency.
CYCLES_PER_INSTRUCTION = 1.0


@dataclass
class CoreTiming:
    """Instructions of one inference of the model, counted on a QEMU board of this core family."""

    cpu: str
    qemu_board: str | None  # None: no QEMU board models this core (or its stand-in)
    instructions: int | None
    note: str = ""

    def to_dict(self) -> dict:
        return {"cpu": self.cpu, "qemu_board": self.qemu_board, "instructions": self.instructions, "note": self.note}


@dataclass
class BoardChoice:
    board: Board
    size: FirmwareSize
    timing: CoreTiming
    max_latency_ms: float | None = None

    @property
    def latency_ms(self) -> float | None:
        if self.timing.instructions is None:
            return None
        return self.timing.instructions * CYCLES_PER_INSTRUCTION / self.board.clock_hz * 1000.0

    @property
    def why_not(self) -> str:
        """Why the board is not a choice ('' when it is)."""
        if not self.size.fits:
            return "does not fit: over " + self.size.over_budget()
        if self.max_latency_ms is not None:
            if self.latency_ms is None:
                return "latency unknown (no QEMU board for its core)"
            if self.latency_ms > self.max_latency_ms:
                return f"too slow: {self.latency_ms:.2f} ms > {self.max_latency_ms:g} ms"
        return ""

    def to_dict(self) -> dict:
        b = self.board
        return {
            "board": b.name,
            "description": b.description,
            "core": b.core,
            "clock_mhz": b.clock_hz / 1e6,
            "price_usd": b.price_usd,
            "price_source": b.price_source,
            "price_date": b.price_date,
            **self.size.to_dict(),
            "instructions": self.timing.instructions,
            "instructions_from": self.timing.qemu_board,
            "latency_ms_lower_bound": None if self.latency_ms is None else round(self.latency_ms, 4),
            "chosen": not self.why_not,
            "why_not": self.why_not or None,
        }


@dataclass
class Selection:
    model: Path
    model_sha256: str
    max_latency_ms: float | None
    choices: list[BoardChoice]  # chosen first (cheapest, then fastest), then the others by price
    timings: dict[str, CoreTiming] = field(default_factory=dict)
    left_out: list[str] = field(default_factory=list)  # boards without a price (virtual)

    @property
    def chosen(self) -> list[BoardChoice]:
        return [c for c in self.choices if not c.why_not]

    def to_dict(self) -> dict:
        return {
            "model": str(self.model),
            "model_sha256": self.model_sha256,
            "max_latency_ms": self.max_latency_ms,
            "cycles_per_instruction_assumed": CYCLES_PER_INSTRUCTION,
            "cheapest": self.chosen[0].board.name if self.chosen else None,
            "boards": [c.to_dict() for c in self.choices],
            "core_timings": {k: t.to_dict() for k, t in sorted(self.timings.items())},
            "left_out_without_price": self.left_out,
        }


def _qemu_board_for(cpu: str, boards: list[Board]) -> Board | None:
    """The QEMU board that counts instructions for `cpu` (or for its stand-in core)."""
    wanted = CORE_STAND_INS.get(cpu, cpu)
    qemu = [b for b in boards if b.is_qemu and b.cpu == wanted]
    # Prefer the MPS images (port written for QEMU) over emulated real chips; then by name.
    qemu.sort(key=lambda b: (b.port != "qemu-mps", b.name))
    return qemu[0] if qemu else None


def _count_instructions(tflite: Path, board: Board, work: Path) -> int:
    """One inference of the model on the QEMU `board` (a random input): its instruction count."""
    from ..device.run import run_inference_qemu
    from ..firmware.build import build_firmware

    fw = build_firmware(tflite, board, work)
    rng = np.random.default_rng(0)
    x = rng.integers(-128, 128, size=(1, fw.sources.input_bytes), dtype=np.int64).astype(np.int8)
    _, counts = run_inference_qemu(
        board, fw.build.elf, x, instances=1, expected_sha256_hex=fw.sources.sha256, progress=False
    )
    return int(counts[0])


def _timings(tflite: Path, cpus: list[str], boards: list[Board], work: Path, pool, macs: int) -> dict[str, CoreTiming]:
    """Instructions per inference for each core, counted once per QEMU board (cores that share a
    stand-in share its count)."""
    qemu_for = {cpu: _qemu_board_for(cpu, boards) for cpu in cpus}
    qemu_boards = sorted({q.name: q for q in qemu_for.values() if q is not None}.values(), key=lambda b: b.name)

    def count(qemu: Board) -> int | None:
        try:
            return _count_instructions(tflite, qemu, work / f"qemu-{qemu.name}")
        except FirmwareTooLarge:
            return None

    counts = dict(zip((q.name for q in qemu_boards), pool.map(count, qemu_boards), strict=True))
    timings = {}
    for cpu, qemu in qemu_for.items():
        if qemu is None:
            timings[cpu] = CoreTiming(cpu, None, None, f"no QEMU board models {cpu}")
        elif counts[qemu.name] is None:
            # Too big for the one QEMU board of this core (the 16 KB micro:bit): the core's
            # instructions per MAC, counted on QEMU for an MLP, stand in for the model's own count.
            ipm = instructions_per_mac(qemu)
            timings[cpu] = CoreTiming(
                cpu,
                None,
                round(macs * ipm),
                f"estimated: {macs:,} MACs x {ipm} instructions/MAC (the model does not fit {qemu.name})",
            )
        else:
            stand_in = f" ({qemu.cpu} standing in for {cpu})" if qemu.cpu != cpu else ""
            timings[cpu] = CoreTiming(cpu, qemu.name, counts[qemu.name], f"counted on {qemu.name}{stand_in}")
    return timings


def select_boards(
    model: str | Path,
    out_dir: str | Path,
    *,
    max_latency_ms: float | None = None,
    boards: list[str] | None = None,
    log: Callable[[str], None] = print,
) -> Selection:
    """Size `model` (an int8 .tflite, or a build folder holding model_int8.tflite) on every priced
    board (or the named `boards`), time it per core family on QEMU, and rank the boards that fit
    by price. Writes select.json, select.md and select.png into `out_dir`."""
    model = Path(model)
    if model.is_dir():
        model = model / "model_int8.tflite"
    if not model.is_file():
        raise TinykdError(
            f"{model} does not exist. Pass --model with an int8 .tflite, or a build folder after `tinykd build`."
        )
    if max_latency_ms is not None and max_latency_ms <= 0:
        raise TinykdError(f"--max-latency-ms must be positive, got {max_latency_ms:g}.")
    out = Path(out_dir)
    every = list_boards()
    if boards:
        candidates = [load_board(name) for name in boards]
    else:
        candidates = [b for b in every if b.price_usd is not None]
    left_out = sorted(b.name for b in every if b.price_usd is None and b not in candidates)
    if not candidates:
        raise TinykdError("No board has a [price] in its board file, so there is nothing to rank. Add prices.")

    log(f"[select] sizing {model.name} on {len(candidates)} boards")
    with ThreadPoolExecutor(max_workers=2) as pool:  # each job is a compiler subprocess
        sizes = list(pool.map(lambda b: measure_firmware(model, b, out / "sizes" / b.name), candidates))
        cpus = sorted({b.cpu for b in candidates})
        log(f"[select] counting instructions per inference on QEMU for {', '.join(cpus)}")
        timings = _timings(model, cpus, every, out / "timing", pool, sizes[0].macs)

    choices = [BoardChoice(b, s, timings[b.cpu], max_latency_ms) for b, s in zip(candidates, sizes, strict=True)]

    def rank(c: BoardChoice):
        latency = c.latency_ms if c.latency_ms is not None else float("inf")
        return (bool(c.why_not), c.board.price_usd if c.board.price_usd is not None else float("inf"), latency)

    choices.sort(key=rank)
    selection = Selection(
        model=model,
        model_sha256=hashlib.sha256(model.read_bytes()).hexdigest(),
        max_latency_ms=max_latency_ms,
        choices=choices,
        timings=timings,
        left_out=left_out,
    )
    write_json(out / "select.json", selection.to_dict())
    write_text(out / "select.md", selection_markdown(selection))
    plot_selection(selection, out / "select.png")
    return selection


def selection_markdown(sel: Selection) -> str:
    limit = f", latency at most {sel.max_latency_ms:g} ms" if sel.max_latency_ms is not None else ""
    lines = [
        f"# Boards for {sel.model.name}",
        "",
        f"Model sha256 {sel.model_sha256[:16]}…; boards ranked by unit price among those where it fits{limit}.",
        "Latency is a lower bound: instructions of one inference counted on QEMU for the core family, at one",
        "cycle each and the board's clock (real cores take more cycles: loads, multiplies, flash wait states).",
        "",
        "| rank | board | core | MHz | price (USD) | flash used / budget | RAM used / budget "
        "| instructions | latency ms ≥ | |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    rank = 0
    for c in sel.choices:
        b, s = c.board, c.size
        rank_cell = "—"
        if not c.why_not:
            rank += 1
            rank_cell = str(rank)
        instr = f"{c.timing.instructions:,}" if c.timing.instructions is not None else "—"
        if c.timing.instructions is not None and c.timing.qemu_board is None:
            instr = "~" + instr  # estimated from MACs, not counted for this model
        lat = f"{c.latency_ms:.2f}" if c.latency_ms is not None else "—"
        price = f"{b.price_usd:.2f}" if b.price_usd is not None else "virtual"
        lines.append(
            f"| {rank_cell} | {b.name} | {b.core} | {b.clock_hz / 1e6:g} | {price} | "
            f"{s.flash_used:,} / {s.flash_budget:,} | {s.ram_used:,} / {s.ram_budget:,} | {instr} | {lat} | "
            f"{c.why_not} |"
        )
    lines += ["", "Instructions per inference by core:", ""]
    for cpu, t in sorted(sel.timings.items()):
        count = f"{t.instructions:,}" if t.instructions is not None else "not measured"
        lines.append(f"- {cpu}: {count} ({t.note})")
    lines += ["", "Prices are unit list prices from each board file's [price] (source and date there)."]
    if sel.left_out:
        lines.append(f"Virtual boards (QEMU only, nothing to buy) left out: {', '.join(sel.left_out)}.")
    if not sel.chosen:
        lines += ["", "**No board fits.** Make the student smaller (`tinykd fit --board B`) or relax the latency."]
    return "\n".join(lines) + "\n"


def plot_selection(sel: Selection, path: Path) -> Path:
    from ..report.plots import board_selection

    # A virtual board has no price to place it on the axis.
    points = [(c.board.name, c.board.price_usd, c.latency_ms, not c.why_not) for c in sel.choices if c.board.price_usd]
    return board_selection(points, sel.max_latency_ms, sel.model.name, path)
