"""Accuracy measured on the device: stream int8 inputs over serial, compare with the host."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..boards import Board, load_board
from ..errors import TinykdError
from .flash import find_ports
from .link import DeviceLink
from .run import check_model_hash, run_audio, run_audio_qemu, run_inference, run_inference_qemu


@dataclass
class DeviceRun:
    board: str
    outputs: np.ndarray  # int8 [N, classes]
    counts: np.ndarray  # per inference: instructions (QEMU) or cycles (hardware)
    counter_unit: str
    seconds: float
    where: str  # "QEMU <machine> x<instances>" or the serial port

    def latency(self, clock_hz: int) -> dict:
        mean = float(self.counts.mean()) if len(self.counts) else 0.0
        result = {
            "unit": self.counter_unit,
            "mean": round(mean, 1),
            "min": int(self.counts.min()) if len(self.counts) else 0,
            "max": int(self.counts.max()) if len(self.counts) else 0,
        }
        if self.counter_unit == "cycles":
            result["mean_ms"] = round(1000.0 * mean / clock_hz, 3)
        else:
            result["note"] = (
                "QEMU counts executed instructions, not cycles: a real core takes "
                "more cycles than instructions (memory waits, multi-cycle ops)."
            )
        return result


def _on_board(
    board: Board,
    elf,
    n: int,
    *,
    expected_sha256: str,
    port: str | None,
    instances: int,
    on_qemu: Callable,
    on_link: Callable,
):
    """Run on a QEMU board (started here) or on hardware over its serial port, after checking
    that the device runs the model we expect. Returns (result, where, seconds)."""
    started = time.perf_counter()
    if board.is_qemu:
        if elf is None or not Path(elf).is_file():
            raise TinykdError(
                f"No firmware ELF for {board.name} at {elf}. Build it first (`tinykd build` or `tinykd firmware`)."
            )
        result = on_qemu(board, elf, instances=instances, expected_sha256_hex=expected_sha256)
        where = f"QEMU {board.qemu_machine} x{min(instances, n)}"
    else:
        where = port or _autodetect(board)
        with DeviceLink(where, baud=board.baud) as link:
            link.connect()
            link.hello()
            check_model_hash(link, expected_sha256)
            result = on_link(link)
    return result, where, round(time.perf_counter() - started, 2)


def run_on_device(
    board: str | Board,
    elf: str | Path | None,
    x_int8: np.ndarray,
    *,
    expected_sha256: str,
    port: str | None = None,
    instances: int = 2,
    progress: bool = True,
) -> DeviceRun:
    """Run every input on the board: QEMU instances for virtual boards, the serial port otherwise."""
    board = load_board(board)
    (outputs, counts), where, seconds = _on_board(
        board,
        elf,
        len(x_int8),
        expected_sha256=expected_sha256,
        port=port,
        instances=instances,
        on_qemu=lambda b, e, **kw: run_inference_qemu(b, e, x_int8, progress=progress, **kw),
        on_link=lambda link: run_inference(link, x_int8, progress=progress, desc=board.name),
    )
    return DeviceRun(board.name, outputs, counts, board.counter_unit, seconds, where)


@dataclass
class AudioDeviceRun(DeviceRun):
    """A run on raw audio: also the device's features and the frontend's counts."""

    features: np.ndarray = None  # int8 [N, 490]
    frontend_counts: np.ndarray = None  # per clip, same unit as counts

    def frontend_latency(self, clock_hz: int) -> dict:
        return DeviceRun(
            self.board, self.outputs, self.frontend_counts, self.counter_unit, self.seconds, self.where
        ).latency(clock_hz)


def run_audio_on_device(
    board: str | Board,
    elf: str | Path | None,
    audio: np.ndarray,
    *,
    expected_sha256: str,
    port: str | None = None,
    instances: int = 2,
    progress: bool = True,
) -> AudioDeviceRun:
    """Send raw int16 clips [N, 16000]; the board computes the features and runs the model."""
    board = load_board(board)
    (outputs, features, counts, fcounts), where, seconds = _on_board(
        board,
        elf,
        len(audio),
        expected_sha256=expected_sha256,
        port=port,
        instances=instances,
        on_qemu=lambda b, e, **kw: run_audio_qemu(b, e, audio, progress=progress, **kw),
        on_link=lambda link: run_audio(link, audio, progress=progress, desc=board.name),
    )
    return AudioDeviceRun(board.name, outputs, counts, board.counter_unit, seconds, where, features, fcounts)


def _autodetect(board: Board) -> str:
    ports = find_ports(board)
    if not ports:
        raise TinykdError(
            f"No {board.name} found on any serial port (USB vendor id 0x{board.usb_vid:04x}). "
            "Plug it in with a data cable and flash it (`tinykd flash`), or name the port with --port."
        )
    return ports[0]


def compare_with_host(device_outputs: np.ndarray, host_outputs: np.ndarray) -> dict:
    """How many samples' int8 outputs differ between device and host (must be 0 with our runtime)."""
    differing = np.any(device_outputs != host_outputs, axis=1)
    return {
        "mismatches": int(differing.sum()),
        "first_mismatches": [int(i) for i in np.flatnonzero(differing)[:10]],
        "max_difference": int(np.abs(device_outputs.astype(np.int16) - host_outputs.astype(np.int16)).max())
        if len(device_outputs)
        else 0,
    }


def random_inputs(n: int, input_bytes: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(-128, 128, size=(n, input_bytes), dtype=np.int16).astype(np.int8)
