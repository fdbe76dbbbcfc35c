"""The protocol's numbers: version, limits, message types, error codes, counter kinds.

The C side states the same numbers in firmware/app/tkd_protocol.h (and the counter kinds in
tkd_port.h); tests/test_protocol_contract.py checks the two against each other, both ways.
"""

from __future__ import annotations

PROTOCOL_VERSION = 2
MAX_PAYLOAD = 1024
HEADER_BYTES = 3  # type + seq
CRC_BYTES = 2
MAX_BODY = HEADER_BYTES + MAX_PAYLOAD + CRC_BYTES
MAX_ENCODED = MAX_BODY + (MAX_BODY + 253) // 254  # COBS overhead, without the delimiter
FRAME_DELIMITER = 0x00  # ends every frame; COBS leaves no other zero byte
CRC_POLY = 0x1021  # CRC-16/CCITT-FALSE: no reflection, no final xor
CRC_INIT = 0xFFFF
# RESULT and AUDIO_RESULT end with session:u32 input_crc:u32 check:u32 (CRC-32/IEEE, zlib's)
RESULT_TRAILER_BYTES = 12
# PROFILE_RESULT: mark_cost:u32 output_crc:u32 layers:u16 marks:u32[layers] + trailer, in one frame
PROFILE_MAX_LAYERS = (MAX_PAYLOAD - 10 - RESULT_TRAILER_BYTES) // 4

# message types
PING = 0x01
HELLO = 0x02
INFER = 0x03
INFER_AUDIO = 0x04
LOAD = 0x05
PROFILE = 0x06
EXIT = 0x0E
PONG = 0x81
INFO = 0x82
RESULT = 0x83
AUDIO_RESULT = 0x84
LOADED = 0x85
PROFILE_RESULT = 0x86
ERROR = 0x7F

TYPE_NAMES = {
    PING: "PING",
    HELLO: "HELLO",
    INFER: "INFER",
    INFER_AUDIO: "INFER_AUDIO",
    LOAD: "LOAD",
    PROFILE: "PROFILE",
    EXIT: "EXIT",
    PONG: "PONG",
    INFO: "INFO",
    RESULT: "RESULT",
    AUDIO_RESULT: "AUDIO_RESULT",
    LOADED: "LOADED",
    PROFILE_RESULT: "PROFILE_RESULT",
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
