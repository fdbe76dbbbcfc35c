"""Where a run's links come from (QEMU instances started here, or one serial port), and what
the links had to do again over the run.
"""

from __future__ import annotations

import contextlib
import threading
from dataclasses import dataclass
from pathlib import Path

from tinykd.boards import Board
from tinykd.device.link import DeviceLink
from tinykd.device.qemu import QemuInstance


@dataclass
class QemuLinks:
    """`instances` QEMU instances running `elf` on `board`, one link each."""

    board: Board
    elf: Path
    instances: int = 2
    timeout: float = 5.0
    time_limit: float = 3600.0

    def count(self, n: int) -> int:
        return max(1, min(int(self.instances), n))

    @contextlib.contextmanager
    def open(self, cancel: threading.Event, started: list):
        with QemuInstance(self.board, self.elf, time_limit=self.time_limit, cancel=cancel) as q:
            started.append(q)
            with DeviceLink(q.url, timeout=self.timeout, cancel=cancel) as link:
                yield link

    def where(self, n: int) -> str:
        return f"QEMU {self.board.qemu_machine} x{self.count(n)}"


@dataclass
class PortLinks:
    """One serial port: a board, a pty, or the socket of an emulator started elsewhere."""

    url: str
    baud: int = 115200
    timeout: float = 5.0

    def count(self, n: int) -> int:
        return 1

    @contextlib.contextmanager
    def open(self, cancel: threading.Event, started: list):
        with DeviceLink(self.url, baud=self.baud, timeout=self.timeout, cancel=cancel) as link:
            yield link

    def where(self, n: int) -> str:
        return self.url


@dataclass
class LinkStats:
    """What the links had to do again over a run (see DeviceLink)."""

    inferences_retried: int = 0  # inferences that needed any of the below
    resends: int = 0
    reconnects: int = 0
    resets: int = 0
    rejected_results: int = 0

    def add(self, link: DeviceLink) -> None:
        self.resends += link.resends
        self.reconnects += link.reconnects
        self.resets += link.resets
        self.rejected_results += link.rejected
