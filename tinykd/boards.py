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
# How an image reaches the board. A board file names its preferred method and, in
# `flash_fallbacks`, the others that work for it; `tinykd flash` uses the first one installed.
FLASH_METHODS = ("qemu", "arduino-cli", "openocd", "st-flash", "pyocd", "mass-storage")
# What the firmware's latency counter counts: instructions under QEMU (SysTick on -icount
# virtual time), CPU cycles on hardware (DWT->CYCCNT on v7-M/v8-M; SysTick on M0/M0+,
# which have no DWT cycle counter).
COUNTER_KINDS = ("systick-icount", "dwt", "systick")
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
    flash_fallbacks: tuple[str, ...] = ()
    # Tool-specific settings from the [flash] table (openocd config files, pyocd target,
    # mass-storage volume label, ...): read by tinykd.device.flash.
    flash_options: dict = field(default_factory=dict, compare=False)
    # Extra `#define NAME VALUE` lines for tkd_board.h from the [defines] table: the
    # port's instance choices (which USART, which pins) live in the board file, not the C.
    defines: dict = field(default_factory=dict, compare=False)
    emulated_by: str | None = None  # a QEMU board that runs this board's port (tests, CI)
    price_usd: float | None = None  # unit price; None for virtual boards
    price_source: str = ""
    price_date: str = ""
    stack_bytes: int | None = None  # main stack reserved by the linker script; None: the default

    @property
    def app_flash_bytes(self) -> int:
        """Flash our firmware may use: the board's, less what an OS core takes (Arduino Mbed boards)."""
        return self.flash_bytes - self.mbed_flash_allowance

    @property
    def app_ram_bytes(self) -> int:
        return self.ram_bytes - self.mbed_ram_allowance

    @property
    def flash_methods(self) -> tuple[str, ...]:
        """The ways to put an image on this board, preferred first."""
        return (self.flash_method, *(m for m in self.flash_fallbacks if m != self.flash_method))

    @property
    def core(self) -> str:
        """The core family as datasheets name it: cortex-m4f for an M4 with its FPU, else the -mcpu."""
        has_fpu = any(f.startswith("-mfpu=") for f in self.fpu_flags)
        if self.cpu in ("cortex-m4", "cortex-m7") and has_fpu:
            return self.cpu + "f"
        return self.cpu

    @property
    def has_dsp(self) -> bool:
        """Whether the core has the Armv7E-M/v8-M DSP extension the runtime's fast kernels use."""
        return self.cpu in ("cortex-m4", "cortex-m7", "cortex-m33", "cortex-m35p", "cortex-m55", "cortex-m85")

    @property
    def is_qemu(self) -> bool:
        return self.flash_method == "qemu"

    @property
    def counter_unit(self) -> str:
        """What the device's counter counts: QEMU counts instructions, not time."""
        return "instructions" if self.counter == "systick-icount" else "cycles"

    @property
    def is_virtual(self) -> bool:
        """A board that exists only in QEMU (nothing to buy)."""
        return self.is_qemu and self.price_usd is None

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
    fallbacks = tuple(data.get("flash_fallbacks", []))
    for m in (method, *fallbacks):
        if m not in FLASH_METHODS:
            raise TinykdError(f"Board file {path}: flash method {m!r} is not known; use one of {FLASH_METHODS}.")
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
    price = data.get("price", {})
    if price and not isinstance(price.get("usd"), (int, float)):
        raise TinykdError(f"Board file {path}: [price] needs `usd`, a number (the unit price in US dollars).")
    if price and not (price.get("source") and price.get("date")):
        raise TinykdError(f"Board file {path}: [price] needs `source` (where the price was read) and `date` (when).")
    defines = data.get("defines", {})
    for key in defines:
        if not key.isidentifier() or not key.isupper():
            raise TinykdError(f"Board file {path}: [defines] key {key!r} is not an upper-case C identifier.")
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
        flash_fallbacks=fallbacks,
        flash_options=dict(data.get("flash", {})),
        defines=dict(defines),
        emulated_by=data.get("emulated_by"),
        price_usd=float(price["usd"]) if price else None,
        price_source=price.get("source", ""),
        price_date=str(price.get("date", "")),
        stack_bytes=mem.get("stack_bytes"),
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
