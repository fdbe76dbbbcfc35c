"""Serial faults on purpose (tinykd.device.faults): a relay that drops, flips, duplicates and
delays bytes, hangs up, and swaps the device behind the link for a freshly booted one. The
host must never take a wrong result: it resends, refuses results computed from another input,
re-handshakes after a device reset, keeps its sequence numbers across reconnections, and a
reduced soak (the figures of benchmarks/reliability.md at one rate) ends with 0 wrong results."""

import socket
import threading
import time
import zlib

import numpy as np
import pytest
from test_device_qemu import FIXTURE, _require, fixture_model

from tinykd.device import protocol as P
from tinykd.device.faults import FaultProxy, soak
from tinykd.device.link import DeviceLink
from tinykd.device.qemu import QemuInstance
from tinykd.errors import TinykdError
from tinykd.firmware.project import build_project, generate_project

N_IN = 64
SHA = __import__("hashlib").sha256(b"tinykd fixture model v1").hexdigest()


@pytest.fixture(scope="module")
def small_fw(tmp_path_factory):
    """The test fixture model with 64 inputs: short frames, as a small MLP has."""
    _require("arm-none-eabi-gcc")
    _require("qemu-system-arm")
    root = tmp_path_factory.mktemp("fw64")
    model = root / "model"
    model.mkdir()
    (model / "model.c").write_bytes((FIXTURE / "model.c").read_bytes())
    h = (FIXTURE / "model.h").read_text()
    (model / "model.h").write_text(h.replace("TKD_MODEL_INPUT_BYTES   784", f"TKD_MODEL_INPUT_BYTES   {N_IN}"))
    return build_project(generate_project("mps2-an386", model, root / "proj")).elf


def _inputs(n, seed=0):
    x = np.random.default_rng(seed).integers(-128, 128, size=(n, N_IN), dtype=np.int8)
    x[:, 0] = 0  # the fixture model fails on purpose for inputs starting -128, 127
    return x


class _Echo:
    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(1)
        self.url = f"socket://127.0.0.1:{self.sock.getsockname()[1]}"
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        conn, _ = self.sock.accept()
        with conn:
            while data := conn.recv(4096):
                conn.sendall(data)


def _through(proxy, data: bytes, seconds=3.0) -> bytes:
    with socket.create_connection(("127.0.0.1", proxy.port)) as c:
        c.sendall(data)
        c.settimeout(0.3)
        got = b""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and len(got) < len(data):
            try:
                got += c.recv(65536)
            except TimeoutError:
                pass
        return got


def test_proxy_forwards_untouched_at_rate_0_and_damages_at_its_rate():
    data = bytes(np.random.default_rng(1).integers(0, 256, 20_000, dtype=np.uint8))
    with FaultProxy(_Echo().url, rate=0.0) as proxy:
        assert _through(proxy, data) == data
    with FaultProxy(_Echo().url, rate=0.01, kinds=("flip",), seed=4) as proxy:
        got = _through(proxy, data)
        flips = sum(proxy.faults.values())
        assert len(got) == len(data) and 250 < flips < 550  # 40 000 bytes forwarded at 1 %
        assert 0 < sum(a != b for a, b in zip(got, data)) <= flips
    with FaultProxy(_Echo().url, rate=0.01, kinds=("drop",), seed=4) as proxy:
        got = _through(proxy, data, seconds=1.5)
        assert len(got) == len(data) - sum(proxy.faults.values())
    with pytest.raises(TinykdError, match="rate"):
        FaultProxy("socket://127.0.0.1:1", rate=1.5)


def test_reset_between_load_and_infer_is_detected_and_rehandshaken(small_fw):
    """The device reboots after the host loaded its input in chunks: its buffer is zeros now.
    The result of running it carries session 0: the host re-handshakes (HELLO, model hash)
    and sends the input again instead of taking the result."""
    x = _inputs(2, seed=2)
    with (
        QemuInstance("mps2-an386", small_fw, time_limit=120) as first,
        QemuInstance("mps2-an386", small_fw, time_limit=120) as second,
        FaultProxy(first.url, rate=0.0) as proxy,
        DeviceLink(proxy.url, timeout=0.5) as link,
    ):
        link.connect()
        link.hello()
        session = link.session
        link.max_payload = 24  # the 64-byte input goes in three LOAD chunks
        upload = link._upload

        def upload_then_reset(*args):
            upload(*args)
            if not link.resets:
                proxy.switch(second.url)  # a freshly booted device behind the same link
                time.sleep(0.3)

        link._upload = upload_then_reset
        res = link.infer(x[0].tobytes())
        assert np.frombuffer(res.output, np.int8).tolist() == fixture_model(x[:1])[0].tolist()
        assert link.resets == 1 and link.session != session and res.session == link.session
        assert res.input_crc == zlib.crc32(x[0].tobytes())
        assert link.info.model_hash.hex() == SHA[:16]


