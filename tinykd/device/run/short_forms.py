"""The short forms: one Job over a link the caller opened (`run_inference`, `run_audio`), or
over QEMU instances started here (`run_inference_qemu`, `run_audio_qemu`), without a partial file.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from tinykd.boards import Board, load_board
from tinykd.device.link import DeviceLink
from tinykd.device.run.jobs import Job, audio_job, features_job
from tinykd.device.run.links import QemuLinks
from tinykd.device.run.stream import stream_job

try:
    from tqdm import tqdm
except ImportError:  # pragma: no cover - tqdm is a declared dependency
    tqdm = None


def _on_link(job: Job, link: DeviceLink, progress: bool, desc: str) -> tuple[np.ndarray, ...]:
    """One job over a link the caller opened, in the caller's thread."""
    if link.ser is None:
        link.open()
        link.connect()
    if link.info is None:
        link.hello()
    job.check(link.info)
    bar = tqdm(total=len(job.rows), desc=desc, unit=job.unit, leave=False) if progress and tqdm else None
    rows = []
    try:
        for row in job.rows:
            rows.append(job.infer(link, row))
            if bar is not None:
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    return tuple(np.array([r[j] for r in rows], dtype=dtype) for j, (_, dtype) in enumerate(job.columns))


def _on_qemu(job: Job, board, elf, instances, expected_sha256_hex, progress, timeout, time_limit):
    board = load_board(board)
    links = QemuLinks(board, Path(elf), instances, timeout, time_limit)
    done = stream_job(
        job,
        links,
        expected_sha256_hex=expected_sha256_hex,
        progress=progress,
        desc=f"{board.name} x{links.count(len(job.rows))}",
    )
    return tuple(done.columns[name] for name, _ in job.columns)


def run_inference(link: DeviceLink, x_int8: np.ndarray, *, progress: bool = True, desc: str = "device"):
    """Run each of the N inputs on the device. Returns (outputs int8 [N, out], counts int64 [N]);
    counts are instructions (QEMU) or cycles (hardware): see link.info.counter_name."""
    return _on_link(features_job(x_int8), link, progress, desc)


def run_audio(link: DeviceLink, audio: np.ndarray, *, progress: bool = True, desc: str = "device"):
    """Run each of N raw clips (int16 [N, 16000]) through the device's frontend and model.
    Returns (outputs int8 [N, out], features int8 [N, 490], model counts [N], frontend counts [N])."""
    return _on_link(audio_job(audio), link, progress, desc)


def _qemu_runner(make_job: Callable, doc: str) -> Callable:
    def run(
        board: str | Board,
        elf: str | os.PathLike,
        rows: np.ndarray,
        *,
        instances: int = 2,
        expected_sha256_hex: str | None = None,
        progress: bool = True,
        timeout: float = 5.0,
        time_limit: float = 3600.0,
    ):
        return _on_qemu(make_job(rows), board, elf, instances, expected_sha256_hex, progress, timeout, time_limit)

    run.__doc__ = doc
    return run


run_inference_qemu = _qemu_runner(
    features_job,
    """run_inference_qemu(board, elf, x_int8, *, instances=2, expected_sha256_hex=None, ...):
    spread N inputs over `instances` QEMU instances running `elf`; (outputs, counts) in input order.""",
)
run_audio_qemu = _qemu_runner(
    audio_job,
    """run_audio_qemu(board, elf, audio, *, instances=2, expected_sha256_hex=None, ...): spread N
    raw clips over `instances` QEMU instances; results in input order (see run_audio).""",
)
