"""The device application end to end: firmware built from the TEST FIXTURE model, run in QEMU
for each virtual board, spoken to over the serial socket. Also the link's error handling
(wrong port, silent device, garbage, hash mismatch, retries) and the C protocol code
compiled for the host (COBS edge cases the fixture's short frames would not reach)."""

import hashlib
import os
import pty
import random
import shutil
import socket
import subprocess
import threading
import time
import tty
import zlib
from pathlib import Path

import numpy as np
import pytest

from tinykd.boards import load_board
from tinykd.device import protocol as P
from tinykd.device.flash import flash
from tinykd.device.link import DeviceLink
from tinykd.device.qemu import QemuInstance, free_tcp_port
from tinykd.device.run import check_model_hash, run_inference, run_inference_qemu
from tinykd.errors import TinykdError
from tinykd.firmware.project import build_project, generate_project

REPO = Path(__file__).resolve().parents[1]
FIXTURE = REPO / "tests" / "fixtures" / "fixture_model"
FIXTURE_SHA256 = hashlib.sha256(b"tinykd fixture model v1").hexdigest()
QEMU_BOARDS = ["mps2-an386", "mps2-an500", "mps2-an505", "mps3-an547"]


def _require(tool):
    assert shutil.which(tool), (
        f"{tool} is required for these tests and is not on PATH "
        "(apt-get install qemu-system-arm gcc-arm-none-eabi "
        "libnewlib-arm-none-eabi)"
    )


def fixture_model(x: np.ndarray, n_out: int = 10) -> np.ndarray:
    """Python twin of tests/fixtures/fixture_model/model.c."""
    x = x.reshape(x.shape[0], -1).astype(np.int64)
    n_in = x.shape[1]
    j = np.arange(n_in)
    w = (7 * j) % 5 - 2
    out = np.empty((x.shape[0], n_out), dtype=np.int8)
    for i in range(n_out):
        lo, hi = i * n_in // n_out, (i + 1) * n_in // n_out
        acc = (x[:, lo:hi] * w[lo:hi]).sum(axis=1) + 8 * i
        out[:, i] = np.clip(acc >> 3, -128, 127)
    return out