def test_sequence_numbers_carry_on_across_a_reconnection(small_fw):
    x = _inputs(2, seed=3)
    with (
        QemuInstance("mps2-an386", small_fw, time_limit=120) as q,
        FaultProxy(q.url, rate=0.0) as proxy,
        DeviceLink(proxy.url, timeout=0.5) as link,
    ):
        other = DeviceLink(proxy.url)
        assert other._seq != link._seq  # each link starts at a random number
        link.connect()
        link.hello()
        session = link.session
        link.infer(x[0].tobytes())
        before = link._seq
        proxy.close_link()
        time.sleep(0.2)
        res = link.infer(x[1].tobytes())
        assert np.frombuffer(res.output, np.int8).tolist() == fixture_model(x[1:])[0].tolist()
        assert link.reconnects == 1 and link.session != session
        assert 1 <= (link._seq - before) % 0x10000 <= 8  # continued, not restarted


class _LyingDevice:
    """Answers PING and HELLO; its first RESULT was computed from another input (a request
    damaged in a way the frame CRC missed), later ones from the right one."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(1)
        self.url = f"socket://127.0.0.1:{self.sock.getsockname()[1]}"
        self.infers = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        conn, _ = self.sock.accept()
        dec, session = P.FrameDecoder(), 0
        info = P.DeviceInfo(2, 1, 1024, 1, 0, N_IN, 10, 0.004, -128, 0.125, 3, bytes(8), "fake", "tinykd", "x")
        with conn:
            while data := conn.recv(4096):
                for fr in dec.feed(data):
                    if fr.type == P.PING:
                        out = P.encode_frame(P.PONG, fr.seq, P.Pong(P.PROTOCOL_VERSION, 1024).encode())
                    elif fr.type == P.HELLO:
                        session = int.from_bytes(fr.payload, "little")
                        out = P.encode_frame(P.INFO, fr.seq, info.encode())
                    else:
                        self.infers += 1
                        seen = fr.payload if self.infers > 1 else bytes(len(fr.payload))
                        y = fixture_model(np.frombuffer(seen, np.int8)[None])[0].tobytes()
                        res = P.Result(9, y, session, zlib.crc32(seen))
                        out = P.encode_frame(P.RESULT, fr.seq, res.encode())
                    conn.sendall(out)


def test_a_result_computed_from_another_input_is_refused():
    dev = _LyingDevice()
    x = _inputs(1, seed=5)
    with DeviceLink(dev.url, timeout=0.5) as link:
        link.connect()
        res = link.infer(x[0].tobytes())  # the link says HELLO first (it needs a session)
        assert np.frombuffer(res.output, np.int8).tolist() == fixture_model(x)[0].tolist()
        assert link.rejected == 1 and dev.infers == 2


def test_soak_at_one_percent_per_byte_gives_no_wrong_result(small_fw, tmp_path):
    """The reduced benchmark: 1 byte in 100 damaged both ways, the link hung up every 2.5 s,
    the device reset every 4 s; every result that reaches the caller is the right one."""
    x = _inputs(400, seed=6)
    t0 = time.monotonic()
    r = soak(
        "mps2-an386",
        small_fw,
        x,
        fixture_model(x),
        expected_sha256=SHA,
        rate=1e-2,
        partial=tmp_path / "partial.npz",
        seed=1,
        close_every=2.5,
        reset_every=4.0,
    )
    print(f"\nsoak 1e-2: {r}")
    assert r.completed and r.wrong_results == 0, r.stops
    assert r.inferences_retried > 20 and r.link_closes >= 1 and r.device_resets >= 1
    assert r.reconnects >= 1 and r.resets_detected >= 1
    assert sum(r.faults.values()) > 200
    assert time.monotonic() - t0 < 90
