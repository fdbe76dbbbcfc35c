"""The wire contract without QEMU: the numbers of firmware/app/tkd_protocol.h (and the counter
kinds of tkd_port.h) against tinykd.device.protocol, both ways; and the C CRC and COBS,
compiled for the host, against the Python ones."""

import ctypes
import random
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tinykd.device import protocol as P
from tinykd.device.protocol import spec

APP = Path(__file__).resolve().parents[1] / "firmware" / "app"
HEADER = APP / "tkd_protocol.h"

# Numbers the C side writes in its code rather than as defines: checked by behaviour (the
# compiled C CRC and COBS) and against the wire format the header's comment states.
IN_C_CODE = {"CRC_POLY", "CRC_INIT", "FRAME_DELIMITER"}


def c_defines(path: Path, prefix: str = "TKD_") -> dict[str, int]:
    """Every `#define NAME value` of a C header whose name starts with `prefix`, evaluated in
    order (u/l suffixes dropped, earlier defines substituted, / as integer division)."""
    text = re.sub(r"/\*.*?\*/|//[^\n]*", " ", path.read_text(), flags=re.S)
    values: dict[str, int] = {}
    for name, expr in re.findall(r"^[ \t]*#[ \t]*define[ \t]+(TKD_\w+)[ \t]+(\S[^\n]*)$", text, re.M):
        expr = re.sub(r"\b(0[xX][0-9a-fA-F]+|\d+)[uUlL]+\b", r"\1", expr.strip())
        expr = re.sub(r"\bTKD_\w+\b", lambda m: str(values[m.group(0)]), expr)
        assert re.fullmatch(r"[0-9a-fA-FxX+\-*/() ]+", expr), f"{path.name}: cannot evaluate {name} = {expr}"
        values[name] = eval(expr.replace("/", "//"), {"__builtins__": {}})
    return {name: value for name, value in values.items() if name.startswith(prefix)}


def c_contract() -> dict[str, int]:
    """The C numbers under their Python names: TKD_MSG_PING -> PING, TKD_ERR_X -> ERR_X, ..."""
    defines = c_defines(HEADER) | c_defines(APP / "tkd_port.h", prefix="TKD_COUNTER_")
    return {re.sub(r"^TKD_(MSG_)?", "", name): value for name, value in defines.items()}


def python_contract() -> dict[str, int]:
    return {
        name: value
        for name, value in vars(spec).items()
        if name.isupper() and isinstance(value, int) and name not in IN_C_CODE
    }


def test_every_c_number_is_in_python_and_every_python_number_in_c():
    c, py = c_contract(), python_contract()
    assert len(c) >= 25  # limits, 12 message types, 7 error codes, 3 counter kinds
    assert sorted(set(c) - set(py)) == [], "in tkd_protocol.h/tkd_port.h, missing from tinykd/device/protocol/spec.py"
    assert sorted(set(py) - set(c)) == [], "in tinykd/device/protocol/spec.py, missing from tkd_protocol.h/tkd_port.h"
    assert {name: py[name] for name in c} == c
    # and every name is importable from the package, where link.py and run.py look for it
    assert all(getattr(P, name) == value for name, value in c.items())


def test_the_name_tables_cover_exactly_the_c_message_types_error_codes_and_counters():
    defines = c_defines(HEADER)
    messages = {value: name.removeprefix("TKD_MSG_") for name, value in defines.items() if name.startswith("TKD_MSG_")}
    errors = {value for name, value in defines.items() if name.startswith("TKD_ERR_")}
    counters = set(c_defines(APP / "tkd_port.h", prefix="TKD_COUNTER_").values())
    assert P.TYPE_NAMES == messages  # also: no two message types share a value
    assert set(P.ERROR_NAMES) == errors and len(errors) == len([n for n in defines if n.startswith("TKD_ERR_")])
    assert set(P.COUNTER_NAMES) == counters


def test_the_header_states_the_python_frame_delimiter_and_crc_parameters():
    text = HEADER.read_text()
    stated = {
        "FRAME_DELIMITER": re.search(r"frame\s*=\s*COBS\(body\)\s+(0x[0-9A-Fa-f]+)", text),
        "CRC_POLY": re.search(r"poly\s+(0x[0-9A-Fa-f]+)", text),
        "CRC_INIT": re.search(r"init\s+(0x[0-9A-Fa-f]+)", text),
    }
    assert set(stated) == IN_C_CODE
    missing = sorted(name for name, m in stated.items() if m is None)
    assert not missing, f"tkd_protocol.h's comment no longer states {missing}"
    assert {name: int(m.group(1), 16) for name, m in stated.items()} == {name: getattr(spec, name) for name in stated}
    frame = P.encode_frame(P.INFER, 7, bytes(range(256)) * 2)
    assert frame[0] == frame[-1] == P.FRAME_DELIMITER and P.FRAME_DELIMITER not in frame[1:-1]


