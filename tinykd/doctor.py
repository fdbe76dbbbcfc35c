"""`tinykd doctor`: which tools, data and serial ports this machine has for tinykd: the build
tools, the flash tools (with the boards each flashes and what to install), the MNIST data, and
the serial ports with their USB ids matched to the boards' files."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass

from .errors import TinykdError

TOOLS = {
    "arm-none-eabi-gcc": "firmware builds (apt-get install gcc-arm-none-eabi libnewlib-arm-none-eabi)",
    "qemu-system-arm": "virtual boards (apt-get install qemu-system-arm)",
    "make": "firmware builds (apt-get install make)",
    "cc": "host builds of the C runtime and frontend (apt-get install gcc)",
    "espeak-ng": "synthetic keyword-spotting data (apt-get install espeak-ng)",
    "flite": "synthetic keyword-spotting data, second engine (apt-get install flite)",
    "festival": "synthetic keyword-spotting data, third engine (apt-get install festival festvox-kallpc16k)",
}
# The tools `tinykd flash` uses (tinykd.device.flash), with the boards that list each.
FLASH_TOOLS = ("arduino-cli", "openocd", "st-flash", "pyocd")


@dataclass
class Check:
    name: str
    ok: bool
    detail: str


def _version(tool: str) -> str:
    try:
        out = subprocess.run([tool, "--version"], capture_output=True, text=True, timeout=10)
        return (out.stdout or out.stderr).strip().splitlines()[0]
    except (OSError, subprocess.TimeoutExpired, IndexError):
        return "found"


def _flash_tool_checks(boards) -> list[Check]:
    from .device.flash import BOSSA_NOTE, INSTALL, core_install_command

    checks = []
    for tool in FLASH_TOOLS:
        users = ", ".join(b.name for b in boards if tool in b.flash_methods) or "no board yet"
        path = shutil.which(tool)
        if path:
            checks.append(Check(tool, True, f"{_version(tool)} (flashes {users})"))
            continue
        how = INSTALL[tool]
        if tool == "arduino-cli":
            commands = sorted({core_install_command(b) for b in boards if b.fqbn and tool in b.flash_methods})
            how += ", then its board cores: " + "; ".join(f"`{c}`" for c in commands) + ". " + BOSSA_NOTE
        checks.append(Check(tool, False, f"missing: flashes {users}; {how}"))
    bossac = shutil.which("bossac")
    if bossac:
        # Found on PATH (Debian's bossa-cli): say at once that it is no way to flash the Nano.
        arduino = ", ".join(b.name for b in boards if b.fqbn and b.fqbn.startswith("arduino:mbed"))
        checks.append(Check("bossac", False, f"{bossac}: not used for {arduino or 'Arduino boards'}. {BOSSA_NOTE}"))
    return checks


def _port_checks(boards) -> Check:
    """Serial ports with their USB ids and the boards those ids belong to."""
    from serial.tools import list_ports

    described = []
    for p in list_ports.comports():
        if not p.vid:
            described.append(p.device)
            continue
        exact = [b.name for b in boards if b.usb_vid == p.vid and p.pid in b.usb_pids]
        vendor = [b.name for b in boards if b.usb_vid == p.vid and b.name not in exact]
        names = ", ".join(exact) or (", ".join(vendor) + "?" if vendor else "no tinykd board")
        described.append(f"{p.device} ({p.vid:04x}:{p.pid:04x}: {names})")
    return Check("serial ports", bool(described), ", ".join(described) or "none (fine for QEMU boards)")


def run_checks(data_dir: str | None = None) -> list[Check]:
    from .boards import list_boards

    boards = [b for b in list_boards() if not b.is_qemu]
    checks = []
    for tool, purpose in TOOLS.items():
        path = shutil.which(tool)
        checks.append(Check(tool, bool(path), _version(tool) if path else f"missing: needed for {purpose}"))
    checks += _flash_tool_checks(boards)
    from .data import mnist

    try:
        checks.append(Check("MNIST data", True, str(mnist.locate(data_dir, download=False))))
    except TinykdError as exc:
        checks.append(Check("MNIST data", False, str(exc)))
    checks.append(_port_checks(boards))
    return checks
