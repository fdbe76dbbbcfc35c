"""Run many inferences on a device and collect int8 outputs and counts.

`run_inference(link, x)` streams N inputs through one link. `run_inference_qemu(board, elf,
x, instances=K)` shards them over K QEMU instances side by side (the modelled UART moves only
~10-40 KB/s, so one instance is the bottleneck) and merges the results in input order.
`run_audio` / `run_audio_qemu` do the same with raw KWS clips (INFER_AUDIO): the device
computes the features itself and returns them with its output.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from tinykd.boards import Board, load_board
from tinykd.device.link import DeviceLink
from tinykd.device.qemu import QemuInstance
from tinykd.errors import TinykdError

try:
    from tqdm import tqdm
except ImportError:  # pragma: no cover - tqdm is a declared dependency
    tqdm = None


class _ShardStopped(TinykdError):
    """A shard that stopped because another one failed (not the error to report)."""


def check_model_hash(link: DeviceLink, expected_sha256_hex: str) -> None:
    """Refuse to evaluate when the device runs another model than the host's .tflite.

    The device reports the first 8 bytes of the SHA-256 of the .tflite it was built from.
    """
    try:
        expected = bytes.fromhex(expected_sha256_hex.strip())
    except ValueError as e:
        raise TinykdError(
            f"{expected_sha256_hex!r} is not a hex SHA-256 digest. Pass the "
            "sha256 of the model_int8.tflite file (64 hex digits)."
        ) from e
    if len(expected) < 8:
        raise TinykdError(
            f"The expected model hash {expected_sha256_hex!r} is shorter than "
            "8 bytes. Pass the full SHA-256 of model_int8.tflite."
        )
    info = link.info or link.hello()
    if info.model_hash != expected[:8]:
        raise TinykdError(
            f"The device at {link.url} runs model {info.model_name!r} with hash "
            f"{info.model_hash.hex()}, but the host model's hash starts with "
            f"{expected[:8].hex()}: the firmware was built from a different .tflite. Rebuild "
            "the firmware from this model (`tinykd firmware`) and flash it (`tinykd flash`)."
        )


def _as_inputs(x: np.ndarray, input_bytes: int | None) -> np.ndarray:
    x = np.asarray(x)
    if x.dtype != np.int8:
        raise TinykdError(
            f"Device inputs must be int8 (quantised with the model's input scale "
            f"and zero point); got dtype {x.dtype}. Quantise them first."
        )
    if x.ndim < 1 or x.shape[0] == 0:
        raise TinykdError("No inputs to run: pass an array of shape [N, ...] with N >= 1.")
    x = x.reshape(x.shape[0], -1)
    if input_bytes is not None and x.shape[1] != input_bytes:
        raise TinykdError(
            f"Each input has {x.shape[1]} values, but the model on the device "
            f"takes {input_bytes}. The device runs another model, or the inputs "
            "are shaped for another task."
        )
    return x


def _device_info(link: DeviceLink):
    """The device's INFO, opening and greeting the link first if nobody has."""
    if link.ser is None:
        link.open()
        link.connect()
    return link.info or link.hello()


def _stream(items, infer, *, progress: bool, desc: str, unit: str, bar) -> list[tuple]:
    """infer(item) for each item in order, with a progress bar (`bar`, the sharded runs' shared
    one, or our own); returns the rows infer gave."""
    own_bar = bar is None and progress and tqdm is not None
    if own_bar:
        bar = tqdm(total=len(items), desc=desc, unit=unit, leave=False)
    rows = []
    try:
        for item in items:
            rows.append(infer(item))
            if bar is not None:
                bar.update(1)
    finally:
        if own_bar:
            bar.close()
    return rows


def _columns(rows: list[tuple], dtypes) -> tuple[np.ndarray, ...]:
    return tuple(np.array([row[j] for row in rows], dtype=dtype) for j, dtype in enumerate(dtypes))


def run_inference(
    link: DeviceLink, x_int8: np.ndarray, *, progress: bool = True, desc: str = "device", _bar=None
) -> tuple[np.ndarray, np.ndarray]:
    """Run each of the N inputs on the device. Returns (outputs int8 [N, out], counts int64 [N]);
    counts are instructions (QEMU) or cycles (hardware): see link.info.counter_name."""
    info = _device_info(link)
    x = _as_inputs(x_int8, info.input_bytes)

    def infer(row):
        res = link.infer(row.tobytes())
        if len(res.output) != info.output_bytes:
            raise TinykdError(
                f"The device returned {len(res.output)} output values, its "
                f"INFO said {info.output_bytes}. Re-flash the firmware."
            )
        return np.frombuffer(res.output, dtype=np.int8), res.count

    rows = _stream(x, infer, progress=progress, desc=desc, unit="inf", bar=_bar)
    return _columns(rows, (np.int8, np.int64))


