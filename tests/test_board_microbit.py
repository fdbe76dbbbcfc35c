"""The BBC micro:bit v1 port (firmware/ports/nrf51: nRF51822, Cortex-M0, 256 KB flash, 16 KB RAM)
on QEMU's `microbit` machine: MNIST students evaluated over the emulated nRF51 UART with 0
host/device mismatches on the runtime's portable (Thumb-1, no-DSP) path, the 16 KB RAM budget
with its small stack, and the physical board's image (crystal start, cycle counter, no
semihosting) built and run on the same emulated chip.

The quick MNIST student (784-300-300-10, 329 K int8 weights) needs more flash than the
micro:bit has; the flash check says so. A student that fits (784-100-10, distilled from the
quick build's teacher) runs on it."""

import re
import shutil
import socket
import subprocess
import time

import numpy as np
import pytest

from tinykd.boards import load_board
from tinykd.device import protocol as P
from tinykd.device.check import check_model_on_device
from tinykd.device.link import DeviceLink
from tinykd.device.qemu import QemuInstance, free_tcp_port, qemu_command
from tinykd.device.run import run_inference
from tinykd.errors import FirmwareTooLarge, TinykdError
from tinykd.firmware.build import build_firmware
from tinykd.fuzz.random_models import ModelSpec, build_tflite

# A CNN whose ADD (x + conv(x) over 12x12x8 = 1152 values) takes the runtime's table path,
# the deepest stack frame of any kernel (two 256-entry tables), plus conv, depthwise, both
# pools, dense and softmax.
RESIDUAL_CNN = [
    {"kind": "conv", "kh": 3, "kw": 3, "stride": 1, "dilation": 1, "padding": "same", "act": "relu", "filters": 8},
    {"kind": "residual", "k": 3, "two_branches": False, "filters": 8, "inner_act": "relu", "act": None},
    {"kind": "dw", "kh": 3, "kw": 3, "stride": 2, "dilation": 1, "padding": "same", "act": "relu6", "multiplier": 1},
    {"kind": "avgpool", "k": 2, "stride": 1, "padding": "same"},
    {"kind": "maxpool", "k": 2, "stride": 2, "padding": "valid"},
    {"kind": "flatten"},
    {"kind": "dense", "units": 10, "act": None},
    {"kind": "softmax"},
]


def _require_tools():
    for tool in ("arm-none-eabi-gcc", "qemu-system-arm", "make"):
        assert shutil.which(tool), f"{tool} is required for the micro:bit tests (run .ci/setup)"


@pytest.fixture(scope="module")
def small_student(quick_build, mnist_dir, tmp_path_factory):
    """A quick MNIST student that fits the micro:bit: 784-100-10, from the quick build's teacher."""
    from tinykd.config import resolve
    from tinykd.pipeline import Build

    overrides = {
        "data": {"dir": str(mnist_dir)},
        "student": {"arch": "mlp-100"},
        "teacher": {"model": str(quick_build.out / "teacher.keras")},
    }
    build = Build(resolve(task="mnist", quick=True, overrides=overrides), tmp_path_factory.mktemp("mb-student"))
    build.log = lambda m: None
    build.run("convert")
    return build.out / "model_int8.tflite"


@pytest.fixture(scope="module")
def residual_cnn(tmp_path_factory):
    layers = []
    for L in RESIDUAL_CNN:
        L = dict(L)
        if L["kind"] in ("conv", "dw", "dense", "residual"):
            L.update(wscale=1.0, bias=True)
        layers.append(L)
    spec = ModelSpec(1515, "conv", (12, 12, 3), layers, (-1.0, 1.0))
    return build_tflite(spec, tmp_path_factory.mktemp("mb-cnn") / "residual_cnn.tflite")


def test_quick_student_needs_more_flash_than_the_microbit_has(quick_build, tmp_path):
    _require_tools()
    with pytest.raises(FirmwareTooLarge) as e:
        build_firmware(quick_build.out / "model_int8.tflite", "microbit", tmp_path / "fw")
    msg = str(e.value)
    m = re.search(r"needs (\d+) B of flash \(budget 262144 B\) and (\d+) B of RAM \(budget 16384 B\)", msg)
    assert m, msg
    flash, ram = int(m.group(1)), int(m.group(2))
    assert flash > 262_144 and "over flash" in msg  # the weights alone are 329 KB
    assert ram < 16_384  # RAM is not what stops it


def test_small_student_on_microbit_qemu_zero_mismatches(small_student, tmp_path):
    _require_tools()
    n = 12
    result = check_model_on_device(small_student, "microbit-qemu", tmp_path, n=n, seed=7)
    cmp = result["host_vs_device"]
    assert cmp["mismatches"] == 0 and cmp["max_difference"] == 0, cmp
    assert result["examples"] == n
    fw = result["firmware"]
    assert fw["board"] == "microbit-qemu"
    # 784-100-10: ~80 KB of weights and ~8 KB of code in 256 KB; RAM = app buffers + arena +
    # the board's 3 KB stack, well inside 16 KB
    assert 80_000 < fw["flash_used"] < 100_000 and fw["ram_used"] < 8_192
    lat = result["latency"]
    assert lat["unit"] == "instructions"
    # the portable Thumb-1 kernel: a few instructions per MAC (the M4's DSP path needs ~1-2)
    per_mac = lat["mean"] / fw["macs"]
    assert 2.0 < per_mac < 12.0, per_mac


