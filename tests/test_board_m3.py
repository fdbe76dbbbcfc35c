"""The Cortex-M3 (ARMv7-M without the DSP extension or an FPU) on QEMU's mps2-an385: the quick
MNIST student evaluated over the emulated CMSDK UART with 0 host/device mismatches, and the
runtime's portable path (no SMLAD/SXTB16) chosen by the compiler's feature macros: present
for the M4, absent for the M3 and the M0."""

import shutil
import subprocess

import pytest

from tinykd.boards import load_board
from tinykd.device.check import check_model_on_device
from tinykd.resources import firmware_dir

DSP_ONLY = ("smlad", "sxtb16", "smmulr", "smlabb", "smlatt")


def _require_tools():
    for tool in ("arm-none-eabi-gcc", "arm-none-eabi-objdump", "qemu-system-arm", "make"):
        assert shutil.which(tool), f"{tool} is required for the Cortex-M3 tests (run .ci/setup)"


def test_an385_board_is_a_cortex_m3_without_dsp_or_fpu():
    b = load_board("mps2-an385")
    assert b.cpu == "cortex-m3" and b.fpu_flags == () and not b.has_dsp
    assert b.qemu_machine == "mps2-an385" and b.port == "qemu-mps" and b.uart_rx_irq == 0
    assert load_board("qemu-m3") == b


def test_quick_student_on_mps2_an385_zero_mismatches(quick_build, tmp_path):
    _require_tools()
    n = 16
    result = check_model_on_device(quick_build.out / "model_int8.tflite", "mps2-an385", tmp_path, n=n, seed=11)
    cmp = result["host_vs_device"]
    assert cmp["mismatches"] == 0 and cmp["max_difference"] == 0, cmp
    assert result["examples"] == n and result["firmware"]["board"] == "mps2-an385"
    lat = result["latency"]
    assert lat["unit"] == "instructions"
    per_mac = lat["mean"] / result["firmware"]["macs"]
    # the portable kernel, unrolled on Thumb-2: more than the M4's DSP path, far below 12
    assert 1.5 < per_mac < 8.0, per_mac


@pytest.mark.parametrize("cpu,has_dsp", [("cortex-m4", True), ("cortex-m3", False), ("cortex-m0", False)])
def test_runtime_uses_dsp_instructions_only_where_the_core_has_them(tmp_path, cpu, has_dsp):
    _require_tools()
    rt = firmware_dir() / "runtime"
    found = set()
    for src in ("tkd_fully_connected.c", "tkd_conv.c"):
        obj = tmp_path / (src + ".o")
        subprocess.run(
            ["arm-none-eabi-gcc", f"-mcpu={cpu}", "-mthumb", "-O2", "-I", str(rt), "-c", str(rt / src), "-o", str(obj)],
            check=True,
            capture_output=True,
        )
        dis = subprocess.run(["arm-none-eabi-objdump", "-d", str(obj)], capture_output=True, text=True, check=True)
        found |= {w.strip() for line in dis.stdout.splitlines() for w in line.split("\t")[2:3] if w.strip() in DSP_ONLY}
    assert bool(found) == has_dsp, (cpu, found)
