"""Reading the WAV audio the speech engines write."""

from __future__ import annotations

import struct

import numpy as np

from ...errors import TinykdError


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