@pytest.fixture(scope="module")
def c_protocol(tmp_path_factory):
    """firmware/app/tkd_protocol.c compiled for the host and loaded with ctypes."""
    gcc = shutil.which("gcc")
    assert gcc, "a host gcc is required for this test (apt-get install gcc)"
    lib_path = tmp_path_factory.mktemp("protocol") / "libtkd_protocol.so"
    cmd = [gcc, "-std=c99", "-O1", "-Wall", "-Werror", "-shared", "-fPIC", f"-I{APP}", str(APP / "tkd_protocol.c")]
    subprocess.run([*cmd, "-o", str(lib_path)], check=True, capture_output=True, text=True)
    lib = ctypes.CDLL(str(lib_path))
    lib.tkd_crc16.restype = ctypes.c_uint16
    lib.tkd_crc16.argtypes = [ctypes.c_char_p, ctypes.c_uint32, ctypes.c_uint16]
    lib.tkd_cobs_decode_inplace.restype = ctypes.c_int32
    lib.tkd_cobs_decode_inplace.argtypes = [ctypes.c_void_p, ctypes.c_uint32]
    return lib


def _c_cobs_decode(lib, encoded: bytes) -> bytes | None:
    buf = ctypes.create_string_buffer(encoded, len(encoded))
    n = lib.tkd_cobs_decode_inplace(buf, len(encoded))
    return None if n < 0 else buf.raw[:n]


def test_c_crc_is_the_python_crc(c_protocol):
    rng = random.Random(3)
    cases = [b"", b"123456789", bytes(256), bytes(range(256))]
    cases += [bytes(rng.randrange(256) for _ in range(n)) for n in (1, 5, 300, P.MAX_BODY)]
    for data in cases:
        assert c_protocol.tkd_crc16(data, len(data), P.CRC_INIT) == P.crc16_ccitt(data)
        assert c_protocol.tkd_crc16(data, len(data), 0) == P.crc16_ccitt(data, 0)  # the polynomial alone
    assert c_protocol.tkd_crc16(b"123456789", 9, P.CRC_INIT) == 0x29B1


def test_c_cobs_decodes_what_python_encodes_and_refuses_what_python_refuses(c_protocol):
    rng = random.Random(4)
    bodies = [b"", b"\x00", bytes(range(1, 255)), bytes(range(1, 256)), bytes(range(2, 256)) + b"\x00"]
    bodies += [bytes(rng.choice((0, rng.randrange(1, 256))) for _ in range(n)) for n in (7, 254, 255, 600)]
    for body in bodies:
        assert _c_cobs_decode(c_protocol, P.cobs_encode(body)) == body
    for bad in (b"\x00\x01", b"\x05\x11\x22", b"\x03\x11\x00"):
        with pytest.raises(P.ProtocolError):
            P.cobs_decode(bad)
        assert _c_cobs_decode(c_protocol, bad) is None


# ---------------------------------------------------------------- PROFILE, both sides

PROFILE_PORT_C = r"""
#include <stdio.h>
#include <stdlib.h>
#include "tkd_app.h"
#include "tkd_port.h"
static uint32_t t;
void tkd_port_init(void) {}
int tkd_port_uart_read_byte(void) { int c = getchar(); if (c == EOF) { fflush(stdout); exit(0); } return c; }
void tkd_port_uart_write(const uint8_t *d, uint32_t n) { fwrite(d, 1, n, stdout); }
void tkd_port_counter_start(void) { t = 0u; }
uint32_t tkd_port_counter_read(void) { t += 10u; return t; }
uint8_t tkd_port_counter_kind(void) { return TKD_COUNTER_CYCLES; }
const char *tkd_port_board_name(void) { return "host"; }
uint32_t tkd_port_clock_hz(void) { return 1u; }
int tkd_port_exit(int code) { return code - code - 1; }
int main(void) { tkd_app_run(); return 0; }
"""

# a three-layer "model": the output is the input plus 1, 2 and 3, one layer each
PROFILED_MODEL_H = """#include <stdint.h>
#define TKD_MODEL_INPUT_BYTES   16
#define TKD_MODEL_OUTPUT_BYTES  16
#define TKD_MODEL_ARENA_BYTES   0
#define TKD_MODEL_INPUT_SCALE   1.0f
#define TKD_MODEL_INPUT_ZERO_POINT  0
#define TKD_MODEL_OUTPUT_SCALE  1.0f
#define TKD_MODEL_OUTPUT_ZERO_POINT 0
#define TKD_MODEL_NAME "three"
extern const uint8_t tkd_model_hash[8];
int tkd_model_invoke(const int8_t *input, int8_t *output);
#ifdef WITH_PROFILE
#define TKD_MODEL_PROFILE_LAYERS 3
int tkd_model_invoke_profile(const int8_t *input, int8_t *output, void (*mark)(uint32_t k));
#endif
"""

PROFILED_MODEL_C = """#include "model.h"
const uint8_t tkd_model_hash[8] = {1, 2, 3, 4, 5, 6, 7, 8};
static void add(const int8_t *in, int8_t *out, int v)
{ int i; for (i = 0; i < TKD_MODEL_INPUT_BYTES; i++) { out[i] = (int8_t)(in[i] + v); } }
int tkd_model_invoke(const int8_t *input, int8_t *output)
{ add(input, output, 1); add(output, output, 2); add(output, output, 3); return 0; }
#ifdef WITH_PROFILE
int tkd_model_invoke_profile(const int8_t *input, int8_t *output, void (*mark)(uint32_t k))
{ add(input, output, 1); mark(0u); add(output, output, 2); mark(1u); add(output, output, 3); mark(2u); return 0; }
#endif
"""


