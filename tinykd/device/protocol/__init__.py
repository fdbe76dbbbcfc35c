"""The host <-> device serial protocol: framing, CRC and messages. Pure Python, no I/O.

`spec` holds the numbers (checked against the C header by tests/test_protocol_contract.py),
`framing` turns bytes into frames and back, `messages` the payloads; all are importable from here.

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
  0x02 HELLO  (empty) | session:u32               0x82 INFO   (see DeviceInfo)
  0x03 INFER  input:int8[input_bytes] | empty      0x83 RESULT count:u32 output:int8[output_bytes]
                                                               + trailer (below)
  0x04 INFER_AUDIO  offset:u32 pcm:bytes  -> LOADED   (a chunk of the int16 LE clip)
                    (empty)                -> 0x84 AUDIO_RESULT frontend_count:u32
                                              model_count:u32 features:int8[490] output:int8[..]
                                              + trailer
                    raw 1 s of 16 kHz audio in: the device runs its own feature extractor
                    (firmware/frontend), then the model. Firmware whose model does not take
                    the frontend's 49x10 int8 features answers ERROR(UNSUPPORTED).
  0x05 LOAD   offset:u32 data:bytes                0x85 LOADED offset:u32 length:u16
  0x06 PROFILE  input:int8[input_bytes] | empty    0x86 PROFILE_RESULT mark_cost:u32
                                                        output_crc:u32 layers:u16
                                                        marks:u32[layers] + trailer
                    runs the model once through tkd_model_invoke_profile: marks[k] is the
                    counter read after the k-th layer that runs code (counted from just before
                    the model call; every mark includes one mark's own cost, mark_cost, which
                    the device measures beside it). output_crc: CRC-32 of the output. INFER is
                    not changed by this (tkd_model_invoke has no marks). Firmware whose model
                    has no profile entry (hand-written model.c) or more than
                    PROFILE_MAX_LAYERS layers answers ERROR(UNSUPPORTED, detail = layers).
  0x0E EXIT   code:u8  (QEMU: semihosting exit; other ports answer ERROR(UNSUPPORTED))
                                                   0x7F ERROR  code:u8 request_type:u8 detail:i32

Result trailer (RESULT, AUDIO_RESULT): session:u32 input_crc:u32 check:u32. session is what
the last HELLO carried (0 after a reset: the host re-handshakes); input_crc is the CRC-32 of
the input the model ran on (int8 input, or the int16 LE clip), which the host compares with
its own; check is the CRC-32 of the payload before it. CRC-32 is zlib's (IEEE).

INFER with an empty payload runs the model on the input buffer filled by LOAD messages
(for inputs larger than one frame). RESULT.count is what the board's counter counts
(INFO.counter_kind: instructions under QEMU -icount, cycles from DWT on hardware).
"""

from .framing import (
    Frame,
    FrameDecoder,
    ProtocolError,
    cobs_decode,
    cobs_encode,
    crc16_ccitt,
    decode_frame,
    encode_frame,
)
from .messages import AudioResult, DeviceErrorMsg, DeviceInfo, Loaded, Pong, ProfileResult, Result, load_payload
from .spec import (
    AUDIO_RESULT,
    COUNTER_CYCLES,
    COUNTER_INSTRUCTIONS,
    COUNTER_NAMES,
    COUNTER_NONE,
    CRC_BYTES,
    CRC_INIT,
    CRC_POLY,
    ERR_BAD_FRAME,
    ERR_BAD_LENGTH,
    ERR_BAD_OFFSET,
    ERR_MODEL_FAILED,
    ERR_TOO_LONG,
    ERR_UNKNOWN_TYPE,
    ERR_UNSUPPORTED,
    ERROR,
    ERROR_NAMES,
    EXIT,
    FRAME_DELIMITER,
    HEADER_BYTES,
    HELLO,
    INFER,
    INFER_AUDIO,
    INFO,
    LOAD,
    LOADED,
    MAX_BODY,
    MAX_ENCODED,
    MAX_PAYLOAD,
    PING,
    PONG,
    PROFILE,
    PROFILE_MAX_LAYERS,
    PROFILE_RESULT,
    PROTOCOL_VERSION,
    RESULT,
    RESULT_TRAILER_BYTES,
    TYPE_NAMES,
)

__all__ = [
    "PROTOCOL_VERSION",
    "MAX_PAYLOAD",
    "HEADER_BYTES",
    "CRC_BYTES",
    "MAX_BODY",
    "MAX_ENCODED",
    "FRAME_DELIMITER",
    "CRC_POLY",
    "CRC_INIT",
    "PING",
    "HELLO",
    "INFER",
    "INFER_AUDIO",
    "LOAD",
    "PROFILE",
    "EXIT",
    "PONG",
    "INFO",
    "RESULT",
    "RESULT_TRAILER_BYTES",
    "AUDIO_RESULT",
    "LOADED",
    "PROFILE_RESULT",
    "PROFILE_MAX_LAYERS",
    "ERROR",
    "TYPE_NAMES",
    "ERR_BAD_FRAME",
    "ERR_UNKNOWN_TYPE",
    "ERR_BAD_LENGTH",
    "ERR_MODEL_FAILED",
    "ERR_UNSUPPORTED",
    "ERR_TOO_LONG",
    "ERR_BAD_OFFSET",
    "ERROR_NAMES",
    "COUNTER_NONE",
    "COUNTER_INSTRUCTIONS",
    "COUNTER_CYCLES",
    "COUNTER_NAMES",
    "ProtocolError",
    "crc16_ccitt",
    "cobs_encode",
    "cobs_decode",
    "Frame",
    "encode_frame",
    "decode_frame",
    "FrameDecoder",
    "DeviceInfo",
    "Pong",
    "Result",
    "AudioResult",
    "ProfileResult",
    "DeviceErrorMsg",
    "Loaded",
    "load_payload",
]
