"""Bytes <-> frames: CRC-16/CCITT-FALSE, COBS, one frame, and the resynchronising decoder."""

from __future__ import annotations

import struct
from dataclasses import dataclass

from .spec import CRC_BYTES, CRC_INIT, CRC_POLY, FRAME_DELIMITER, HEADER_BYTES, MAX_ENCODED, MAX_PAYLOAD, TYPE_NAMES

_DELIMITER = bytes([FRAME_DELIMITER])


class ProtocolError(ValueError):
    """A frame or message that does not decode. The link turns these into retries/TinykdError."""


# ---------------------------------------------------------------- CRC


def _make_crc_table() -> list[int]:
    table = []
    for byte in range(256):
        crc = byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ CRC_POLY) if crc & 0x8000 else (crc << 1)
        table.append(crc & 0xFFFF)
    return table


_CRC_TABLE = _make_crc_table()


def crc16_ccitt(data: bytes, crc: int = CRC_INIT) -> int:
    """CRC-16/CCITT-FALSE. crc16_ccitt(b"123456789") == 0x29B1."""
    for b in data:
        crc = ((crc << 8) & 0xFFFF) ^ _CRC_TABLE[((crc >> 8) ^ b) & 0xFF]
    return crc


# ---------------------------------------------------------------- COBS


def cobs_encode(data: bytes) -> bytes:
    """Consistent Overhead Byte Stuffing (Cheshire & Baker): the result has no zero byte.

    Each block is a code byte n followed by n-1 non-zero bytes; n < 255 stands for those
    bytes plus a zero (dropped at the very end), n = 255 for 254 bytes and no zero.
    """
    out = bytearray()
    block = bytearray()
    full_at_end = False
    for b in data:
        full_at_end = False
        if b == 0:
            out.append(len(block) + 1)
            out += block
            block.clear()
        else:
            block.append(b)
            if len(block) == 254:
                out.append(0xFF)
                out += block
                block.clear()
                full_at_end = True
    if not full_at_end:
        out.append(len(block) + 1)
        out += block
    return bytes(out)


def cobs_decode(data: bytes) -> bytes:
    """Inverse of cobs_encode (input without the 0x00 delimiter). ProtocolError if malformed."""
    out = bytearray()
    i = 0
    n = len(data)
    while i < n:
        code = data[i]
        if code == 0:
            raise ProtocolError("zero byte inside a COBS block")
        end = i + code
        if end > n:
            raise ProtocolError("COBS block runs past the end of the frame")
        block = data[i + 1 : end]
        if 0 in block:
            raise ProtocolError("zero byte inside a COBS block")
        out += block
        i = end
        if code != 0xFF and i < n:
            out.append(0)
    return bytes(out)


# ---------------------------------------------------------------- frames


@dataclass(frozen=True)
class Frame:
    type: int
    seq: int
    payload: bytes

    @property
    def name(self) -> str:
        return TYPE_NAMES.get(self.type, f"0x{self.type:02x}")


def encode_frame(msg_type: int, seq: int, payload: bytes = b"") -> bytes:
    """The bytes to send: 0x00 COBS(type seq payload crc) 0x00."""
    if len(payload) > MAX_PAYLOAD:
        raise ProtocolError(f"payload of {len(payload)} bytes exceeds MAX_PAYLOAD={MAX_PAYLOAD}")
    body = struct.pack("<BH", msg_type & 0xFF, seq & 0xFFFF) + bytes(payload)
    body += struct.pack("<H", crc16_ccitt(body))
    return _DELIMITER + cobs_encode(body) + _DELIMITER


def decode_frame(encoded: bytes) -> Frame:
    """Decode one frame given without its delimiters. ProtocolError if COBS/CRC/length is bad."""
    body = cobs_decode(encoded)
    if len(body) < HEADER_BYTES + CRC_BYTES:
        raise ProtocolError(f"frame of {len(body)} bytes is shorter than a header and CRC")
    (crc,) = struct.unpack_from("<H", body, len(body) - CRC_BYTES)
    if crc16_ccitt(body[:-CRC_BYTES]) != crc:
        raise ProtocolError("CRC mismatch")
    msg_type, seq = struct.unpack_from("<BH", body, 0)
    return Frame(msg_type, seq, body[HEADER_BYTES:-CRC_BYTES])


class FrameDecoder:
    """Incremental decoder: feed any bytes, get whole valid frames back.

    Everything between two zero bytes is a candidate frame; candidates that do not decode
    (boot banners, line noise, a frame cut short by a reset) are dropped and counted, and
    decoding resumes at the next delimiter. Over-long runs without a delimiter are dropped.
    """

    def __init__(self, max_encoded: int = MAX_ENCODED):
        self.max_encoded = max_encoded
        self._buf = bytearray()
        self._overflow = False
        self.bad_frames = 0
        self.garbage_bytes = 0

    def feed(self, data: bytes) -> list[Frame]:
        frames: list[Frame] = []
        data = bytes(data)
        start = 0
        while True:
            idx = data.find(_DELIMITER, start)
            if idx < 0:
                self._append(data[start:])
                break
            self._append(data[start:idx])
            frames.extend(self._finish())
            start = idx + 1
        return frames

    def _append(self, part: bytes) -> None:
        if not part:
            return
        if self._overflow:
            self.garbage_bytes += len(part)
            return
        self._buf += part
        if len(self._buf) > self.max_encoded:
            self.garbage_bytes += len(self._buf)
            self._buf.clear()
            self._overflow = True

    def _finish(self) -> list[Frame]:
        if self._overflow:
            self._overflow = False
            self.bad_frames += 1
            return []
        if not self._buf:
            return []
        raw = bytes(self._buf)
        self._buf.clear()
        try:
            return [decode_frame(raw)]
        except ProtocolError:
            self.bad_frames += 1
            self.garbage_bytes += len(raw)
            return []

    @property
    def pending(self) -> int:
        """Bytes of an unfinished frame held in the buffer."""
        return len(self._buf)
