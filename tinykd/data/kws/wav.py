"""Reading WAV audio: the recordings users bring (any rate, channels and sample format, as phones,
laptops and DAWs write them) and the audio the speech engines write to a pipe."""

from __future__ import annotations

import math
import struct
import warnings
from pathlib import Path

import numpy as np

from ...errors import TinykdError
from .layout import SAMPLE_RATE


def read_wav(path: Path, rate: int = SAMPLE_RATE) -> np.ndarray:
    """int16 mono samples at `rate` of any PCM or float WAV file (8/16/24/32-bit integer, 32/64-bit
    float, WAVE_FORMAT_EXTENSIBLE, any number of channels, any sample rate).

    A 16-bit mono file at `rate` is returned bit for bit. Anything else is converted: channels are
    averaged, the rate changed with a polyphase low-pass resampler (scipy's resample_poly: the same
    bytes in give the same bytes out), and the result rounded to int16. A recording must not be
    refused for being 44.1 kHz stereo, which is what most microphones give."""
    from scipy.io import wavfile

    try:
        with warnings.catch_warnings():
            # Recorders add chunks (LIST, bext, ...) that scipy skips with a warning: they hold no audio.
            warnings.simplefilter("ignore", wavfile.WavFileWarning)
            file_rate, data = wavfile.read(str(path))
    except (ValueError, EOFError, OSError, struct.error) as e:
        raise TinykdError(f"{path} is not a readable WAV file ({e}); replace or delete it.") from None
    if data.ndim == 1 and data.dtype == np.int16 and file_rate == rate:
        return data.copy()
    if file_rate <= 0:
        raise TinykdError(f"{path} says its sample rate is {file_rate} Hz; the file is damaged. Replace or delete it.")
    x = _as_float(data, path)
    if x.ndim == 2:
        x = x.mean(axis=1)
    if file_rate != rate:
        from scipy.signal import resample_poly

        g = math.gcd(file_rate, rate)
        x = resample_poly(x, rate // g, file_rate // g)
    return np.clip(np.round(x * 32768.0), -32768, 32767).astype(np.int16)


def _as_float(data: np.ndarray, path: Path) -> np.ndarray:
    """Samples in [-1, 1): integers by their width (scipy left-justifies 24-bit into int32), 8-bit
    WAV being unsigned around 128; floats as they are."""
    if data.dtype == np.uint8:
        return (data.astype(np.float64) - 128.0) / 128.0
    if np.issubdtype(data.dtype, np.signedinteger):
        return data.astype(np.float64) / float(2 ** (8 * data.dtype.itemsize - 1))
    if np.issubdtype(data.dtype, np.floating):
        return data.astype(np.float64)
    raise TinykdError(f"{path} holds {data.dtype} samples, which no WAV reader understands; convert it to 16-bit PCM.")


def parse_wav(data: bytes, who: str) -> tuple[np.ndarray, int]:
    """float64 samples and rate of a mono 16-bit WAV; walks the chunks, since engines writing to a
    pipe leave placeholder sizes in the RIFF header."""
    if data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise TinykdError(f"{who} did not produce WAV audio; check that it is installed and speaks English.")
    pos, rate = 12, 0
    while pos + 8 <= len(data):
        cid, size = data[pos : pos + 4], struct.unpack("<I", data[pos + 4 : pos + 8])[0]
        if cid == b"fmt ":
            channels, rate = struct.unpack("<HI", data[pos + 10 : pos + 16])
            bits = struct.unpack("<H", data[pos + 22 : pos + 24])[0]
            if channels != 1 or bits != 16:
                raise TinykdError(f"{who} produced {channels} channels of {bits} bits; expected mono 16-bit.")
        elif cid == b"data":
            body = data[pos + 8 :]
            if size and size <= len(body):
                body = body[:size]
            body = body[: len(body) // 2 * 2]
            return np.frombuffer(body, dtype="<i2").astype(np.float64) / 32768.0, rate
        pos += 8 + size
    raise TinykdError(f"{who}'s WAV output has no data chunk; is its install broken?")