def test_every_kernel_on_the_cortex_m0_within_its_3kb_stack(residual_cnn, tmp_path):
    """Bit-exact conv/depthwise/ADD/pool/softmax on ARMv6-M, and the stack never reaches the
    bottom of its 3 KB block: QEMU's RAM starts zeroed, so the lowest non-zero word of the
    stack block after the inferences is the deepest use (stack painting for free)."""
    _require_tools()
    board = load_board("microbit-qemu")
    assert board.stack_bytes == 3072 and load_board("microbit").stack_bytes == 3072
    result = check_model_on_device(residual_cnn, board, tmp_path, n=8, seed=3)
    assert result["host_vs_device"]["mismatches"] == 0, result["host_vs_device"]
    assert "ADD" in result["firmware"]["ops"]

    elf = tmp_path / "firmware" / "build" / "firmware.elf"
    nm = subprocess.run(["arm-none-eabi-nm", str(elf)], capture_output=True, text=True, check=True).stdout
    sym = {p[2]: int(p[0], 16) for p in (line.split() for line in nm.splitlines()) if len(p) == 3}
    sstack, estack = sym["_sstack"], sym["_estack"]
    assert estack - sstack >= 3072
    deepest = _deepest_stack_use(board, elf, sstack, estack)
    assert 1024 < deepest < 3072 - 256, deepest  # the ADD's tables are in use, with margin


def _deepest_stack_use(board, elf, sstack: int, estack: int) -> int:
    mon_port, ser_port = free_tcp_port(), free_tcp_port()
    cmd = qemu_command(board, elf, ser_port)
    cmd[cmd.index("-monitor") + 1] = f"tcp:127.0.0.1:{mon_port},server=on,wait=off"
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        with DeviceLink(f"socket://127.0.0.1:{ser_port}", timeout=5) as link:
            link.connect()
            n_in = link.hello().input_bytes
            x = np.random.default_rng(0).integers(-128, 128, size=(3, n_in), dtype=np.int8)
            run_inference(link, x, progress=False)
            link.profile(x[0].tobytes())
        words = _read_words(mon_port, sstack, (estack - sstack) // 4)
    finally:
        proc.kill()
        proc.wait(10)
    used = [a for a, w in words if w]
    assert used and len(words) == (estack - sstack) // 4
    return estack - min(used)


def _read_words(mon_port: int, addr: int, count: int) -> list[tuple[int, int]]:
    """`xp` over QEMU's monitor: (address, word) pairs."""
    with socket.create_connection(("127.0.0.1", mon_port), timeout=10) as s:
        s.sendall(f"xp /{count}xw 0x{addr:08x}\n".encode())
        out, deadline = b"", time.monotonic() + 10
        s.settimeout(0.5)
        while time.monotonic() < deadline:
            try:
                chunk = s.recv(65536)
            except TimeoutError:
                if out.count(b"\n") > count // 4:
                    break
                continue
            if not chunk:
                break
            out += chunk
    words = []
    for line in out.decode(errors="replace").splitlines():
        m = re.match(r"\s*([0-9a-f]{8,}):((?:\s+0x[0-9a-f]+)+)", line)
        if m:
            base = int(m.group(1), 16)
            words += [(base + 4 * i, int(w, 16)) for i, w in enumerate(m.group(2).split())]
    return words


def test_physical_microbit_image_builds_fits_and_runs_on_the_emulated_chip(small_student, tmp_path):
    """The real board's build: crystal start (times out on QEMU's stub CLOCK block), SysTick
    cycles, no semihosting (EXIT is answered 'unsupported' instead of locking the core up),
    an Intel HEX image for the DAPLink drive. The same nRF51 runs it in QEMU."""
    _require_tools()
    board = load_board("microbit")
    assert board.flash_method == "mass-storage" and board.emulated_by == "microbit-qemu"
    assert (board.usb_vid, board.usb_pids) == (0x0D28, (0x0204,))
    assert board.flash_options["volume_label"] == "MICROBIT" and board.counter_unit == "cycles"
    fw = build_firmware(small_student, board, tmp_path / "fw")
    elf = fw.build.elf
    assert fw.build.flash_used < board.flash_bytes and fw.build.ram_used < board.ram_bytes
    hexfile = elf.with_suffix(".hex")
    assert hexfile.is_file() and hexfile.read_text().startswith(":")
    header = (tmp_path / "fw" / "tkd_board.h").read_text()
    assert "TKD_BOARD_COUNTER_SYSTICK 1" in header and "TKD_NRF51_HFCLK_XTAL 1" in header
    assert "TKD_NRF51_SEMIHOSTING 0" in header and "#define TKD_IRQ_VECTORS 3" in header

    x = np.random.default_rng(1).integers(-128, 128, size=(2, 784), dtype=np.int8)
    with QemuInstance("microbit-qemu", elf, time_limit=60) as q, DeviceLink(q.url, timeout=5) as link:
        link.connect()
        info = link.hello()
        assert info.board == "microbit" and info.counter_name == "cycles"
        assert info.clock_hz == 16_000_000
        out, counts = run_inference(link, x, progress=False)
        assert out.shape == (2, 10) and np.all(counts > 0)
        with pytest.raises(TinykdError, match="unsupported"):
            link.request(P.EXIT, bytes([3]), expect=P.PONG)
        # still alive after the refused exit
        np.testing.assert_array_equal(run_inference(link, x[:1], progress=False)[0], out[:1])
