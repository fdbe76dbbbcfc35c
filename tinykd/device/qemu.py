"""Run a firmware image on a QEMU board, its UART on a local TCP socket.

    with QemuInstance(board, "build/firmware.elf") as q:
        link = DeviceLink(q.url)          # socket://127.0.0.1:<port>

QEMU runs with `-icount shift=0` (deterministic: one instruction = 1 ns of virtual time, so
the firmware's SysTick counter counts instructions), semihosting on (so the firmware can
exit with a status), `-monitor none` and `-nographic`. Each instance lives in its own process
group, is killed with the group on exit/close, and has a host-side time limit after which a
watchdog kills it (and coreutils `timeout` a little later, should the owner die without
cleaning up), so no QEMU outlives its owner. Several instances can run side by side.
"""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import threading
import time
import weakref
from pathlib import Path

from tinykd.boards import Board, load_board
from tinykd.errors import TinykdError

QEMU_BINARY = "qemu-system-arm"
QEMU_HINT = (
    "Install QEMU's Arm system emulator: on Debian/Ubuntu `sudo apt-get install "
    "qemu-system-arm`, on macOS `brew install qemu`."
)
DEFAULT_TIME_LIMIT = 3600.0

_live: weakref.WeakSet[QemuInstance] = weakref.WeakSet()


def _kill_all_live() -> None:
    for q in list(_live):
        q.stop()


atexit.register(_kill_all_live)


def free_tcp_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def qemu_command(board: Board, elf: Path, port: int, *, icount_shift: int = 0) -> list[str]:
    exe = shutil.which(QEMU_BINARY)
    if not exe:
        raise TinykdError(
            f"`{QEMU_BINARY}` was not found on PATH; the virtual board {board.name} needs it. {QEMU_HINT}"
        )
    return [
        exe,
        "-M",
        board.qemu_machine,
        "-nographic",
        "-monitor",
        "none",
        "-icount",
        f"shift={icount_shift}",
        "-semihosting-config",
        "enable=on,target=native",
        "-kernel",
        str(elf),
        "-serial",
        f"tcp:127.0.0.1:{port},server=on,wait=off,nodelay=on",
    ]


def check_elf_for_board(elf: Path, board: Board) -> None:
    """Refuse images QEMU would run as garbage: not a 32-bit ARM ELF, or linked for another
    board's memory map (its vector table must sit at the board's code origin)."""
    head = elf.read_bytes()[:52]
    if len(head) < 52 or head[:4] != b"\x7fELF" or head[4] != 1 or head[5] != 1:
        raise TinykdError(
            f"{elf} is not a 32-bit little-endian ELF image. Pass the build/firmware.elf of a tinykd firmware project."
        )
    machine = struct.unpack_from("<H", head, 18)[0]
    if machine != 40:  # EM_ARM
        raise TinykdError(
            f"{elf} is an ELF for machine {machine}, not ARM. Build the "
            f"firmware for {board.name} with `tinykd firmware`."
        )
    (phoff,) = struct.unpack_from("<I", head, 28)
    phentsize, phnum = struct.unpack_from("<HH", head, 42)
    data = elf.read_bytes()
    loads = []
    for i in range(phnum):
        p_type, _off, _vaddr, paddr, filesz = struct.unpack_from("<IIIII", data, phoff + i * phentsize)
        if p_type == 1 and filesz:  # PT_LOAD
            loads.append(paddr)
    if not loads or min(loads) != board.flash_origin:
        where = f"0x{min(loads):08x}" if loads else "nowhere"
        raise TinykdError(
            f"{elf} loads at {where}, but {board.name} boots from 0x{board.flash_origin:08x}: "
            f"the image was built for another board. Rebuild it for {board.name} "
            f"(`tinykd firmware --board {board.name}`)."
        )


