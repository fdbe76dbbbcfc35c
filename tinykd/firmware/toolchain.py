"""Building a generated firmware project: compile it (make + arm-none-eabi-gcc, or arduino-cli
for Arduino boards), read the sizes with arm-none-eabi-size and raise FirmwareTooLarge (a
TinykdError carrying the sizes and budgets) when the image does not fit the board."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from tinykd.boards import Board
from tinykd.errors import FirmwareTooLarge, TinykdError

if TYPE_CHECKING:
    from .project import Project

TOOLCHAIN_HINT = (
    "Install the Arm GNU toolchain and make: on Debian/Ubuntu `sudo apt-get install "
    "gcc-arm-none-eabi libnewlib-arm-none-eabi make`, on macOS `brew install --cask "
    "gcc-arm-embedded`, or download it from developer.arm.com and put its bin/ on PATH."
)
ARDUINO_CLI_HINT = (
    "Install arduino-cli (https://arduino.github.io/arduino-cli/latest/installation/), then "
    "`arduino-cli core install arduino:mbed_nano`."
)


@dataclass
class BuildResult:
    elf: Path | None  # None for an arduino-cli build whose ELF could not be found
    text: int
    data: int
    bss: int
    flash_used: int
    ram_used: int
    flash_budget: int
    ram_budget: int
    method: str  # "make" | "arduino-cli" | "fitcheck"
    map_file: Path | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def fits(self) -> bool:
        return self.flash_used <= self.flash_budget and self.ram_used <= self.ram_budget


def _need(tool: str, hint: str) -> str:
    path = shutil.which(tool)
    if not path:
        raise TinykdError(f"`{tool}` was not found on PATH, and building the firmware needs it. {hint}")
    return path


def _run(cmd: list[str], cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        raise TinykdError(
            f"`{' '.join(cmd)}` in {cwd} took longer than {timeout:.0f} s and "
            "was stopped. Check the machine's load and try again."
        ) from e


def read_sizes(elf: Path) -> tuple[int, int, int]:
    """(text, data, bss) of an ELF in Berkeley format (text includes rodata, i.e. weights;
    bss includes the reserved stack block)."""
    size = _need("arm-none-eabi-size", TOOLCHAIN_HINT)
    r = _run([size, "-B", str(elf)], cwd=elf.parent)
    if r.returncode != 0:
        raise TinykdError(f"arm-none-eabi-size could not read {elf}: {r.stderr.strip()}")
    lines = r.stdout.strip().splitlines()
    try:
        text, data, bss = (int(v) for v in lines[-1].split()[:3])
    except (IndexError, ValueError) as e:
        raise TinykdError(f"Unexpected arm-none-eabi-size output for {elf}: {r.stdout!r}") from e
    return text, data, bss


def _fit_error(
    board: Board,
    flash_used: int | None,
    ram_used: int | None,
    flash_budget: int,
    ram_budget: int,
    extra: str = "",
) -> FirmwareTooLarge:
    """The error for an image over the board's budget. flash_used/ram_used None: the linker
    refused it before its sizes could be read (the message then says budget + 1 B)."""
    flash_shown = flash_budget + 1 if flash_used is None else flash_used
    ram_shown = ram_budget + 1 if ram_used is None else ram_used
    over = []
    if flash_shown > flash_budget:
        over.append(f"flash by {flash_shown - flash_budget} B")
    if ram_shown > ram_budget:
        over.append(f"RAM by {ram_shown - ram_budget} B")
    return FirmwareTooLarge(
        f"The firmware does not fit board {board.name}: it needs {flash_shown} B of flash "
        f"(budget {flash_budget} B) and {ram_shown} B of RAM (budget {ram_budget} B), over "
        f"{' and '.join(over)}.{extra} Flash holds code and weights, RAM the tensor arena, "
        "buffers and stack. Try a smaller student (fewer units or layers, e.g. a 784-100-10 "
        f"MLP instead of 784-300-300-10; `tinykd fit --board {board.name}` finds the most accurate "
        "one that fits), or a board with more memory (`tinykd boards --select --model MODEL.tflite` "
        "lists the boards this model fits, cheapest first).",
        board=board.name,
        flash_used=flash_used,
        flash_budget=flash_budget,
        ram_used=ram_used,
        ram_budget=ram_budget,
    )


def _make(project: Project) -> BuildResult:
    make = _need("make", TOOLCHAIN_HINT)
    _need("arm-none-eabi-gcc", TOOLCHAIN_HINT)
    root = project.make_dir
    board = project.board
    fitcheck = project.kind == "arduino"
    # Only an OS core's boards have an allowance; the others' budgets are the whole board.
    flash_budget, ram_budget = board.app_flash_bytes, board.app_ram_bytes
    jobs = str(min(2, os.cpu_count() or 1))
    r = _run([make, "-j", jobs, "--no-print-directory"], cwd=root)
    if r.returncode != 0:
        log = r.stdout + r.stderr
        if re.search(r"region `?'?(FLASH|RAM)'? overflowed", log) or "will not fit in region" in log:
            m = _run(
                [
                    make,
                    "-j",
                    jobs,
                    "--no-print-directory",
                    "LDSCRIPT=tkd_measure.ld",
                    "ELF=build/measure.elf",
                    "build/measure.elf",
                ],
                cwd=root,
            )
            if m.returncode == 0:
                text, data, bss = read_sizes(root / "build" / "measure.elf")
                raise _fit_error(
                    board,
                    text + data,
                    data + bss,
                    flash_budget,
                    ram_budget,
                    " (Sizes from a trial link without the board's limits.)",
                )
            raise _fit_error(board, None, None, flash_budget, ram_budget, f" The linker said: {log.strip()[-400:]}")
        tail = "\n".join(log.strip().splitlines()[-25:])
        raise TinykdError(
            f"Building the firmware in {root} failed (make exit {r.returncode}). The last "
            f"compiler output:\n{tail}\nFix the error above (in generated model sources, "
            "regenerate them with `tinykd firmware --model MODEL.tflite`), then run the build again."
        )
    elf = root / "build" / "firmware.elf"
    text, data, bss = read_sizes(elf)
    res = BuildResult(
        elf=elf,
        text=text,
        data=data,
        bss=bss,
        flash_used=text + data,
        ram_used=data + bss,
        flash_budget=flash_budget,
        ram_budget=ram_budget,
        method="fitcheck" if fitcheck else "make",
        map_file=root / "build" / "firmware.map",
    )
    if fitcheck:
        res.notes.append(
            f"arduino-cli not found: sized the portable part with arm-none-eabi-gcc against a "
            f"stand-in port; budget = {board.name} limits ({board.flash_bytes} B flash, "
            f"{board.ram_bytes} B RAM) minus the Mbed OS + USB allowance "
            f"({board.mbed_flash_allowance} B flash, {board.mbed_ram_allowance} B RAM; see "
            f"{board.path.name})."
        )
    if not res.fits:
        raise _fit_error(board, res.flash_used, res.ram_used, flash_budget, ram_budget)
    return res


_SKETCH_USES = re.compile(r"Sketch uses ([\d,.]+) bytes.*?Maximum is ([\d,.]+) bytes")
_GLOBALS_USE = re.compile(r"Global variables use ([\d,.]+) bytes.*?Maximum is ([\d,.]+) bytes")


def _num(s: str) -> int:
    return int(re.sub(r"[,.]", "", s))


def _arduino(project: Project, cli: str) -> BuildResult:
    board = project.board
    out = project.root / "build"
    out.mkdir(parents=True, exist_ok=True)
    r = _run(
        [cli, "compile", "--fqbn", board.fqbn, "--output-dir", str(out), str(project.sketch_dir)],
        cwd=project.root,
        timeout=1800,
    )
    log = r.stdout + r.stderr
    su, gu = _SKETCH_USES.search(log), _GLOBALS_USE.search(log)
    if r.returncode != 0:
        if su and gu:
            raise _fit_error(
                board,
                _num(su.group(1)),
                _num(gu.group(1)),
                _num(su.group(2)),
                _num(gu.group(2)),
                " (Sizes include Mbed OS and the USB stack.)",
            )
        if re.search(r"region `?'?\w+'? overflowed|Sketch too big|not enough memory", log, re.I):
            raise _fit_error(
                board, None, None, board.flash_bytes, board.ram_bytes, f" arduino-cli said: {log.strip()[-400:]}"
            )
        tail = "\n".join(log.strip().splitlines()[-25:])
        hint = ""
        if "platform not installed" in log.lower() or "unknown fqbn" in log.lower():
            hint = f" Install the board core: `arduino-cli core install {board.fqbn.rsplit(':', 1)[0]}`."
        raise TinykdError(f"arduino-cli compile for {board.fqbn} failed:\n{tail}\n{hint}".rstrip())
    elf = out / f"{project.sketch_dir.name}.ino.elf"
    if elf.is_file() and shutil.which("arm-none-eabi-size"):
        text, data, bss = read_sizes(elf)
    elif su and gu:
        text, data, bss = _num(su.group(1)), 0, _num(gu.group(1))
    else:
        raise TinykdError(
            f"arduino-cli compiled the sketch but reported no sizes and {elf} "
            "is missing; cannot check the fit. Check the arduino-cli version."
        )
    flash_used = _num(su.group(1)) if su else text + data
    ram_used = _num(gu.group(1)) if gu else data + bss
    res = BuildResult(
        elf=elf if elf.is_file() else None,
        text=text,
        data=data,
        bss=bss,
        flash_used=flash_used,
        ram_used=ram_used,
        flash_budget=board.flash_bytes,
        ram_budget=board.ram_bytes,
        method="arduino-cli",
    )
    if not res.fits:
        raise _fit_error(board, flash_used, ram_used, board.flash_bytes, board.ram_bytes)
    return res


def build_project(project: Project | str | os.PathLike) -> BuildResult:
    """Compile the project and check that it fits the board (FirmwareTooLarge if not)."""
    from .project import Project

    if not isinstance(project, Project):
        project = Project.from_dir(project)
    if project.kind == "makefile":
        return _make(project)
    cli = shutil.which("arduino-cli")
    if cli and project.board.fqbn:
        return _arduino(project, cli)
    return _make(project)
