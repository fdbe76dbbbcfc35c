"""The host <-> device serial protocol: framing, CRC and messages. Pure Python, no I/O.

Wire format (the C side is firmware/app/tkd_protocol.c, which must agree with this file):

    frame  = COBS(body) 0x00            a zero byte ends every frame (senders also put one
                                        in front, which flushes any half-received garbage)
    body   = type:u8  seq:u16le  payload:bytes  crc:u16le
    crc    = CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF, no reflection, no final xor)
             over type, seq and payload; check value of b"123456789" is 0x29B1

The reply to a request carries the request's seq. Payloads are at most MAX_PAYLOAD bytes.
All integers little-endian; floats IEEE-754 binary32.

Host -> device                                   Device -> host
  0x01 PING   (empty)                              0x81 PONG   version:u8 max_payload:u16
  0x02 HELLO  (empty)                              0x82 INFO   (see DeviceInfo)
  0x03 INFER  input:int8[input_bytes] | empty      0x83 RESULT count:u32 output:int8[output_bytes]
  0x04 INFER_AUDIO  offset:u32 pcm:bytes  -> LOADED   (a chunk of the int16 LE clip)
                    (empty)                -> 0x84 AUDIO_RESULT frontend_count:u32
                                              model_count:u32 features:int8[490] output:int8[..]
                    raw 1 s of 16 kHz audio in: the device runs its own feature extractor
                    (firmware/frontend), then the model. Firmware whose model does not take
                    the frontend's 49x10 int8 features answers ERROR(UNSUPPORTED).
  0x05 LOAD   offset:u32 data:bytes                0x85 LOADED offset:u32 length:u16
  0x0E EXIT   code:u8  (QEMU: semihosting exit; other ports answer ERROR(UNSUPPORTED))
                                                   0x7F ERROR  code:u8 request_type:u8 detail:i32

INFER with an empty payload runs the model on the input buffer filled by LOAD messages
(for inputs larger than one frame). RESULT.count is what the board's counter counts
(INFO.counter_kind: instructions under QEMU -icount, cycles from DWT on hardware).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

PROTOCOL_VERSION = 1
MAX_PAYLOAD = 1024
HEADER_BYTES = 3  # type + seq
CRC_BYTES = 2
MAX_BODY = HEADER_BYTES + MAX_PAYLOAD + CRC_BYTES
MAX_ENCODED = MAX_BODY + (MAX_BODY + 253) // 254  # COBS overhead, without the delimiter

# message types
PING = 0x01
HELLO = 0x02
INFER = 0x03
INFER_AUDIO = 0x04
LOAD = 0x05
EXIT = 0x0E
PONG = 0x81
INFO = 0x82
RESULT = 0x83
AUDIO_RESULT = 0x84
LOADED = 0x85
ERROR = 0x7F

TYPE_NAMES = {
    PING: "PING",
    HELLO: "HELLO",
    INFER: "INFER",
    INFER_AUDIO: "INFER_AUDIO",
    LOAD: "LOAD",
    EXIT: "EXIT",
    PONG: "PONG",
    INFO: "INFO",
    RESULT: "RESULT",
    AUDIO_RESULT: "AUDIO_RESULT",
    LOADED: "LOADED",
    ERROR: "ERROR",
}

# ERROR codes
ERR_BAD_FRAME = 1  # COBS or CRC failure (seq is 0: the device could not trust it)
ERR_UNKNOWN_TYPE = 2
ERR_BAD_LENGTH = 3  # payload length wrong for the message; detail = expected length
ERR_MODEL_FAILED = 4  # tkd_model_invoke returned non-zero; detail = its return value
ERR_UNSUPPORTED = 5  # message known but not supported by this firmware/port
ERR_TOO_LONG = 6  # frame longer than the device's receive buffer
ERR_BAD_OFFSET = 7  # LOAD past the end of the input buffer; detail = input_bytes

ERROR_NAMES = {
    ERR_BAD_FRAME: "bad frame (CRC/COBS)",
    ERR_UNKNOWN_TYPE: "unknown message type",
    ERR_BAD_LENGTH: "wrong payload length",
    ERR_MODEL_FAILED: "model invoke failed",
    ERR_UNSUPPORTED: "unsupported message",
    ERR_TOO_LONG: "frame too long",
    ERR_BAD_OFFSET: "LOAD offset out of range",
}

COUNTER_NONE = 0
COUNTER_INSTRUCTIONS = 1
COUNTER_CYCLES = 2
COUNTER_NAMES = {COUNTER_NONE: "none", COUNTER_INSTRUCTIONS: "instructions", COUNTER_CYCLES: "cycles"}


class ProtocolError(ValueError):
    """A frame or message that does not decode. The link turns these into retries/TinykdError."""


# ---------------------------------------------------------------- CRC


def _make_crc_table() -> list[int]:
    table = []
    for byte in range(256):
        crc = byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else (crc << 1)
        table.append(crc & 0xFFFF)
    return table


_CRC_TABLE = _make_crc_table()


def crc16_ccitt(data: bytes, crc: int = 0xFFFF) -> int:
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
    return b"\x00" + cobs_encode(body) + b"\x00"


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
            idx = data.find(b"\x00", start)
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


# ---------------------------------------------------------------- messages


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


@dataclass(frozen=True)
class Result:
    count: int
    output: bytes  # int8 values as raw bytes

    def encode(self) -> bytes:
        return struct.pack("<I", self.count) + bytes(self.output)

    @classmethod
    def decode(cls, payload: bytes) -> Result:
        if len(payload) < 4:
            raise ProtocolError(f"RESULT payload of {len(payload)} bytes is too short")
        (count,) = struct.unpack_from("<I", payload, 0)
        return cls(count, payload[4:])


@dataclass(frozen=True)
class AudioResult:
    """AUDIO_RESULT: counts of the frontend and of the model, the features, the output."""

    frontend_count: int
    model_count: int
    features: bytes  # int8 [49 * 10], frame-major
    output: bytes  # int8 [output_bytes]

    FEATURE_BYTES = 490

    def encode(self) -> bytes:
        return struct.pack("<II", self.frontend_count, self.model_count) + bytes(self.features) + bytes(self.output)

    @classmethod
    def decode(cls, payload: bytes) -> AudioResult:
        if len(payload) < 8 + cls.FEATURE_BYTES:
            raise ProtocolError(f"AUDIO_RESULT payload of {len(payload)} bytes is too short")
        fc, mc = struct.unpack_from("<II", payload, 0)
        return cls(fc, mc, payload[8 : 8 + cls.FEATURE_BYTES], payload[8 + cls.FEATURE_BYTES :])


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
