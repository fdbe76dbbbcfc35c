"""Boards as data: the shipped board files load, aliases resolve, bad input is explained."""

import pytest

from tinykd.boards import Board, list_boards, load_board
from tinykd.errors import TinykdError

QEMU_FACTS = {  # ARCHITECTURE.md section 8 (measured)
    "mps2-an386": ("cortex-m4", 0x00000000, 0x20000000, 0x40004000, 25_000_000),
    "mps2-an500": ("cortex-m7", 0x00000000, 0x20000000, 0x40004000, 25_000_000),
    "mps2-an505": ("cortex-m33", 0x10000000, 0x38000000, 0x50200000, 20_000_000),
    "mps3-an547": ("cortex-m55", 0x10000000, 0x30000000, 0x59303000, 32_000_000),
}


def test_all_five_boards_are_listed():
    names = [b.name for b in list_boards()]
    assert names == sorted(names)
    assert set(names) >= set(QEMU_FACTS) | {"nano33"}


@pytest.mark.parametrize("name", sorted(QEMU_FACTS))
def test_qemu_boards_match_measured_facts(name):
    b = load_board(name)
    cpu, flash, ram, uart, systick = QEMU_FACTS[name]
    assert (b.cpu, b.flash_origin, b.ram_origin, b.uart_base, b.systick_hz) == (cpu, flash, ram, uart, systick)
    assert b.is_qemu and b.qemu_machine == name and b.project == "makefile"
    assert b.counter == "systick-icount" and b.counter_unit == "instructions"
    assert "-mfloat-abi=hard" in b.cflags and f"-mcpu={cpu}" in b.cflags


def test_nano33_facts():
    b = load_board("nano33")
    assert b.fqbn == "arduino:mbed_nano:nano33ble"
    assert (b.flash_bytes, b.ram_bytes) == (983_040, 262_144)
    assert b.usb_vid == 0x2341 and b.touch_1200
    assert b.project == "arduino" and b.flash_method == "arduino-cli"
    assert b.counter == "dwt" and b.counter_unit == "cycles"
    assert b.cflags == ["-mcpu=cortex-m4", "-mthumb", "-mfpu=fpv4-sp-d16", "-mfloat-abi=softfp"]
    assert b.clock_hz == 64_000_000
    assert 0 < b.mbed_flash_allowance < b.flash_bytes and 0 < b.mbed_ram_allowance < b.ram_bytes


@pytest.mark.parametrize(
    "alias,name",
    [("an386", "mps2-an386"), ("QEMU-M7", "mps2-an500"), ("nano33ble", "nano33"), (" mps3-an547 ", "mps3-an547")],
)
def test_aliases_and_default(alias, name):
    assert load_board(alias).name == name
    assert load_board(None).name == "mps2-an386"
    b = load_board("nano33")
    assert load_board(b) is b and isinstance(b, Board)


def test_unknown_board_lists_the_known_ones():
    with pytest.raises(TinykdError) as e:
        load_board("uno")
    msg = str(e.value)
    assert "uno" in msg and "nano33" in msg and "mps2-an386" in msg and "--board" in msg


def test_boards_dir_from_env(tmp_path, monkeypatch):
    (tmp_path / "tiny.toml").write_text(
        'name = "tiny"\naliases = ["t"]\ncpu = "cortex-m0plus"\nclock_hz = 48000000\n'
        'flash_bytes = 262144\nram_bytes = 32768\nproject = "makefile"\n'
        'flash_method = "qemu"\nport = "qemu-mps"\n[qemu]\nmachine = "x"\n'
        "[memory]\nflash_origin = 0\nram_origin = 0x20000000\n[uart]\nbase = 0x40004000\n"
        '[counter]\nkind = "systick-icount"\nsystick_hz = 48000000\n'
    )
    monkeypatch.setenv("TINYKD_BOARDS", str(tmp_path))
    assert [b.name for b in list_boards()] == ["tiny"]
    assert load_board("t").ram_bytes == 32768
    monkeypatch.setenv("TINYKD_BOARDS", str(tmp_path / "nope"))
    with pytest.raises(TinykdError, match="TINYKD_BOARDS"):
        list_boards()


@pytest.mark.parametrize(
    "bad,match",
    [
        ('name = "x"\n', "project"),
        ('name = "x"\nproject = "cmake"\nflash_method = "qemu"\n', "cmake"),
        ("name = [\n", "not valid TOML"),
    ],
)
def test_bad_board_files_are_explained(tmp_path, monkeypatch, bad, match):
    (tmp_path / "x.toml").write_text(bad)
    monkeypatch.setenv("TINYKD_BOARDS", str(tmp_path))
    with pytest.raises(TinykdError, match=match):
        load_board("x")