def _host_app(tmp_path, *defines: str):
    gcc = shutil.which("gcc")
    assert gcc, "a host gcc is required for this test (apt-get install gcc)"
    (tmp_path / "host_port.c").write_text(PROFILE_PORT_C)
    (tmp_path / "model.h").write_text(PROFILED_MODEL_H)
    (tmp_path / "model.c").write_text(PROFILED_MODEL_C)
    exe = tmp_path / "app"
    cmd = [gcc, "-std=c99", "-O1", "-Wall", "-Wextra", "-Werror", *defines, "-I", str(APP), "-I", str(tmp_path)]
    cmd += [*map(str, APP.glob("*.c")), str(tmp_path / "host_port.c"), str(tmp_path / "model.c"), "-o", str(exe)]
    subprocess.run(cmd, check=True)
    return exe


def _talk(exe, *frames: bytes):
    out = subprocess.run([str(exe)], input=b"".join(frames), capture_output=True, timeout=20).stdout
    return P.FrameDecoder().feed(out)


def test_profile_result_from_the_c_app_decodes_as_python_says(tmp_path):
    """PROFILE to the device application (host-compiled, a port whose counter advances 10 per
    read): PROFILE_RESULT carries one mark per layer, the mark cost, the output's CRC-32 and
    the trailer; INFER's count is not touched by the marks; payloads of the wrong length
    are refused."""
    import zlib

    exe = _host_app(tmp_path, "-DWITH_PROFILE")
    x = bytes(range(100, 116))
    want_out = bytes((v + 6) & 0xFF for v in x)
    frames = _talk(
        exe,
        P.encode_frame(P.HELLO, 1, (1234).to_bytes(4, "little")),
        P.encode_frame(P.PROFILE, 2, x),
        P.encode_frame(P.INFER, 3, x),
        P.encode_frame(P.LOAD, 4, P.load_payload(0, x[::-1])),
        P.encode_frame(P.PROFILE, 5, b""),
        P.encode_frame(P.PROFILE, 6, b"\x01\x02"),
    )
    by_seq = {f.seq: f for f in frames}
    assert by_seq[2].type == P.PROFILE_RESULT
    r = P.ProfileResult.decode(by_seq[2].payload)
    assert r.marks == (10, 20, 30) and r.mark_cost == 10  # 32 marks then a read: (330 + 16) // 32
    assert r.output_crc == zlib.crc32(want_out) and r.input_crc == zlib.crc32(x) and r.session == 1234
    infer = P.Result.decode(by_seq[3].payload)
    assert infer.count == 10 and infer.output == want_out  # one read after the call: no marks inside
    loaded = P.ProfileResult.decode(by_seq[5].payload)  # empty payload: the LOADed input
    assert loaded.input_crc == zlib.crc32(x[::-1]) and loaded.marks == (10, 20, 30)
    err = P.DeviceErrorMsg.decode(by_seq[6].payload)
    assert by_seq[6].type == P.ERROR and (err.code, err.request_type, err.detail) == (P.ERR_BAD_LENGTH, P.PROFILE, 16)


def test_profile_without_the_models_profile_entry_is_unsupported(tmp_path):
    """Hand-written model sources without tkd_model_invoke_profile still build; PROFILE is
    refused with UNSUPPORTED (and INFER works as before)."""
    exe = _host_app(tmp_path)
    frames = _talk(exe, P.encode_frame(P.PROFILE, 7, bytes(16)), P.encode_frame(P.INFER, 8, bytes(16)))
    by_seq = {f.seq: f for f in frames}
    err = P.DeviceErrorMsg.decode(by_seq[7].payload)
    assert by_seq[7].type == P.ERROR and (err.code, err.request_type) == (P.ERR_UNSUPPORTED, P.PROFILE)
    assert by_seq[8].type == P.RESULT


def test_profile_result_python_layout_and_limits():
    r = P.ProfileResult(94, 0xDEADBEEF, (1, 2, 70000), session=5, input_crc=9)
    raw = r.encode()
    assert raw[:10] == struct_pack("<IIH", 94, 0xDEADBEEF, 3) and len(raw) == 10 + 12 + P.RESULT_TRAILER_BYTES
    assert P.ProfileResult.decode(raw) == r
    full = P.ProfileResult(1, 2, tuple(range(P.PROFILE_MAX_LAYERS)))
    assert len(full.encode()) <= P.MAX_PAYLOAD
    with pytest.raises(P.ProtocolError):
        P.ProfileResult(1, 2, tuple(range(P.PROFILE_MAX_LAYERS + 1))).encode()
    bad = bytearray(raw)
    bad[12] ^= 1
    with pytest.raises(P.ProtocolError):
        P.ProfileResult.decode(bytes(bad))  # the trailer's CRC-32


def struct_pack(fmt, *values):
    import struct

    return struct.pack(fmt, *values)
