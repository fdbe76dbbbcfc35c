"""The payloads of the messages (INFO, PONG, RESULT, AUDIO_RESULT, PROFILE_RESULT, ERROR, LOADED, LOAD)."""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

from .framing import ProtocolError
from .spec import COUNTER_NAMES, ERROR_NAMES, MAX_PAYLOAD, PROFILE_MAX_LAYERS, RESULT_TRAILER_BYTES, TYPE_NAMES


@dataclass(frozen=True)
class DeviceInfo:
    """The INFO payload (reply to HELLO).

    Layout (44 fixed bytes, offsets in brackets): version:u8 [0] counter_kind:u8 [1]
    max_payload:u16 [2] clock_hz:u32 [4] arena_bytes:u32 [8] input_bytes:u32 [12]
    output_bytes:u32 [16] input_scale:f32 [20] input_zero_point:i32 [24] output_scale:f32 [28]
    output_zero_point:i32 [32] model_hash:8 bytes [36], then three strings, each len:u8 +
    UTF-8: board, runtime ("tinykd"), model name.
    """

    version: int
    counter_kind: int
    max_payload: int
    clock_hz: int
    arena_bytes: int
    input_bytes: int
    output_bytes: int
    input_scale: float
    input_zero_point: int
    output_scale: float
    output_zero_point: int
    model_hash: bytes
    board: str
    runtime: str
    model_name: str

    _FIXED = struct.Struct("<BBHIIIIfifi8s")

    @property
    def counter_name(self) -> str:
        return COUNTER_NAMES.get(self.counter_kind, f"unknown({self.counter_kind})")

    def encode(self) -> bytes:
        out = self._FIXED.pack(
            self.version,
            self.counter_kind,
            self.max_payload,
            self.clock_hz,
            self.arena_bytes,
            self.input_bytes,
            self.output_bytes,
            self.input_scale,
            self.input_zero_point,
            self.output_scale,
            self.output_zero_point,
            bytes(self.model_hash),
        )
        for s in (self.board, self.runtime, self.model_name):
            b = s.encode("utf-8")[:255]
            out += bytes([len(b)]) + b
        return out

    @classmethod
    def decode(cls, payload: bytes) -> DeviceInfo:
        if len(payload) < cls._FIXED.size + 3:
            raise ProtocolError(f"INFO payload of {len(payload)} bytes is too short")
        fixed = cls._FIXED.unpack_from(payload, 0)
        pos = cls._FIXED.size
        strings = []
        for _ in range(3):
            if pos >= len(payload):
                raise ProtocolError("INFO payload truncated in its strings")
            n = payload[pos]
            s = payload[pos + 1 : pos + 1 + n]
            if len(s) != n:
                raise ProtocolError("INFO payload truncated in its strings")
            try:
                strings.append(s.decode("utf-8"))
            except UnicodeDecodeError as e:
                raise ProtocolError("INFO string is not UTF-8") from e
            pos += 1 + n
        return cls(*fixed, *strings)


@dataclass(frozen=True)
class Pong:
    version: int
    max_payload: int

    def encode(self) -> bytes:
        return struct.pack("<BH", self.version, self.max_payload)

    @classmethod
    def decode(cls, payload: bytes) -> Pong:
        if len(payload) != 3:
            raise ProtocolError(f"PONG payload of {len(payload)} bytes, expected 3")
        return cls(*struct.unpack("<BH", payload))


def _with_trailer(body: bytes, session: int, input_crc: int) -> bytes:
    body += struct.pack("<II", session & 0xFFFFFFFF, input_crc & 0xFFFFFFFF)
    return body + struct.pack("<I", zlib.crc32(body))


def _split_trailer(payload: bytes, what: str, least: int) -> tuple[bytes, int, int]:
    """(body, session, input_crc) of a result payload whose trailer checks out."""
    if len(payload) < least + RESULT_TRAILER_BYTES:
        raise ProtocolError(f"{what} payload of {len(payload)} bytes is too short")
    session, input_crc, check = struct.unpack_from("<III", payload, len(payload) - RESULT_TRAILER_BYTES)
    if zlib.crc32(payload[:-4]) != check:
        raise ProtocolError(f"{what} payload fails its CRC-32 check")
    return payload[:-RESULT_TRAILER_BYTES], session, input_crc


