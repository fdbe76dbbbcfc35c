"""What one inference sends and returns (`Job`: int8 inputs with INFER, raw KWS clips with
INFER_AUDIO), the checks of the rows, and the checks that the device runs a model they fit.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from tinykd.device.link import DeviceLink
from tinykd.errors import TinykdError


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


@dataclass(frozen=True)
class Job:
    """What one inference sends and returns. `infer(link, row)` gives one value per column."""

    kind: str  # "features" (INFER) or "audio" (INFER_AUDIO)
    rows: np.ndarray
    columns: tuple[tuple[str, type], ...]
    infer: Callable
    check: Callable  # check(info): refuse a device whose model does not fit the rows
    unit: str


def _infer_features(link: DeviceLink, row: np.ndarray) -> tuple:
    info = link.info
    res = link.infer(row.tobytes())
    if len(res.output) != info.output_bytes:
        raise TinykdError(
            f"The device returned {len(res.output)} output values, its "
            f"INFO said {info.output_bytes}. Re-flash the firmware."
        )
    return np.frombuffer(res.output, dtype=np.int8), res.count


def _infer_audio(link: DeviceLink, clip: np.ndarray) -> tuple:
    info = link.info
    res = link.infer_audio(clip)
    if len(res.output) != info.output_bytes or len(res.features) != info.input_bytes:
        raise TinykdError(
            f"The device returned {len(res.output)} output values and "
            f"{len(res.features)} features; its INFO said {info.output_bytes} "
            f"and {info.input_bytes}. Re-flash the firmware."
        )
    output, features = np.frombuffer(res.output, dtype=np.int8), np.frombuffer(res.features, dtype=np.int8)
    return output, features, res.model_count, res.frontend_count


def features_job(x_int8: np.ndarray) -> Job:
    """int8 model inputs [N, ...] sent with INFER: columns outputs, counts."""
    x = _as_inputs(x_int8, None)
    return Job(
        "features",
        x,
        (("outputs", np.int8), ("counts", np.int64)),
        _infer_features,
        lambda info: _as_inputs(x[:1], info.input_bytes),
        "inf",
    )


def audio_job(audio: np.ndarray) -> Job:
    """Raw int16 clips [N, 16000] sent with INFER_AUDIO: columns outputs, features, counts
    (the model's) and frontend_counts."""
    a = _as_audio(audio)
    columns = (("outputs", np.int8), ("features", np.int8), ("counts", np.int64), ("frontend_counts", np.int64))
    return Job("audio", a, columns, _infer_audio, check_audio_support, "clip")
