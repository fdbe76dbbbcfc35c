"""`tinykd doctor`: which tools, data and serial ports this machine has for tinykd."""

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
    "arduino-cli": "Nano 33 BLE compile and upload (see arduino.github.io/arduino-cli)",
}


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


def run_checks(data_dir: str | None = None) -> list[Check]:
    checks = []
    for tool, purpose in TOOLS.items():
        path = shutil.which(tool)
        checks.append(Check(tool, bool(path), _version(tool) if path else f"missing: needed for {purpose}"))
    from .data import mnist

    try:
        checks.append(Check("MNIST data", True, str(mnist.locate(data_dir, download=False))))
    except TinykdError as exc:
        checks.append(Check("MNIST data", False, str(exc)))
    from serial.tools import list_ports

    ports = [f"{p.device} ({p.vid:04x}:{p.pid:04x})" if p.vid else p.device for p in list_ports.comports()]
    checks.append(Check("serial ports", bool(ports), ", ".join(ports) or "none (fine for QEMU boards)"))
    return checks
