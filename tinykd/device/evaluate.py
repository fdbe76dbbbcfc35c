"""Accuracy measured on the device: stream int8 inputs (or raw clips) over serial, compare with the host."""

from __future__ import annotations

import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..boards import Board, load_board
from ..errors import TinykdError
from .flash import find_ports
from .run import PartialResults, PortLinks, QemuLinks, audio_job, features_job, file_digest, inputs_digest, stream_job

if TYPE_CHECKING:
    from ..trials.session import RayOptions

PARTIAL_NAME = "device_partial.npz"  # the verified results of an interrupted run, beside its output


@dataclass
class DeviceRun:
    board: str
    outputs: np.ndarray  # int8 [N, classes]
    counts: np.ndarray  # per inference: instructions (QEMU) or cycles (hardware)
    counter_unit: str
    seconds: float
    where: str  # "QEMU <machine> x<instances>" or the serial port
    features: np.ndarray | None = None  # raw-audio runs: the device's int8 features [N, 490]
    frontend_counts: np.ndarray | None = None  # raw-audio runs: the frontend's counts
    link: dict = field(default_factory=dict)  # retries, reconnects, resets; results resumed

    @staticmethod
    def _latency(counts: np.ndarray, unit: str, clock_hz: int) -> dict:
        mean = float(counts.mean()) if len(counts) else 0.0
        result = {
            "unit": unit,
            "mean": round(mean, 1),
            "min": int(counts.min()) if len(counts) else 0,
            "max": int(counts.max()) if len(counts) else 0,
        }
        if unit == "cycles":
            result["mean_ms"] = round(1000.0 * mean / clock_hz, 3)
        else:
            result["lower_bound_ms"] = round(1000.0 * mean / clock_hz, 3)
            result["note"] = (
                "QEMU counts executed instructions, not cycles: a real core takes "
                "more cycles than instructions (memory waits, multi-cycle ops)."
            )
        return result

    def latency(self, clock_hz: int) -> dict:
        return self._latency(self.counts, self.counter_unit, clock_hz)

    def frontend_latency(self, clock_hz: int) -> dict:
        return self._latency(self.frontend_counts, self.counter_unit, clock_hz)


def run_on_device(
    board: str | Board,
    elf: str | Path | None,
    inputs: np.ndarray,
    *,
    expected_sha256: str,
    port: str | None = None,
    instances: int = 2,
    progress: bool = True,
    raw_audio: bool = False,
    partial: str | os.PathLike | None = None,
    farm: RayOptions | None = None,
) -> DeviceRun:
    """Run every input on the board and return outputs and counts in input order.

    inputs: int8 model inputs [N, ...], or with raw_audio int16 clips [N, 16000] (the device
    computes the features: they come back in DeviceRun.features).
    Where: `port` when given (a board's serial port; for a QEMU board an emulator already
    running there, e.g. socket://127.0.0.1:PORT from `tinykd flash`), else QEMU instances
    started here for virtual boards, else the board's autodetected port. The device must run
    the model whose SHA-256 is `expected_sha256`.
    partial: a file for the verified results; after an interruption (Ctrl-C, a lost device)
    the same call resumes from it. The caller removes it (remove_partial) once the final
    results are written.
    farm: stream over a Ray device farm (one actor per QEMU instance or board, on every node of
    the cluster these RayOptions join, or on Ray embedded here); the results are the same."""
    board = load_board(board)
    job = audio_job(inputs) if raw_audio else features_job(inputs)
    if farm is not None:
        if port:
            raise TinykdError("A device farm finds its devices itself: give --port or the farm options, not both.")
        from tinykd.device.run.farm import FarmLinks
        from tinykd.trials import ray_session

        ray_dir = Path(partial).parent if partial is not None else Path(tempfile.gettempdir())
        with ray_session(farm, ray_dir):
            return _stream(
                board,
                job,
                FarmLinks(board, Path(elf) if elf else None, instances),
                elf,
                expected_sha256,
                partial,
                progress,
            )
    return _stream(board, job, device_links(board, elf, port, instances), elf, expected_sha256, partial, progress)


def _stream(board: Board, job, links, elf, expected_sha256: str, partial, progress: bool) -> DeviceRun:
    key = {
        "format": 1,
        "kind": job.kind,
        "board": board.name,
        "model_sha256": expected_sha256,
        "firmware_sha256": file_digest(elf),
        "inputs_sha256": inputs_digest(job.rows),
    }
    done = stream_job(
        job,
        links,
        expected_sha256_hex=expected_sha256,
        partial=PartialResults(partial, key),
        progress=progress,
        desc=board.name,
    )
    c = done.columns
    return DeviceRun(
        board.name,
        c["outputs"],
        c["counts"],
        board.counter_unit,
        done.seconds,
        done.where,
        c.get("features"),
        c.get("frontend_counts"),
        {**asdict(done.stats), "resumed": done.resumed, "streamed": done.streamed},
    )


def device_links(board: Board, elf: str | Path | None, port: str | None, instances: int = 2):
    """Where a run talks to the board: `port` when given (a board's serial port, or an emulator
    already running there), else QEMU instances started here for virtual boards, else the
    board's autodetected port."""
    if port:
        return PortLinks(port, baud=board.baud)
    if board.is_qemu:
        if elf is None or not Path(elf).is_file():
            raise TinykdError(
                f"No firmware ELF for {board.name} at {elf}. Build it first (`tinykd build` or `tinykd firmware`)."
            )
        return QemuLinks(board, Path(elf), instances)
    return PortLinks(_autodetect(board), baud=board.baud)


def remove_partial(partial: str | os.PathLike) -> None:
    """Drop the partial results once the run's final output is written."""
    Path(partial).unlink(missing_ok=True)


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
