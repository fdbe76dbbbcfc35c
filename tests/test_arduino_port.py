"""The Arduino port (firmware/ports/arduino) run on this PC: the real tkd_port_arduino.cpp and
sketch, built with the host compiler against the stand-in core (firmware/ports/arduino/standin:
Arduino.h + standin_core.cpp), which records every Serial.write() and plays the host closing the
port (DTR low, writes dropped as Mbed's USB CDC drops them). No Arduino core or board is used.

Checked: each reply frame (PONG, INFO, and the RESULT for a 784-byte image) leaves in exactly
one write, whole; a port the host has not opened is waited for, not written into; a frame
dropped because the host closed the port is sent again whole; the counter is the DWT on a
Cortex-M4 board and micros() scaled to cycles on a Cortex-M0+ board (counter kind systick)."""

import shutil
import subprocess
import zlib
from pathlib import Path

import pytest

from tinykd.device import protocol as P
from tinykd.firmware.project import generate_project

REPO = Path(__file__).resolve().parents[1]
FIXTURE = REPO / "tests" / "fixtures" / "fixture_model"
STANDIN = REPO / "firmware" / "ports" / "arduino" / "standin"
CXXFLAGS = ["-std=c++11", "-O1", "-Wall", "-Wextra", "-Werror", "-fno-exceptions", "-fno-rtti"]


def _compile(board: str, out: Path) -> Path:
    for tool in ("gcc", "g++"):
        assert shutil.which(tool), f"{tool} is required for this test and is not on PATH"
    sketch = generate_project(board, FIXTURE, out / "fw").sketch_dir
    inc = ["-I", str(STANDIN), "-I", str(sketch)]
    objs = []
    for src in sorted(sketch.glob("*.c")):
        obj = out / (src.name + ".o")
        subprocess.run(["gcc", "-std=c99", "-O1", *inc, "-c", str(src), "-o", str(obj)], check=True)
        objs.append(obj)
    for src in (sketch / "tkd_port_arduino.cpp", sketch / f"{sketch.name}.ino", STANDIN / "standin_core.cpp"):
        obj = out / (src.name + ".o")
        subprocess.run(["g++", *CXXFLAGS, *inc, "-x", "c++", "-c", str(src), "-o", str(obj)], check=True)
        objs.append(obj)
    exe = out / "sketch"
    subprocess.run(["g++", *map(str, objs), "-o", str(exe)], check=True)
    return exe


@pytest.fixture(scope="module")
def nano33(tmp_path_factory) -> Path:
    return _compile("nano33", tmp_path_factory.mktemp("nano33"))


IMAGE = bytes((i * 7) % 256 for i in range(784))  # a 784-byte MNIST-sized input


def _requests() -> bytes:
    return (
        P.encode_frame(P.PING, 1)
        + P.encode_frame(P.HELLO, 2, (0x1234).to_bytes(4, "little"))
        + P.encode_frame(P.INFER, 3, IMAGE)
    )


def _run(exe: Path, *args: int) -> tuple[list[bytes], list[int], dict]:
    r = subprocess.run([str(exe), *map(str, args)], input=_requests(), capture_output=True, timeout=30, check=True)
    writes, dropped, end = [], [], {}
    for line in r.stdout.decode().splitlines():
        kind, *rest = line.split()
        if kind == "W":
            data = bytes.fromhex(rest[1])
            assert len(data) == int(rest[0])
            writes.append(data)
        elif kind == "D":
            dropped.append(int(rest[0]))
        else:
            end = dict(zip(rest[::2], map(int, rest[1::2]), strict=True))
    return writes, dropped, end


def _whole_frames(writes: list[bytes]) -> list[P.Frame]:
    """Each write must be one whole frame: 0x00, COBS bytes, 0x00, decoding with a good CRC."""
    frames = []
    for w in writes:
        assert w[0] == 0 and w[-1] == 0 and 0 not in w[1:-1], w[:16].hex()
        decoder = P.FrameDecoder()
        got = decoder.feed(w)
        assert len(got) == 1 and decoder.bad_frames == 0
        frames.append(got[0])
    return frames


def test_each_reply_frame_is_one_write(nano33):
    writes, dropped, end = _run(nano33)
    frames = _whole_frames(writes)
    assert [(f.type, f.seq) for f in frames] == [(P.PONG, 1), (P.INFO, 2), (P.RESULT, 3)]
    assert end["writes"] == len(writes) == 3 and not dropped and end["dropped"] == 0
    info = P.DeviceInfo.decode(frames[1].payload)
    assert info.board == "nano33" and info.input_bytes == 784 and info.counter_kind == P.COUNTER_CYCLES
    res = P.Result.decode(frames[2].payload)
    assert res.session == 0x1234 and res.input_crc == zlib.crc32(IMAGE) and len(res.output) == 10
    # DWT path: the stand-in's CYCCNT advances 64 per read, the port reads it twice per run
    assert res.count == 64


def test_closed_port_is_waited_for_not_written_into(nano33):
    """The host has not opened the port (DTR low for the first 5 polls): nothing is dropped."""
    writes, dropped, end = _run(nano33, 5)
    assert [f.type for f in _whole_frames(writes)] == [P.PONG, P.INFO, P.RESULT]
    assert not dropped and end["writes"] == 3
    assert end["delays"] == 5  # one delay(1) per poll while DTR was low


def test_frame_dropped_by_a_closed_port_is_sent_again_whole(nano33):
    """The host closes the port as the INFO reply goes out (write 2 is dropped): once the port
    is open again the same frame goes out whole, and the RESULT after it."""
    writes, dropped, end = _run(nano33, 3, 2)
    assert len(dropped) == 1 and end["writes"] == 4
    frames = _whole_frames(writes)
    assert [(f.type, f.seq) for f in frames] == [(P.PONG, 1), (P.INFO, 2), (P.RESULT, 3)]
    assert dropped[0] == len(writes[1])  # the dropped write was that very frame


def test_cortex_m0plus_counts_micros_as_cycles(tmp_path):
    """pico (counter kind systick): micros() scaled to cycles at 133 MHz, not the DWT."""
    exe = _compile("pico", tmp_path)
    assert "#define TKD_BOARD_COUNTER_SYSTICK 1" in next(tmp_path.glob("fw/*/tkd_board.h")).read_text()
    writes, _, _ = _run(exe)
    frames = _whole_frames(writes)
    res = P.Result.decode(frames[2].payload)
    # the stand-in's micros() advances 3 us per call: 3 us at 133 MHz
    assert res.count == 3 * 133
