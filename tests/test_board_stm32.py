"""Issue 15: the bare-metal STM32F4 port (firmware/ports/stm32f4) for the Nucleo-64 boards,
proven on QEMU's netduinoplus2 (an STM32F405).

- The board files' facts, and the emulator's own account of netduinoplus2 (`info mtree`,
  `info qtree` through the monitor): memory map, which USART is QEMU's first serial port, the
  CPU clock its SysTick runs on.
- The quick MNIST student evaluated over netduinoplus2's emulated USART1 with 0 host/device
  mismatches (`tinykd evaluate --model --random` through its Python API).
- The Nucleo images link for 0x08000000 with their vector table there and select USART2 on
  PA2/PA3; the unchanged nucleo-f411re image even runs on netduinoplus2 with the link on
  QEMU's second serial port (USART2): QEMU does not model the RCC, so every ready-flag wait
  of the clock set-up runs into its time limit and the port falls back to 16 MHz HSI - the
  path a real board takes when a clock step fails.
"""

import os
import re
import shutil
import signal
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tinykd.boards import load_board
from tinykd.device import protocol as P
from tinykd.device.link import DeviceLink
from tinykd.device.qemu import free_tcp_port, qemu_command
from tinykd.device.run import run_inference
from tinykd.errors import TinykdError
from tinykd.firmware.project import build_project, generate_project

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_device_qemu import FIXTURE, _inputs, fixture_model  # noqa: E402

NUCLEOS = ["nucleo-f411re", "nucleo-f446re"]
HSI_HZ = 16_000_000


def _require(*tools):
    for tool in tools:
        assert shutil.which(tool), (
            f"{tool} is required for these tests and is not on PATH "
            "(apt-get install qemu-system-arm gcc-arm-none-eabi libnewlib-arm-none-eabi)"
        )


@pytest.fixture(scope="module")
def fixture_builds(tmp_path_factory):
    """The test fixture model (tiny, builds in a second) for each stm32f4 board."""
    _require("arm-none-eabi-gcc")
    root = tmp_path_factory.mktemp("stm32")
    return {b: build_project(generate_project(b, FIXTURE, root / b)) for b in ["netduinoplus2", *NUCLEOS]}


# ------------------------------------------------------------------ board facts


def _qemu_monitor(machine: str) -> str:
    """`info mtree -f` and `info qtree` of a machine that never starts running (-S)."""
    _require("qemu-system-arm")
    res = subprocess.run(
        ["qemu-system-arm", "-M", machine, "-nographic", "-monitor", "stdio", "-serial", "null", "-S"],
        input="info mtree -f\ninfo qtree\nquit\n",
        capture_output=True,
        text=True,
        timeout=30,
    )
    return res.stdout


def test_netduinoplus2_board_file_matches_what_qemu_models():
    b = load_board("netduinoplus2")
    assert b.is_qemu and b.is_virtual and b.qemu_machine == "netduinoplus2" and b.port == "stm32f4"
    assert b.core == "cortex-m4f" and b.has_dsp and "-mfloat-abi=hard" in b.fpu_flags
    assert (b.flash_origin, b.flash_bytes) == (0x08000000, 1 << 20)
    assert (b.ram_origin, b.ram_bytes) == (0x20000000, 128 << 10)  # SRAM1+2 only, no CCM
    assert (b.uart_base, b.uart_rx_irq, b.counter) == (0x40011000, 37, "systick-icount")
    assert b.clock_hz == b.systick_hz == 168_000_000
    assert b.defines["TKD_STM32_CLOCK_SETUP"] == 0 and b.defines["TKD_STM32_SEMIHOSTING"] == 1

    text = _qemu_monitor(b.qemu_machine)
    regions = {
        m.group(3): (int(m.group(1), 16), int(m.group(2), 16) + 1 - int(m.group(1), 16))
        for m in re.finditer(r"([0-9a-f]{16})-([0-9a-f]{16}) \(prio 0, (?:rom|ram)\): (STM32F405\.\w+)", text)
    }
    flash_at, flash_len = regions["STM32F405.flash"]
    assert flash_at in (0, b.flash_origin) and flash_len == b.flash_bytes
    sram_at, sram_len = regions["STM32F405.sram"]
    # QEMU maps 192 KB (SRAM1, SRAM2 and the CCM's size) at 0x20000000; the chip has 128.
    assert sram_at == b.ram_origin and sram_len == 192 << 10 >= b.ram_bytes
    assert f"{b.flash_origin:016x}-" in text  # the flash at its own address, not only the alias
    # QEMU's first -serial ("serial0") is the USART at the board's [uart] base.
    usarts = re.findall(r'dev: stm32f2xx-usart.*?chardev = "(\w*)"\s+mmio ([0-9a-f]+)/', text, re.S)
    assert len(usarts) == 7
    assert [int(base, 16) for dev, base in usarts if dev == "serial0"] == [b.uart_base]
    # SysTick's processor clock (CLKSOURCE = 1, which the port selects) is the board clock.
    assert re.search(r'dev: armv7m_systick.*?clock-in "cpuclk" freq_hz=168 MHz', text, re.S)


