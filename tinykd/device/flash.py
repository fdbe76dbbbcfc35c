"""Put a firmware on a board and say where to talk to it.

`flash(board, target, port=None)` returns a `Flashed` handle with the serial `url`:
  * QEMU boards: starts QEMU with the ELF, its serial on a free local TCP port or the one
    `port` names (the handle owns the process; close it, or use it as a context manager, to
    stop QEMU); `tinykd evaluate --port <url>` can then run on that emulator;
  * Arduino boards: `arduino-cli upload` of the sketch. The board's core does the 1200-baud
    touch (which drops the nRF52840 into its bootloader; the port may change name) and waits
    for the bootloader port; afterwards we wait until the sketch's port is back.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from tinykd.boards import Board, load_board
from tinykd.device.qemu import QemuInstance
from tinykd.errors import TinykdError
from tinykd.firmware.project import ARDUINO_CLI_HINT, BuildResult, Project, build_project


@dataclass
class Flashed:
    board: Board
    url: str
    qemu: QemuInstance | None = None

    def close(self) -> None:
        if self.qemu is not None:
            self.qemu.close()

    def __enter__(self) -> Flashed:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def find_ports(board: Board) -> list[str]:
    """Serial ports whose USB vendor id is the board's (board product ids first)."""
    from serial.tools import list_ports

    found = []
    for p in list_ports.comports():
        if board.usb_vid and p.vid == board.usb_vid:
            found.append((0 if p.pid in board.usb_pids else 1, p.device))
    return [dev for _, dev in sorted(found)]


def _elf_of(target) -> Path:
    if isinstance(target, BuildResult):
        if target.elf is None:
            raise TinykdError("This build has no ELF image to run. Rebuild the firmware.")
        return target.elf
    if isinstance(target, Project):
        return target.root / "build" / "firmware.elf"
    p = Path(target)
    if p.is_dir():
        return p / "build" / "firmware.elf"
    return p


def qemu_listen_port(port: str) -> int:
    """The local TCP port a QEMU board's serial should listen on, from --port: a number, or
    socket://127.0.0.1:N / socket://localhost:N (the address `tinykd evaluate --port` then takes)."""
    text = port.strip()
    for prefix in ("socket://127.0.0.1:", "socket://localhost:", "127.0.0.1:", "localhost:"):
        if text.startswith(prefix):
            text = text[len(prefix) :]
            break
    if not text.isdigit() or not 1024 <= int(text) <= 65535:
        raise TinykdError(
            f"--port {port!r} is not a port QEMU can listen on. For a QEMU board give a local TCP port: "
            "a number from 1024 to 65535 or socket://127.0.0.1:PORT (leave --port out and QEMU takes "
            "a free one; `tinykd flash` prints the address)."
        )
    return int(text)


def wait_for_port(board: Board, timeout: float, previous: str | None = None) -> str:
    """Wait until a port of the board shows up (the same name, or a new one)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ports = find_ports(board)
        if previous in ports:
            return previous
        if ports:
            return ports[0]
        time.sleep(0.25)
    raise TinykdError(
        f"The {board.name} did not come back as a serial port within {timeout:g} s after "
        "the upload. Unplug and replug it (double-tap reset to force the bootloader if "
        "needed), then pass the port with --port."
    )


def flash(
    board: str | Board, target, port: str | None = None, *, time_limit: float = 3600.0, port_timeout: float = 20.0
) -> Flashed:
    """Flash `target` (an ELF, a Project, a BuildResult or a project folder) onto `board`."""
    board = load_board(board)
    if board.flash_method == "qemu":
        elf = _elf_of(target)
        listen = qemu_listen_port(port) if port else None
        q = QemuInstance(board, elf, time_limit=time_limit, port=listen).start()
        return Flashed(board, q.url, q)

    cli = shutil.which("arduino-cli")
    if not cli:
        raise TinykdError(
            f"`arduino-cli` was not found on PATH; flashing the {board.name} needs it. {ARDUINO_CLI_HINT}"
        )
    project = (
        target
        if isinstance(target, Project)
        else Project.from_dir(target if Path(target).is_dir() else Path(target).parent)
    )
    if project.sketch_dir is None:
        raise TinykdError(
            f"{project.root} is not an Arduino project for {board.name}; generate the firmware for this board first."
        )
    if port is None:
        ports = find_ports(board)
        if not ports:
            raise TinykdError(
                f"No {board.name} found: no serial port with USB vendor id "
                f"0x{board.usb_vid:04x}. Plug the board in (a data cable, not charge-only), "
                "or pass the port with --port (`tinykd doctor` lists ports)."
            )
        port = ports[0]
    build_dir = project.root / "build"
    if not build_dir.is_dir():
        build_project(project)  # compile with arduino-cli (checks the fit too)
    cmd = [cli, "upload", "--fqbn", board.fqbn, "--port", port]
    if build_dir.is_dir():
        cmd += ["--input-dir", str(build_dir)]
    cmd.append(str(project.sketch_dir))
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    except subprocess.TimeoutExpired as e:
        raise TinykdError(
            f"arduino-cli upload to {port} took over 5 minutes and was stopped. "
            "Double-tap the board's reset button and try again."
        ) from e
    if r.returncode != 0:
        log = (r.stdout + r.stderr).strip()
        raise TinykdError(
            f"Uploading to the {board.name} on {port} failed:\n{log[-1200:]}\nCheck the port "
            "(it is busy if a serial monitor has it open), double-tap reset to enter the "
            "bootloader, and try again."
        )
    url = wait_for_port(board, port_timeout, previous=port)
    return Flashed(board, url)