def run_inference_qemu(
    board: str | Board,
    elf: str | os.PathLike,
    x_int8: np.ndarray,
    *,
    instances: int = 2,
    expected_sha256_hex: str | None = None,
    progress: bool = True,
    timeout: float = 5.0,
    time_limit: float = 3600.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Shard N inputs over `instances` QEMU instances running `elf`; merge in order."""
    x = _as_inputs(x_int8, None)
    return _run_sharded(
        board,
        elf,
        x,
        lambda link, part, bar: run_inference(link, part, progress=False, _bar=bar),
        instances=instances,
        expected_sha256_hex=expected_sha256_hex,
        progress=progress,
        timeout=timeout,
        time_limit=time_limit,
    )


def _as_audio(audio: np.ndarray) -> np.ndarray:
    a = np.asarray(audio)
    if a.ndim == 1:
        a = a[None]
    if a.ndim != 2 or a.shape[0] == 0 or a.shape[1] != 16000:
        raise TinykdError(
            f"Audio for the device must be clips of 16000 int16 samples, shape "
            f"[N, 16000] with N >= 1; got shape {a.shape}. Pad or trim the clips "
            "(tinykd.data.kws.speech_commands.fit_length)."
        )
    if a.dtype != np.int16:
        raise TinykdError(
            f"Audio for the device must be int16 PCM; got dtype {a.dtype}. Convert "
            "float audio with np.round(x * 32768).clip(-32768, 32767).astype(np.int16)."
        )
    return a


def check_audio_support(info) -> None:
    """Refuse, with what to do, a device whose model does not take the KWS frontend's features."""
    from tinykd.data.kws import frontend

    want = frontend.NUM_FRAMES * frontend.NUM_MFCC
    if (
        info.input_bytes != want
        or abs(info.input_scale - frontend.SCALE) > 0
        or info.input_zero_point != frontend.ZERO_POINT
    ):
        raise TinykdError(
            f"The model on the device takes {info.input_bytes} int8 inputs with scale "
            f"{info.input_scale:g} and zero point {info.input_zero_point}, not the keyword-spotting "
            f"frontend's {want} features with scale {frontend.SCALE:g} and zero point "
            f"{frontend.ZERO_POINT}, so it cannot run on raw audio. Build the firmware from a KWS "
            "model (tinykd build --task kws), or send features with INFER instead."
        )


def run_audio(
    link: DeviceLink, audio: np.ndarray, *, progress: bool = True, desc: str = "device", _bar=None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Run each of N raw clips (int16 [N, 16000]) through the device's frontend and model.
    Returns (outputs int8 [N, out], features int8 [N, 490], model counts [N], frontend counts [N])."""
    info = _device_info(link)
    check_audio_support(info)
    a = _as_audio(audio)

    def infer(clip):
        res = link.infer_audio(clip)
        if len(res.output) != info.output_bytes or len(res.features) != info.input_bytes:
            raise TinykdError(
                f"The device returned {len(res.output)} output values and "
                f"{len(res.features)} features; its INFO said {info.output_bytes} "
                f"and {info.input_bytes}. Re-flash the firmware."
            )
        output, features = np.frombuffer(res.output, dtype=np.int8), np.frombuffer(res.features, dtype=np.int8)
        return output, features, res.model_count, res.frontend_count

    rows = _stream(a, infer, progress=progress, desc=desc, unit="clip", bar=_bar)
    return _columns(rows, (np.int8, np.int8, np.int64, np.int64))


def run_audio_qemu(
    board: str | Board,
    elf: str | os.PathLike,
    audio: np.ndarray,
    *,
    instances: int = 2,
    expected_sha256_hex: str | None = None,
    progress: bool = True,
    timeout: float = 5.0,
    time_limit: float = 3600.0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Shard N raw clips over `instances` QEMU instances; merge in order (see run_audio)."""
    a = _as_audio(audio)
    return _run_sharded(
        board,
        elf,
        a,
        lambda link, part, bar: run_audio(link, part, progress=False, _bar=bar),
        instances=instances,
        expected_sha256_hex=expected_sha256_hex,
        progress=progress,
        timeout=timeout,
        time_limit=time_limit,
    )


def _run_sharded(
    board,
    elf,
    x: np.ndarray,
    work,
    *,
    instances: int,
    expected_sha256_hex: str | None,
    progress: bool,
    timeout: float,
    time_limit: float,
) -> tuple[np.ndarray, ...]:
    """Split the rows of x over QEMU instances; work(link, rows, bar) returns a tuple of
    arrays with one row per input; concatenate them in input order."""
    board = load_board(board)
    elf = Path(elf)
    n = x.shape[0]
    k = max(1, min(int(instances), n))
    bounds = [(i * n // k, (i + 1) * n // k) for i in range(k)]
    bar = tqdm(total=n, desc=f"{board.name} x{k}", unit="inf") if progress and tqdm else None
    lock = threading.Lock()
    failed = threading.Event()  # one shard failed: the others stop at their next input

    class _LockedBar:
        def update(self, m):
            if failed.is_set():
                raise _ShardStopped("stopped because another QEMU shard failed")
            if bar is not None:
                with lock:
                    bar.update(m)

    def shard(lo_hi):
        lo, hi = lo_hi
        try:
            with QemuInstance(board, elf, time_limit=time_limit) as q, DeviceLink(q.url, timeout=timeout) as link:
                link.connect()
                link.hello()
                if expected_sha256_hex:
                    check_model_hash(link, expected_sha256_hex)
                return work(link, x[lo:hi], _LockedBar())
        except BaseException:
            failed.set()
            raise

    try:
        with ThreadPoolExecutor(max_workers=k) as pool:
            futures = [pool.submit(shard, b) for b in bounds]
            errors = [f.exception() for f in futures]
        real = [e for e in errors if e is not None and not isinstance(e, _ShardStopped)]
        if real or any(errors):
            raise (real or [e for e in errors if e is not None])[0]
        parts = [f.result() for f in futures]
    finally:
        if bar is not None:
            bar.close()
    return tuple(np.concatenate([p[j] for p in parts]) for j in range(len(parts[0])))