@dataclass(frozen=True)
class Result:
    """RESULT: count:u32 output:int8[..], then the trailer session:u32 input_crc:u32 check:u32
    (session: the last HELLO's, 0 after a device reset; input_crc: CRC-32 of the input the
    model ran on; check: CRC-32 of everything before it)."""

    count: int
    output: bytes  # int8 values as raw bytes
    session: int = 0
    input_crc: int = 0

    def encode(self) -> bytes:
        return _with_trailer(struct.pack("<I", self.count) + bytes(self.output), self.session, self.input_crc)

    @classmethod
    def decode(cls, payload: bytes) -> Result:
        body, session, input_crc = _split_trailer(payload, "RESULT", 4)
        (count,) = struct.unpack_from("<I", body, 0)
        return cls(count, body[4:], session, input_crc)


@dataclass(frozen=True)
class AudioResult:
    """AUDIO_RESULT: counts of the frontend and of the model, the features, the output, and
    the trailer as in RESULT (input_crc: CRC-32 of the int16 little-endian clip)."""

    frontend_count: int
    model_count: int
    features: bytes  # int8 [49 * 10], frame-major
    output: bytes  # int8 [output_bytes]
    session: int = 0
    input_crc: int = 0

    FEATURE_BYTES = 490

    def encode(self) -> bytes:
        body = struct.pack("<II", self.frontend_count, self.model_count) + bytes(self.features) + bytes(self.output)
        return _with_trailer(body, self.session, self.input_crc)

    @classmethod
    def decode(cls, payload: bytes) -> AudioResult:
        body, session, input_crc = _split_trailer(payload, "AUDIO_RESULT", 8 + cls.FEATURE_BYTES)
        fc, mc = struct.unpack_from("<II", body, 0)
        n = cls.FEATURE_BYTES
        return cls(fc, mc, body[8 : 8 + n], body[8 + n :], session, input_crc)


@dataclass(frozen=True)
class ProfileResult:
    """PROFILE_RESULT: mark_cost:u32 output_crc:u32 layers:u16 marks:u32[layers], then the
    trailer as in RESULT. marks[k]: the counter after the k-th layer that runs code, counted
    from just before the model call; each interval between marks includes one mark's cost
    (mark_cost, measured on the device beside the run). output_crc: CRC-32 of the output."""

    mark_cost: int
    output_crc: int
    marks: tuple[int, ...]
    session: int = 0
    input_crc: int = 0

    def encode(self) -> bytes:
        n = len(self.marks)
        if n > PROFILE_MAX_LAYERS:
            raise ProtocolError(f"{n} layer marks exceed PROFILE_MAX_LAYERS={PROFILE_MAX_LAYERS}")
        body = struct.pack(f"<IIH{n}I", self.mark_cost, self.output_crc, n, *self.marks)
        return _with_trailer(body, self.session, self.input_crc)

    @classmethod
    def decode(cls, payload: bytes) -> ProfileResult:
        body, session, input_crc = _split_trailer(payload, "PROFILE_RESULT", 10)
        mark_cost, output_crc, n = struct.unpack_from("<IIH", body, 0)
        if len(body) != 10 + 4 * n:
            raise ProtocolError(f"PROFILE_RESULT of {len(body)} bytes does not hold {n} layer marks")
        return cls(mark_cost, output_crc, struct.unpack_from(f"<{n}I", body, 10), session, input_crc)


@dataclass(frozen=True)
class DeviceErrorMsg:
    code: int
    request_type: int
    detail: int

    @property
    def text(self) -> str:
        what = ERROR_NAMES.get(self.code, f"error {self.code}")
        req = TYPE_NAMES.get(self.request_type, f"0x{self.request_type:02x}")
        return f"{what} (request {req}, detail {self.detail})"

    def encode(self) -> bytes:
        return struct.pack("<BBi", self.code, self.request_type, self.detail)

    @classmethod
    def decode(cls, payload: bytes) -> DeviceErrorMsg:
        if len(payload) != 6:
            raise ProtocolError(f"ERROR payload of {len(payload)} bytes, expected 6")
        return cls(*struct.unpack("<BBi", payload))


@dataclass(frozen=True)
class Loaded:
    offset: int
    length: int

    @classmethod
    def decode(cls, payload: bytes) -> Loaded:
        if len(payload) != 6:
            raise ProtocolError(f"LOADED payload of {len(payload)} bytes, expected 6")
        return cls(*struct.unpack("<IH", payload))


def load_payload(offset: int, data: bytes) -> bytes:
    """LOAD payload: offset:u32 then the bytes to place at input[offset:]."""
    if len(data) + 4 > MAX_PAYLOAD:
        raise ProtocolError(f"LOAD chunk of {len(data)} bytes exceeds MAX_PAYLOAD-4")
    return struct.pack("<I", offset) + bytes(data)
