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