def _inputs(n, n_in=784, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.integers(-128, 128, size=(n, n_in), dtype=np.int8)
    x[0] = 127  # saturates high
    if n > 2:
        x[1] = np.where(np.arange(n_in) % 5 == 0, 127, -128).astype(np.int8)
        x[2] = 0  # many zero bytes on the wire
    return x


@pytest.fixture(scope="module")
def firmwares(tmp_path_factory):
    _require("arm-none-eabi-gcc")
    _require("qemu-system-arm")
    root = tmp_path_factory.mktemp("fw")
    out = {}
    for b in QEMU_BOARDS:
        proj = generate_project(b, FIXTURE, root / b)
        out[b] = build_project(proj)
    return out


@pytest.mark.slow
@pytest.mark.parametrize("board_name", QEMU_BOARDS)
def test_fixture_firmware_on_qemu(firmwares, board_name):
    board = load_board(board_name)
    build = firmwares[board_name]
    assert build.elf.is_file() and build.map_file.is_file()
    assert 0 < build.flash_used < 16 * 1024 and build.ram_used < 64 * 1024
    x = _inputs(10)
    with flash(board, build, time_limit=120) as dev, DeviceLink(dev.url, timeout=3) as link:
        t0 = time.monotonic()
        link.connect()
        info = link.hello()
        assert time.monotonic() - t0 < 10
        assert info.board == board_name and info.runtime == "tinykd"
        assert info.model_name == "fixture" and info.model_hash.hex() == FIXTURE_SHA256[:16]
        assert info.clock_hz == board.clock_hz and info.counter_name == "instructions"
        assert (info.input_bytes, info.output_bytes, info.arena_bytes) == (784, 10, 64)
        assert info.input_zero_point == -128 and info.output_zero_point == 3
        assert info.input_scale == pytest.approx(1 / 255, rel=1e-6)
        assert info.output_scale == 0.125
        check_model_hash(link, FIXTURE_SHA256)

        out, counts = run_inference(link, x, progress=False)
        np.testing.assert_array_equal(out, fixture_model(x))
        # instruction counts: repeatable to one SysTick tick (the counter's resolution at
        # -icount shift=0), on the tick grid, plausible for the loop (>= 1 instruction per
        # input byte, far fewer than 40)
        per_tick = 1e9 / board.systick_hz
        out2, counts2 = run_inference(link, x[:5], progress=False)
        np.testing.assert_array_equal(out2, out[:5])
        assert np.all(np.abs(counts2 - counts[:5]) <= per_tick + 1)
        assert np.all(counts > 784) and np.all(counts < 784 * 40)
        ticks = np.round(counts / per_tick)
        np.testing.assert_array_equal(np.floor(ticks * per_tick + 1e-9).astype(np.int64), counts)

        # the device's own error answers become TinykdErrors that say what is wrong
        with pytest.raises(TinykdError, match="model invoke failed"):
            bad = np.zeros(784, dtype=np.int8)
            bad[0], bad[1] = -128, 127
            link.infer(bad.tobytes())
        with pytest.raises(TinykdError, match="wrong payload length.*784"):
            link.infer(bytes(100))
        with pytest.raises(TinykdError, match="unsupported"):
            link.request(P.INFER_AUDIO, bytes(32), expect=P.RESULT)
        with pytest.raises(TinykdError, match="hash"):
            check_model_hash(link, hashlib.sha256(b"another model").hexdigest())
        # the link still works after errors
        np.testing.assert_array_equal(run_inference(link, x[3:4], progress=False)[0], fixture_model(x[3:4]))
        # semihosting exit ends QEMU with our status
        link.send_exit(5)
        assert dev.qemu.wait(10) == 5


@pytest.mark.slow
def test_sharded_over_two_qemu_instances_keeps_order(firmwares):
    x = _inputs(40, seed=1)
    t0 = time.monotonic()
    out, counts = run_inference_qemu(
        "mps2-an386",
        firmwares["mps2-an386"].elf,
        x,
        instances=2,
        expected_sha256_hex=FIXTURE_SHA256,
        progress=False,
        time_limit=120,
    )
    dt = time.monotonic() - t0
    np.testing.assert_array_equal(out, fixture_model(x))
    assert counts.shape == (40,) and np.all(counts > 0)
    print(f"\n2 QEMU instances: {len(x) / dt:.1f} inferences/s (784-byte frames, incl. boot)")
    with pytest.raises(TinykdError, match="hash"):
        run_inference_qemu(
            "mps2-an386", firmwares["mps2-an386"].elf, x[:4], instances=2, expected_sha256_hex="00" * 32, progress=False
        )


@pytest.mark.slow
def test_input_larger_than_a_frame_goes_in_load_chunks(tmp_path):
    _require("qemu-system-arm")
    model = tmp_path / "model"
    model.mkdir()
    (model / "model.c").write_bytes((FIXTURE / "model.c").read_bytes())
    (model / "model.h").write_text(
        (FIXTURE / "model.h").read_text().replace("TKD_MODEL_INPUT_BYTES   784", "TKD_MODEL_INPUT_BYTES   2500")
    )
    build = build_project(generate_project("mps2-an386", model, tmp_path / "proj"))
    x = _inputs(3, n_in=2500, seed=2)
    with QemuInstance("mps2-an386", build.elf, time_limit=120) as q, DeviceLink(q.url) as link:
        link.connect()
        assert link.hello().input_bytes == 2500
        out, _ = run_inference(link, x, progress=False)
        np.testing.assert_array_equal(out, fixture_model(x))
        with pytest.raises(TinykdError, match="LOAD offset"):
            link.request(P.LOAD, P.load_payload(2499, b"ab"), expect=P.LOADED)
        with pytest.raises(TinykdError, match="input"):
            run_inference(link, np.zeros((1, 784), dtype=np.int8), progress=False)
        with pytest.raises(TinykdError, match="int8"):
            run_inference(link, np.zeros((1, 2500), dtype=np.float32), progress=False)


def test_model_too_big_for_the_board_names_both_sizes(tmp_path):
    _require("arm-none-eabi-gcc")
    model = tmp_path / "model"
    model.mkdir()
    (model / "model.h").write_bytes((FIXTURE / "model.h").read_bytes())
    src = (
        (FIXTURE / "model.c")
        .read_text()
        .replace(
            "    if (input[0] == -128",
            "    if (tkd_big[(uint8_t)input[2]] == 5) {\n        return 9;\n    }\n    if (input[0] == -128",
        )
    )
    (model / "model.c").write_text(
        src.replace("static int32_t arena", "extern const volatile int8_t tkd_big[];\nstatic int32_t arena")
    )
    (model / "weights.c").write_text("#include <stdint.h>\nconst volatile int8_t tkd_big[600000] = {1, 2, 3};\n")
    proj = generate_project("mps3-an547", model, tmp_path / "proj")
    with pytest.raises(TinykdError) as e:
        build_project(proj)
    msg = str(e.value)
    assert "mps3-an547" in msg and "524288" in msg and "smaller student" in msg
    used = int(msg.split("needs ")[1].split(" B")[0])
    assert 600_000 < used < 620_000


def test_qemu_refuses_bad_images(tmp_path, firmwares):
    junk = tmp_path / "junk.elf"
    junk.write_bytes(b"not an elf at all" * 10)
    with pytest.raises(TinykdError, match="not a 32-bit little-endian ELF"):
        QemuInstance("mps2-an386", junk)
    with pytest.raises(TinykdError, match="built for another board"):
        QemuInstance("mps2-an386", firmwares["mps2-an505"].elf)
    with pytest.raises(TinykdError, match="does not exist"):
        QemuInstance("mps2-an386", tmp_path / "missing.elf")
    with pytest.raises(TinykdError, match="real hardware"):
        QemuInstance("nano33", junk)


# ------------------------------------------------------------------ link errors


def test_wrong_port_is_explained():
    with pytest.raises(TinykdError, match="Cannot open serial port /dev/ttyTINYKD_NOPE"):
        DeviceLink("/dev/ttyTINYKD_NOPE", open_timeout=0.5).open()
    port = free_tcp_port()
    t0 = time.monotonic()
    with pytest.raises(TinykdError, match="Nothing is listening"):
        DeviceLink(f"socket://127.0.0.1:{port}", open_timeout=0.5).open()
    assert time.monotonic() - t0 < 5


def test_busy_port_is_explained():
    master, slave = pty.openpty()
    name = os.ttyname(slave)
    try:
        with DeviceLink(name):
            with pytest.raises(TinykdError, match="busy or not permitted.*serial monitor"):
                DeviceLink(name).open()
    finally:
        os.close(slave)
        os.close(master)


def test_missing_qemu_says_how_to_install(firmwares, monkeypatch):
    import tinykd.device.qemu as qemu_mod

    real = shutil.which
    monkeypatch.setattr(
        qemu_mod.shutil, "which", lambda n, *a, **k: None if n == "qemu-system-arm" else real(n, *a, **k)
    )
    with pytest.raises(TinykdError, match="qemu-system-arm.*apt-get install qemu-system-arm"):
        QemuInstance("mps2-an386", firmwares["mps2-an386"].elf, time_limit=120).start()


class _FakeServer:
    """A TCP endpoint that behaves like a broken device: silent, or talking garbage."""

    def __init__(self, mode):
        self.mode = mode
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(1)
        self.port = self.sock.getsockname()[1]
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        conn, _ = self.sock.accept()
        rng = random.Random(5)
        with conn:
            conn.settimeout(0.05)
            while not self.stop.is_set():
                try:
                    conn.recv(4096)
                except (TimeoutError, OSError):
                    pass
                if self.mode == "garbage":
                    try:
                        conn.sendall(
                            b"Welcome to OtherFirmware 1.0\r\n> " + bytes(rng.randrange(256) for _ in range(64))
                        )
                    except OSError:
                        return  # the host hung up

    def close(self):
        self.stop.set()
        self.thread.join(2)
        self.sock.close()


@pytest.mark.parametrize("mode,match", [("silent", "No answer"), ("garbage", "not in the tinykd protocol")])
def test_silent_or_garbage_device(mode, match):
    srv = _FakeServer(mode)
    try:
        with DeviceLink(f"socket://127.0.0.1:{srv.port}") as link:
            with pytest.raises(TinykdError, match=match):
                link.connect(timeout=1.0)
    finally:
        srv.close()


def test_pty_link_with_banner_lost_reply_and_retry():
    """The same host code over a pty, against a Python stand-in device that prints a boot
    banner, and drops its first answer to an INFER (the host must resend)."""
    master, slave = pty.openpty()
    tty.setraw(slave)
    name = os.ttyname(slave)
    stop = threading.Event()
    state = {"dropped": 0, "session": 0}
    info = P.DeviceInfo(
        P.PROTOCOL_VERSION, 2, 1024, 1, 0, 784, 10, 1 / 255, -128, 0.125, 3, bytes(8), "pty", "tinykd", "x"
    )

    def device():
        dec = P.FrameDecoder()
        os.write(master, b"\r\nBoot banner v0.1 \x00\x13\x37 ready\r\n")
        while not stop.is_set():
            try:
                data = os.read(master, 4096)
            except OSError:
                return
            for fr in dec.feed(data):
                if fr.type == P.PING:
                    os.write(master, P.encode_frame(P.PONG, fr.seq, P.Pong(P.PROTOCOL_VERSION, 1024).encode()))
                elif fr.type == P.HELLO:
                    state["session"] = int.from_bytes(fr.payload, "little")
                    os.write(master, P.encode_frame(P.INFO, fr.seq, info.encode()))
                elif fr.type == P.INFER:
                    if state["dropped"] == 0:
                        state["dropped"] = 1
                        continue
                    x = np.frombuffer(fr.payload, dtype=np.int8)[None]
                    y = fixture_model(x)[0].tobytes()
                    res = P.Result(42, y, state["session"], zlib.crc32(fr.payload))
                    os.write(master, b"noise" + P.encode_frame(P.RESULT, fr.seq, res.encode()))

    th = threading.Thread(target=device, daemon=True)
    th.start()
    try:
        with DeviceLink(name, timeout=0.5) as link:
            link.connect(timeout=5)
            x = _inputs(2, seed=3)
            res = link.infer(x[0].tobytes())
            assert res.count == 42
            assert np.frombuffer(res.output, dtype=np.int8).tolist() == fixture_model(x[:1])[0].tolist()
            assert link.resends == 1
    finally:
        stop.set()
        os.close(slave)
        os.close(master)
        th.join(2)


@pytest.mark.slow
def test_device_survives_a_flood_of_garbage(firmwares):
    """30 KB of noise (more than the device's 2 KB receive ring, with zeros that make it
    many bad frames) while the device is busy answering them; then normal service."""
    rng = np.random.default_rng(7)
    noise = rng.integers(0, 256, 30_000, dtype=np.uint8).tobytes()
    x = _inputs(3, seed=8)
    with QemuInstance("mps2-an386", firmwares["mps2-an386"].elf, time_limit=120) as q, DeviceLink(q.url) as link:
        link.connect()
        link.ser.write(noise + bytes(range(1, 256)) * 8)  # and one over-long frame
        link.ser.flush()
        time.sleep(0.5)
        link.drain()
        link.connect(timeout=10)
        out, _ = run_inference(link, x, progress=False)
        np.testing.assert_array_equal(out, fixture_model(x))


@pytest.mark.slow
def test_device_gone_mid_run(firmwares):
    with (
        QemuInstance("mps2-an386", firmwares["mps2-an386"].elf, time_limit=120) as q,
        DeviceLink(q.url, timeout=0.5, retries=1) as link,
    ):
        link.connect()
        link.hello()
        q.stop()
        assert not q.alive()
        with pytest.raises(TinykdError, match="disconnected|did not answer"):
            link.infer(bytes(784))


# ------------------------------------------------------------------ C protocol on the host

HOST_PORT_C = r"""
#include <stdio.h>
#include <stdlib.h>
#include "tkd_app.h"
#include "tkd_port.h"
void tkd_port_init(void) {}
int tkd_port_uart_read_byte(void) { int c = getchar(); if (c == EOF) { fflush(stdout); exit(0); } return c; }
void tkd_port_uart_write(const uint8_t *d, uint32_t n) { fwrite(d, 1, n, stdout); }
void tkd_port_counter_start(void) {}
uint32_t tkd_port_counter_read(void) { return 77u; }
uint8_t tkd_port_counter_kind(void) { return TKD_COUNTER_CYCLES; }
const char *tkd_port_board_name(void) { return "host"; }
uint32_t tkd_port_clock_hz(void) { return 1u; }
int tkd_port_exit(int code) { (void)code; return -1; }
int main(void) { tkd_app_run(); return 0; }
"""

ECHO_MODEL_H = """#include <stdint.h>
#define TKD_MODEL_INPUT_BYTES   1000
#define TKD_MODEL_OUTPUT_BYTES  1000
#define TKD_MODEL_ARENA_BYTES   0
#define TKD_MODEL_INPUT_SCALE   1.0f
#define TKD_MODEL_INPUT_ZERO_POINT  0
#define TKD_MODEL_OUTPUT_SCALE  1.0f
#define TKD_MODEL_OUTPUT_ZERO_POINT 0
#define TKD_MODEL_NAME "echo"
extern const uint8_t tkd_model_hash[8];
int tkd_model_invoke(const int8_t *input, int8_t *output);
"""

ECHO_MODEL_C = """#include <string.h>
#include "model.h"
const uint8_t tkd_model_hash[8] = {1, 2, 3, 4, 5, 6, 7, 8};
int tkd_model_invoke(const int8_t *input, int8_t *output)
{ memcpy(output, input, TKD_MODEL_INPUT_BYTES); return 0; }
"""


def test_c_protocol_code_on_the_host(tmp_path):
    """Compile firmware/app with the host compiler and an echo model; outputs of 1000 bytes
    with zero-free runs of 253/254/255 bytes and zeros at the edges exercise every COBS
    block case of the device's encoder and decoder; corrupted frames get ERROR(BAD_FRAME)."""
    _require("gcc")
    (tmp_path / "host_port.c").write_text(HOST_PORT_C)
    (tmp_path / "model.h").write_text(ECHO_MODEL_H)
    (tmp_path / "model.c").write_text(ECHO_MODEL_C)
    app = REPO / "firmware" / "app"
    exe = tmp_path / "app"
    subprocess.run(
        [
            "gcc",
            "-std=c99",
            "-O1",
            "-Wall",
            "-Wextra",
            "-Werror",
            "-I",
            str(app),
            "-I",
            str(tmp_path),
            *map(str, app.glob("*.c")),
            str(tmp_path / "host_port.c"),
            str(tmp_path / "model.c"),
            "-o",
            str(exe),
        ],
        check=True,
    )
    rng = random.Random(6)
    cases = []
    for run in (1, 252, 253, 254, 255, 508, 509, 999, 1000):
        for zero_first in (False, True):
            x = bytearray(rng.randrange(1, 256) for _ in range(1000))
            if run < 1000:
                x[run] = 0  # a zero-free run of exactly `run` bytes, then a zero
            if zero_first:
                x[0] = 0
            x[-1] = 0 if run % 2 else x[-1]
            cases.append(bytes(x))
    stream = b"".join(P.encode_frame(P.INFER, i + 1, c) for i, c in enumerate(cases))
    bad = bytearray(P.encode_frame(P.HELLO, 500))
    bad[3] ^= 0x01
    stream += bytes(bad) + P.encode_frame(P.HELLO, 501) + b"\x05\x01\x02" * 500 + b"\x00"
    out = subprocess.run([str(exe)], input=stream, capture_output=True, timeout=20).stdout
    frames = P.FrameDecoder().feed(out)
    results = [f for f in frames if f.type == P.RESULT]
    assert [f.seq for f in results] == list(range(1, len(cases) + 1))
    for f, c in zip(results, cases):
        r = P.Result.decode(f.payload)
        assert r.count == 77 and r.output == c
        assert r.session == 0 and r.input_crc == zlib.crc32(c)  # no HELLO yet: session 0
    errs = [P.DeviceErrorMsg.decode(f.payload) for f in frames if f.type == P.ERROR]
    assert [e.code for e in errs] == [P.ERR_BAD_FRAME, P.ERR_TOO_LONG]
    info = [P.DeviceInfo.decode(f.payload) for f in frames if f.type == P.INFO]
    assert len(info) == 1 and info[0].model_name == "echo" and info[0].board == "host"
