"""Boards as data: one TOML file per board in `boards/` (adding a board is adding a file).

`load_board("an386")` finds a board by name or alias; `list_boards()` lists them all.
The folder is `$TINYKD_BOARDS` when set, else `boards/` of the checkout or the installed copy
(see tinykd.resources).
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from tinykd.errors import TinykdError
from tinykd.resources import boards_dir

PROJECT_KINDS = ("makefile", "arduino")
FLASH_METHODS = ("qemu", "arduino-cli")
COUNTER_KINDS = ("systick-icount", "dwt")
DEFAULT_BOARD = "mps2-an386"


@dataclass(frozen=True)
class Board:
    name: str
    aliases: tuple[str, ...]
    description: str
    cpu: str  # gcc -mcpu value, e.g. "cortex-m4"
    fpu_flags: tuple[str, ...]  # e.g. ("-mfpu=fpv4-sp-d16", "-mfloat-abi=hard")
    clock_hz: int
    flash_bytes: int  # what the application may use
    ram_bytes: int
    project: str  # "makefile" | "arduino"
    flash_method: str  # "qemu" | "arduino-cli"
    port: str  # firmware/ports/<port>
    baud: int
    usb_vid: int
    usb_pids: tuple[int, ...]
    touch_1200: bool
    qemu_machine: str | None
    flash_origin: int
    ram_origin: int
    uart_base: int | None
    uart_rx_irq: int | None  # NVIC line of the UART's receive interrupt (None: poll)
    counter: str  # "systick-icount" | "dwt"
    systick_hz: int | None
    fqbn: str | None
    mbed_flash_allowance: int  # bytes of flash/RAM taken by the OS core (arduino boards)
    mbed_ram_allowance: int
    path: Path = field(compare=False)

    @property
    def is_qemu(self) -> bool:
        return self.flash_method == "qemu"

    @property
    def counter_unit(self) -> str:
        """What the device's counter counts: QEMU counts instructions, not time."""
        return "instructions" if self.counter == "systick-icount" else "cycles"

    @property
    def cflags(self) -> list[str]:
        return [f"-mcpu={self.cpu}", "-mthumb", *self.fpu_flags]


def _req(data: dict, key: str, path: Path, typ):
    if key not in data:
        raise TinykdError(
            f"Board file {path} has no `{key}`. Add it (see boards/mps2-an386.toml for a complete example)."
        )
    val = data[key]
    if not isinstance(val, typ):
        raise TinykdError(
            f"Board file {path}: `{key}` should be {typ.__name__}, got {val!r}. "
            "Fix the value (see boards/mps2-an386.toml)."
        )
    return val


def _parse(path: Path) -> Board:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as e:
        raise TinykdError(f"Board file {path} is not valid TOML ({e}). Fix the syntax.") from e
    project = _req(data, "project", path, str)
    method = _req(data, "flash_method", path, str)
    if project not in PROJECT_KINDS:
        raise TinykdError(f"Board file {path}: project = {project!r}; use one of {PROJECT_KINDS}.")
    if method not in FLASH_METHODS:
        raise TinykdError(f"Board file {path}: flash_method = {method!r}; use one of {FLASH_METHODS}.")
    serial = data.get("serial", {})
    mem = _req(data, "memory", path, dict)
    counter = data.get("counter", {})
    kind = counter.get("kind", "dwt")
    if kind not in COUNTER_KINDS:
        raise TinykdError(f"Board file {path}: counter.kind = {kind!r}; use one of {COUNTER_KINDS}.")
    qemu = data.get("qemu", {})
    if method == "qemu" and "machine" not in qemu:
        raise TinykdError(f"Board file {path} flashes with qemu but has no [qemu] machine. Add it.")
    uart = data.get("uart", {})
    if method == "qemu" and "base" not in uart:
        raise TinykdError(f"Board file {path} runs in QEMU but has no [uart] base. Add it.")
    if kind == "systick-icount" and "systick_hz" not in counter:
        raise TinykdError(f"Board file {path}: counter kind systick-icount needs counter.systick_hz.")
    allowance = data.get("mbed_allowance", {})
    return Board(
        name=_req(data, "name", path, str),
        aliases=tuple(data.get("aliases", [])),
        description=data.get("description", ""),
        cpu=_req(data, "cpu", path, str),
        fpu_flags=tuple(data.get("fpu_flags", [])),
        clock_hz=_req(data, "clock_hz", path, int),
        flash_bytes=_req(data, "flash_bytes", path, int),
        ram_bytes=_req(data, "ram_bytes", path, int),
        project=project,
        flash_method=method,
        port=_req(data, "port", path, str),
        baud=int(serial.get("baud", 115200)),
        usb_vid=int(serial.get("usb_vid", 0)),
        usb_pids=tuple(int(p) for p in serial.get("usb_pids", [])),
        touch_1200=bool(serial.get("touch_1200", False)),
        qemu_machine=qemu.get("machine"),
        flash_origin=_req(mem, "flash_origin", path, int),
        ram_origin=_req(mem, "ram_origin", path, int),
        uart_base=uart.get("base"),
        uart_rx_irq=uart.get("rx_irq"),
        counter=kind,
        systick_hz=counter.get("systick_hz"),
        fqbn=data.get("fqbn"),
        mbed_flash_allowance=int(allowance.get("flash_bytes", 0)),
        mbed_ram_allowance=int(allowance.get("ram_bytes", 0)),
        path=path,
    )


def list_boards() -> list[Board]:
    """All boards in the boards folder, sorted by name."""
    boards = [_parse(p) for p in sorted(boards_dir().glob("*.toml"))]
    return sorted(boards, key=lambda b: b.name)


def load_board(name_or_alias: str | Board | None = None) -> Board:
    """The board called `name_or_alias` (name or alias, case-insensitive); default mps2-an386."""
    if isinstance(name_or_alias, Board):
        return name_or_alias
    key = (name_or_alias or DEFAULT_BOARD).strip().lower()
    boards = list_boards()
    for b in boards:
        if key == b.name.lower() or key in (a.lower() for a in b.aliases):
            return b
    listing = ", ".join(f"{b.name} ({', '.join(b.aliases)})" if b.aliases else b.name for b in boards)
    raise TinykdError(
        f"Unknown board {name_or_alias!r}. Known boards (aliases in brackets): {listing}. "
        f"Pass one of these with --board, or add a file boards/<name>.toml ({boards_dir()})."
    )