class QemuInstance:
    """One QEMU process running `elf` on `board`; serial at `self.url`."""

    def __init__(
        self,
        board: str | Board,
        elf: str | os.PathLike,
        *,
        time_limit: float = DEFAULT_TIME_LIMIT,
        icount_shift: int = 0,
        cancel: threading.Event | None = None,
        port: int | None = None,
    ):
        self.board = load_board(board)
        if not self.board.is_qemu:
            raise TinykdError(
                f"Board {self.board.name} is real hardware, not a QEMU board; flash it with `tinykd flash` instead."
            )
        self.elf = Path(elf)
        if not self.elf.is_file():
            raise TinykdError(f"Firmware image {self.elf} does not exist. Build it first (`tinykd firmware`).")
        check_elf_for_board(self.elf, self.board)
        self.time_limit = time_limit
        self.icount_shift = icount_shift
        self.cancel = cancel  # set: start() gives up at once (LinkCancelled)
        self.fixed_port = port  # listen on this port instead of a free one
        self.port: int | None = None
        self.proc: subprocess.Popen | None = None
        self._log = None
        self._watchdog: threading.Timer | None = None
        self.timed_out = False

    @property
    def url(self) -> str:
        if self.port is None:
            raise RuntimeError("QEMU instance not started")
        return f"socket://127.0.0.1:{self.port}"

    def start(self) -> QemuInstance:
        last_log = ""
        for _attempt in range(1 if self.fixed_port else 3):
            self.port = self.fixed_port or free_tcp_port()
            cmd = qemu_command(self.board, self.elf, self.port, icount_shift=self.icount_shift)
            timeout_exe = shutil.which("timeout")
            if timeout_exe:
                # A second, independent time limit: coreutils' timeout kills QEMU even if
                # this Python process dies without running its clean-up (e.g. SIGKILL).
                cmd = [timeout_exe, "-s", "KILL", f"{self.time_limit + 30:.0f}", *cmd]
            self._log = tempfile.TemporaryFile(prefix="tinykd-qemu-")
            self.proc = subprocess.Popen(
                cmd, stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True
            )
            _live.add(self)
            self._watchdog = threading.Timer(self.time_limit, self._expire)
            self._watchdog.daemon = True
            self._watchdog.start()
            if self._wait_listening(10.0):
                return self
            last_log = self.log_text()
            self.stop()
            if self.cancel is not None and self.cancel.is_set():
                from tinykd.device.link import LinkCancelled

                raise LinkCancelled()
            if "Address already in use" not in last_log:
                break
        if self.fixed_port and "Address already in use" in last_log:
            raise TinykdError(
                f"QEMU cannot listen on port {self.fixed_port}: something else uses it. Pass "
                "another --port, or leave --port out and QEMU takes a free one."
            )
        raise TinykdError(
            f"QEMU did not start board {self.board.name} with {self.elf} (its serial socket "
            f"never opened). QEMU said: {last_log.strip()[-500:] or '(nothing)'}. Check that "
            "the ELF was built for this board and that qemu-system-arm works "
            f"(`{QEMU_BINARY} -M {self.board.qemu_machine} -nographic -monitor none`)."
        )

    def _wait_listening(self, timeout: float) -> bool:
        """True once QEMU listens on the port. Checks the kernel's socket table, so it does
        not open a connection (which QEMU would take as the serial client)."""
        deadline = time.monotonic() + timeout
        want = f":{self.port:04X}"
        while time.monotonic() < deadline:
            if self.proc.poll() is not None or (self.cancel is not None and self.cancel.is_set()):
                return False
            try:
                with open("/proc/net/tcp") as f:
                    for line in f.readlines()[1:]:
                        parts = line.split()
                        if parts[1].endswith(want) and parts[3] == "0A":  # LISTEN
                            return True
            except OSError:
                time.sleep(0.3)  # no /proc (not Linux): give QEMU a moment instead
                return self.proc.poll() is None
            time.sleep(0.02)
        return False

    def _expire(self) -> None:
        self.timed_out = True
        self.stop()

    def log_text(self) -> str:
        if self._log is None:
            return ""
        try:
            self._log.flush()
            self._log.seek(0)
            return self._log.read().decode(errors="replace")
        except (OSError, ValueError):
            return ""

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def wait(self, timeout: float) -> int | None:
        """Wait for QEMU to exit (e.g. semihosting exit); its status, or None on timeout."""
        if self.proc is None:
            return None
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self) -> None:
        """Kill QEMU's whole process group and reap it."""
        if self._watchdog is not None:
            self._watchdog.cancel()
        p = self.proc
        if p is not None and p.poll() is None:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                pass
        _live.discard(self)

    def close(self) -> None:
        self.stop()
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> QemuInstance:
        return self.start() if self.proc is None else self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self):
        try:
            self.stop()
        except Exception:
            pass