@pytest.mark.parametrize("name", NUCLEOS)
def test_nucleo_board_facts_and_clock_tree(name):
    b = load_board(name)
    assert not b.is_qemu and b.emulated_by == "netduinoplus2" and load_board(b.emulated_by).port == b.port
    assert b.core == "cortex-m4f" and b.counter == "dwt" and b.counter_unit == "cycles"
    assert (b.flash_origin, b.flash_bytes, b.ram_origin, b.ram_bytes) == (0x08000000, 512 << 10, 0x20000000, 128 << 10)
    assert b.flash_methods == ("openocd", "st-flash", "pyocd", "mass-storage")
    assert b.usb_vid == 0x0483 and b.usb_pids[0] == 0x374B
    assert b.flash_options["openocd"] == ["interface/stlink.cfg", "target/stm32f4x.cfg"]
    part = name.split("-")[1]  # f411re
    assert b.flash_options["pyocd_target"] == f"stm32{part}tx"
    assert b.flash_options["volume_label"] == f"NODE_{part.upper()}"
    assert 5 < b.price_usd < 40 and b.price_source.startswith("https://www.st.com/") and b.price_date
    # USART2 on PA2/PA3 AF7, the ST-LINK's virtual COM port; NVIC line 38.
    d = b.defines
    assert (b.uart_base, b.uart_rx_irq) == (0x40004400, 38)
    assert (d["TKD_STM32_UART_APB"], d["TKD_STM32_UART_RCC_BIT"]) == (1, 17)
    assert (d["TKD_STM32_UART_GPIO_BASE"], d["TKD_STM32_UART_TX_PIN"], d["TKD_STM32_UART_RX_PIN"]) == (
        "0x40020000u",
        2,
        3,
    )
    assert d["TKD_STM32_UART_AF"] == 7 and d["TKD_STM32_SEMIHOSTING"] == 0
    # The PLL gives the board clock from HSI within the datasheet limits: VCO input 1-2 MHz,
    # VCO output 100-432 MHz, APB1 <= 50 / 45 MHz, APB2 <= 100 / 90 MHz (F411 / F446).
    assert d["TKD_STM32_CLOCK_SETUP"] == 1
    vco_in = HSI_HZ / d["TKD_STM32_PLL_M"]
    vco = vco_in * d["TKD_STM32_PLL_N"]
    assert 1e6 <= vco_in <= 2e6 and 100e6 <= vco <= 432e6 and d["TKD_STM32_PLL_P"] in (2, 4, 6, 8)
    assert vco / d["TKD_STM32_PLL_P"] == b.clock_hz and 2 <= d["TKD_STM32_PLL_Q"] <= 15
    apb1_max, apb2_max, ws = {"f411re": (50e6, 100e6, 3), "f446re": (45e6, 90e6, 5)}[part]
    assert b.clock_hz / d["TKD_STM32_APB1_DIV"] <= apb1_max and b.clock_hz / d["TKD_STM32_APB2_DIV"] <= apb2_max
    assert d["TKD_STM32_FLASH_WAIT_STATES"] == ws and d["TKD_STM32_OVERDRIVE"] == (b.clock_hz > 168e6)


# ------------------------------------------------------------------ Nucleo images


@pytest.mark.parametrize("name", NUCLEOS)
def test_nucleo_image_boots_from_flash_with_usart2(fixture_builds, name):
    b = load_board(name)
    build = fixture_builds[name]
    header = (build.elf.parent.parent / "tkd_board.h").read_text()
    for line in (
        "#define TKD_UART_BASE 0x40004400u",
        "#define TKD_UART_RX_IRQ 38",
        "#define TKD_BOARD_COUNTER_DWT 1",
        "#define TKD_STM32_UART_TX_PIN 2",
        "#define TKD_STM32_UART_RX_PIN 3",
        "#define TKD_STM32_UART_AF 7",
        "#define TKD_STM32_SEMIHOSTING 0",
    ):
        assert line in header.splitlines(), line
    # The .bin starts at 0x08000000 with the vector table: initial SP = top of the 128 KB
    # SRAM, reset handler in flash (Thumb bit set), USART2's slot (16 + 38) the port's handler.
    nm = subprocess.run(["arm-none-eabi-nm", str(build.elf)], capture_output=True, text=True, check=True).stdout
    rows = [line.split() for line in nm.splitlines()]
    syms = {row[2]: int(row[0], 16) for row in rows if len(row) == 3}
    assert syms["tkd_vector_table"] == b.flash_origin == 0x08000000
    table = struct.unpack_from("<55I", build.elf.with_suffix(".bin").read_bytes())
    assert table[0] == b.ram_origin + b.ram_bytes == 0x20020000
    assert table[1] == syms["Reset_Handler"] | 1 and b.flash_origin <= table[1] < b.flash_origin + b.flash_bytes
    assert table[16 + 38] == syms["tkd_port_irq_handler"] | 1
    # No semihosting BKPT on hardware: without a debugger attached it would hard-fault.
    dis = subprocess.run(["arm-none-eabi-objdump", "-d", str(build.elf)], capture_output=True, text=True).stdout
    assert "bkpt" not in dis
    assert 0 < build.flash_used < 16 << 10


def test_nucleo_f411re_image_on_netduinoplus2_usart2(fixture_builds):
    """The nucleo-f411re image, unchanged, on the F405 model with the link on USART2 (QEMU's
    second serial): USART2 at 0x40004400 with NVIC line 38 works, the clock set-up runs into
    its ready-flag time limits (QEMU has no RCC model) and falls back to 16 MHz HSI, which the
    device reports; it counts DWT cycles (QEMU's DWT reads 0) and declines EXIT."""
    _require("qemu-system-arm")
    build = fixture_builds["nucleo-f411re"]
    port = free_tcp_port()
    cmd = qemu_command(load_board("netduinoplus2"), build.elf, port)
    i = cmd.index("-serial")
    cmd[i:i] = ["-serial", "null"]
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, start_new_session=True)
    try:
        with DeviceLink(f"socket://127.0.0.1:{port}", timeout=3) as link:
            link.connect()
            info = link.hello()
            assert info.board == "nucleo-f411re" and info.clock_hz == HSI_HZ
            assert info.counter_name == "cycles"
            x = _inputs(6)
            out, counts = run_inference(link, x, progress=False)
            np.testing.assert_array_equal(out, fixture_model(x))
            assert not counts.any()
            with pytest.raises(TinykdError, match="unsupported"):
                link.request(P.EXIT, bytes([3]), expect=P.PONG)
            np.testing.assert_array_equal(run_inference(link, x[:1], progress=False)[0], fixture_model(x[:1]))
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)


# ------------------------------------------------------------------ netduinoplus2 end to end


def test_fixture_counts_on_netduinoplus2_are_instructions(fixture_builds):
    """SysTick at 168 MHz under -icount shift=0: the same M4 code counts the same
    instructions as on mps2-an386 (25 MHz SysTick), to within one tick of either."""
    from tinykd.device.flash import flash

    _require("qemu-system-arm")
    b = load_board("netduinoplus2")
    x = _inputs(4)
    with flash(b, fixture_builds["netduinoplus2"], time_limit=60) as dev, DeviceLink(dev.url, timeout=3) as link:
        link.connect()
        info = link.hello()
        assert info.board == b.name and info.clock_hz == b.clock_hz and info.counter_name == "instructions"
        out, counts = run_inference(link, x, progress=False)
        np.testing.assert_array_equal(out, fixture_model(x))
        link.send_exit(7)
        assert dev.qemu.wait(10) == 7
    # The fixture model's loop on mps2-an386 counts 8 160 instructions (8 120 when the input
    # has its pattern); a wrong SysTick clock would be off by a factor (168 / 21 MHz: 8x).
    assert np.all(np.abs(counts - 8150) < 80), counts


@pytest.mark.slow
def test_quick_mnist_student_on_netduinoplus2(quick_build, tmp_path):
    """`tinykd evaluate --model <quick student> --board netduinoplus2 --random 20`: 0 outputs
    differ from TFLite Micro, over the emulated USART1."""
    from tinykd.device.check import check_model_on_device

    _require("qemu-system-arm", "arm-none-eabi-gcc")
    n = 20
    tflite = quick_build.out / "model_int8.tflite"
    result = check_model_on_device(tflite, "netduinoplus2", tmp_path, n=n, seed=15)
    cmp = result["host_vs_device"]
    assert cmp["mismatches"] == 0 and cmp["max_difference"] == 0, cmp
    assert result["board"] == "netduinoplus2" and result["where"].startswith("QEMU netduinoplus2")
    lat, fw = result["latency"], result["firmware"]
    assert lat["unit"] == "instructions"
    # Instructions per MAC of an int8 model on an M4 with the DSP kernels: well above 0.5,
    # well below the reference kernels' ~16.
    assert 0.5 * fw["macs"] < lat["mean"] < 16 * fw["macs"], (lat, fw["macs"])
    assert fw["flash_used"] <= fw["flash_budget"] == 1 << 20 and fw["ram_used"] <= fw["ram_budget"] == 128 << 10
    print(
        f"\nnetduinoplus2 quick MNIST: flash {fw['flash_used']} B, RAM {fw['ram_used']} B, "
        f"{lat['mean']:.0f} instructions/inference, {fw['macs']} MACs"
    )
