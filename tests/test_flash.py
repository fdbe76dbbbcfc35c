"""`tinykd flash` and tinykd.device.flash: existing firmware only (never a build stage), the
command line each flash tool gets, their failures, the USB drive copy, waiting for a board that
re-enumerates, and DeviceLink reopening a serial port that comes back.

No real hardware is present: the flash tools are fake scripts on PATH that record their argv and
exit 0 or 1, the serial port listing is monkeypatched, and the USB drive is a folder in a fake
mount table. These tests check the command lines and error paths tinykd builds, not the tools.
QEMU boards are real: `flash` starts QEMU and the firmware answers on its serial socket.
"""

from __future__ import annotations

import os
import pty
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner

import tinykd.device.flash as flash_mod
from tinykd.boards import load_board
from tinykd.cli import main
from tinykd.device.link import DeviceLink
from tinykd.errors import TinykdError
from tinykd.firmware.project import build_project, generate_project

REPO = Path(__file__).resolve().parents[1]
FIXTURE = REPO / "tests" / "fixtures" / "fixture_model"


@dataclass
class FakePort:
    device: str
    vid: int | None
    pid: int | None


def _ports(monkeypatch, *listings):
    """comports() answers each listing in turn, then the last one forever; returns the call log."""
    from serial.tools import list_ports

    calls = []

    def comports():
        calls.append(len(calls))
        return list(listings[min(len(calls) - 1, len(listings) - 1)])

    monkeypatch.setattr(list_ports, "comports", comports)
    return calls


def _fake_tools(tmp_path, monkeypatch, tools: dict[str, int], output: str = "") -> Path:
    """Scripts on PATH (and only they, plus arm binutils) that log their argv and exit as told."""
    bin_dir = tmp_path / "fakebin"
    bin_dir.mkdir()
    for name, code in tools.items():
        script = bin_dir / name
        log = tmp_path / f"{name}.argv"
        record = f"for a in \"$@\"; do printf '%s\\n' \"$a\"; done > '{log}'"
        script.write_text(f"#!/bin/sh\n{record}\nprintf '%s\\n' '{output}'\nexit {code}\n")
        script.chmod(0o755)
    objcopy = shutil.which("arm-none-eabi-objcopy")
    assert objcopy, "arm-none-eabi-objcopy is required for this test and is not on PATH"
    monkeypatch.setenv("PATH", os.pathsep.join([str(bin_dir), str(Path(objcopy).parent)]))
    return bin_dir


def _argv(tmp_path, name) -> list[str]:
    return (tmp_path / f"{name}.argv").read_text().splitlines()


# ------------------------------------------------------------------ a --model firmware folder, no data


@pytest.fixture(scope="module")
def tflite(tmp_path_factory) -> Path:
    from _tflite_models import ModelFactory

    return ModelFactory(tmp_path_factory.getbasetemp() / "tflite_models").get(
        ((28, 28, 1), [("flatten",), ("dense", 10, None)]), seed=3, name="flash_mlp"
    )


def _no_data(tmp_path, monkeypatch):
    """No MNIST anywhere tinykd looks (and no download): any training stage would fail."""
    monkeypatch.setenv("TINYKD_DATA", str(tmp_path / "no-data"))
    monkeypatch.setenv("TINYKD_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.chdir(tmp_path)


def test_flash_of_a_model_firmware_folder_starts_qemu_and_trains_nothing(tflite, tmp_path, monkeypatch):
    _no_data(tmp_path, monkeypatch)
    out = tmp_path / "mine"
    r = CliRunner().invoke(main, ["firmware", "--model", str(tflite), "--board", "mps2-an386", "--out", str(out)])
    assert r.exit_code == 0, r.output
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    cmd = [sys.executable, "-m", "tinykd.cli", "flash", "--firmware", str(out), "--seconds", "60"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=os.environ.copy())
    try:
        line = proc.stdout.readline()
        assert "mps2-an386 is running the firmware; serial: socket://127.0.0.1:" in line, (
            line + proc.stderr.read() if proc.poll() is not None else line
        )
        with DeviceLink(line.rsplit("serial: ", 1)[1].strip(), timeout=3) as link:
            link.connect()
            assert link.hello().input_bytes == 784  # the model of that folder answers
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=20)
    assert "[train" not in err and "[distill" not in err, err
    after = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    assert after == before  # no build folder, stages.json or model appeared


def test_flash_without_firmware_says_which_command_makes_it(tmp_path, monkeypatch):
    _no_data(tmp_path, monkeypatch)
    r = CliRunner().invoke(main, ["flash", "--board", "nano33"])
    assert r.exit_code == 2
    assert "tinykd firmware --board nano33 --out build/mnist-nano33" in r.output
    assert "tinykd flash --firmware DIR" in r.output and "flash never builds" in r.output
    assert not (tmp_path / "build").exists()  # nothing run, nothing written


def _nano33_folder(tflite, tmp_path) -> Path:
    """`tinykd firmware --model` for the Nano 33 BLE without arduino-cli (only the fit check ran)."""
    out = tmp_path / "nano"
    r = CliRunner().invoke(main, ["firmware", "--model", str(tflite), "--board", "nano33", "--out", str(out)])
    assert r.exit_code == 0, r.output
    return out


def test_nano33_folder_never_compiled_by_arduino_cli_is_not_compiled_by_flash(tflite, tmp_path, monkeypatch):
    _no_data(tmp_path, monkeypatch)
    out = _nano33_folder(tflite, tmp_path)
    _fake_tools(tmp_path, monkeypatch, {"arduino-cli": 0, "bossac": 0})
    r = CliRunner().invoke(main, ["flash", "--firmware", str(out)])
    assert r.exit_code == 2
    assert "never compiled by arduino-cli" in r.output and "arduino-cli core install arduino:mbed_nano" in r.output
    assert f"tinykd firmware --model MODEL.tflite --board nano33 --out {out}" in r.output
    assert "bossa-cli" in r.output and "not a fallback" in r.output
    assert not (tmp_path / "arduino-cli.argv").exists()  # neither compile nor upload ran


def test_nano33_upload_with_arduino_cli_waits_for_the_board_to_come_back(tflite, tmp_path, monkeypatch):
    _no_data(tmp_path, monkeypatch)
    out = _nano33_folder(tflite, tmp_path)
    sketch = out / "firmware" / "tinykd_nano33"
    built = out / "firmware" / "build"  # what `arduino-cli compile --output-dir` leaves
    built.mkdir()
    for ext in ("elf", "bin", "hex"):
        (built / f"tinykd_nano33.ino.{ext}").write_bytes(b"image")
    _fake_tools(tmp_path, monkeypatch, {"arduino-cli": 0})
    board = FakePort("/dev/ttyACM7", 0x2341, 0x805A)
    # listed, listed again after the upload (stale), gone, back
    calls = _ports(monkeypatch, [board], [board], [board], [], [], [board])
    r = CliRunner().invoke(main, ["flash", "--firmware", str(out)])
    assert r.exit_code == 0, r.output
    assert _argv(tmp_path, "arduino-cli") == [
        "upload",
        "--fqbn",
        "arduino:mbed_nano:nano33ble",
        "--port",
        "/dev/ttyACM7",
        "--input-dir",
        str(built.resolve()),
        str(sketch.resolve()),
    ]
    assert "nano33 is running the firmware (flashed with arduino-cli); serial: /dev/ttyACM7" in r.output
    assert len(calls) >= 6  # it waited through the stale listing and the gap


def test_arduino_cli_failure_is_one_paragraph_with_its_log(tmp_path, monkeypatch):
    proj = generate_project("nano33", FIXTURE, tmp_path / "fw")
    (proj.root / "build").mkdir()
    (proj.root / "build" / "tinykd_nano33.ino.bin").write_bytes(b"image")
    _fake_tools(tmp_path, monkeypatch, {"arduino-cli": 1}, output="No device found on ttyACM0")
    _ports(monkeypatch, [FakePort("/dev/ttyACM0", 0x2341, 0x805A)])
    with pytest.raises(TinykdError) as e:
        flash_mod.flash("nano33", proj.root)
    msg = str(e.value)
    assert "with arduino-cli failed (exit 1" in msg and "No device found on ttyACM0" in msg
    assert "double-tap" in msg and "bossa-cli" in msg


# ------------------------------------------------------------------ STM32 probes


@pytest.fixture(scope="module")
def nucleo(tmp_path_factory):
    assert shutil.which("arm-none-eabi-gcc"), "arm-none-eabi-gcc is required for this test"
    proj = generate_project("nucleo-f411re", FIXTURE, tmp_path_factory.mktemp("nucleo") / "fw")
    build_project(proj)
    return proj


STLINK = FakePort("/dev/ttyACM3", 0x0483, 0x374B)


def test_openocd_first_and_its_command_line(nucleo, tmp_path, monkeypatch):
    _fake_tools(tmp_path, monkeypatch, {"openocd": 0, "st-flash": 0, "pyocd": 0})
    _ports(monkeypatch, [STLINK])
    done = flash_mod.flash(None, nucleo.root)
    elf = nucleo.root / "build" / "firmware.elf"
    assert done.method == "openocd" and done.url == "/dev/ttyACM3"
    assert _argv(tmp_path, "openocd") == [
        "-f",
        "interface/stlink.cfg",
        "-f",
        "target/stm32f4x.cfg",
        "-c",
        f"program {{{elf}}} verify reset exit",
    ]
    assert not (tmp_path / "st-flash.argv").exists()


def test_st_flash_and_pyocd_command_lines(nucleo, tmp_path, monkeypatch):
    _fake_tools(tmp_path, monkeypatch, {"st-flash": 0, "pyocd": 0})
    _ports(monkeypatch, [STLINK])
    assert flash_mod.flash("nucleo-f411re", nucleo.root).method == "st-flash"  # openocd missing: the next one
    image = nucleo.root / "build" / "firmware.bin"
    assert _argv(tmp_path, "st-flash") == ["--reset", "write", str(image), "0x08000000"]
    assert image.stat().st_size > 1000
    assert flash_mod.flash("nucleo-f411re", nucleo.root, tool="pyocd").method == "pyocd"
    assert _argv(tmp_path, "pyocd") == ["flash", "-t", "stm32f411retx", str(nucleo.root / "build" / "firmware.elf")]


def test_openocd_failure_shows_its_log_and_what_to_try(nucleo, tmp_path, monkeypatch):
    _fake_tools(tmp_path, monkeypatch, {"openocd": 1}, output="Error: open failed")
    with pytest.raises(TinykdError) as e:
        flash_mod.flash("nucleo-f411re", nucleo.root)
    msg = str(e.value)
    assert "Flashing the nucleo-f411re with openocd failed (exit 1" in msg and "Error: open failed" in msg
    assert "udev" in msg


def test_tool_choice_errors(nucleo, tmp_path, monkeypatch):
    _fake_tools(tmp_path, monkeypatch, {})
    monkeypatch.setattr(flash_mod, "MOUNTS", tmp_path / "no-mounts")
    with pytest.raises(TinykdError) as e:
        flash_mod.flash("nucleo-f411re", nucleo.root)
    msg = str(e.value)
    for how in ("apt-get install openocd", "apt-get install stlink-tools", "pip install pyocd", "NODE_F411RE"):
        assert how in msg
    with pytest.raises(TinykdError, match="pip install pyocd"):
        flash_mod.flash("nucleo-f411re", nucleo.root, tool="pyocd")
    with pytest.raises(TinykdError, match="not arduino-cli"):
        flash_mod.flash("nucleo-f411re", nucleo.root, tool="arduino-cli")
    with pytest.raises(TinykdError, match="holds firmware for nucleo-f411re, not nano33"):
        flash_mod.flash("nano33", nucleo.root)


def test_an_image_for_another_board_is_refused_before_the_tool_runs(tmp_path, monkeypatch):
    other = build_project(generate_project("mps2-an386", FIXTURE, tmp_path / "qemu"))
    _fake_tools(tmp_path, monkeypatch, {"openocd": 0})
    with pytest.raises(TinykdError, match="loads at 0x00000000, but nucleo-f411re boots from 0x08000000"):
        flash_mod.flash("nucleo-f411re", other.elf)
    assert not (tmp_path / "openocd.argv").exists()


# ------------------------------------------------------------------ USB drive (DAPLink, ST-LINK)


def _mount(tmp_path, monkeypatch, label: str) -> Path:
    volume = tmp_path / "media" / label
    volume.mkdir(parents=True)
    table = tmp_path / "mounts"
    table.write_text(f"/dev/sdz1 {volume} vfat rw,nosuid 0 0\n")
    monkeypatch.setattr(flash_mod, "MOUNTS", table)
    monkeypatch.setattr(flash_mod, "BY_LABEL", tmp_path / "by-label")
    return volume


def _probe(volume: Path, name: str, size: int, fail: str | None = None) -> threading.Thread:
    """A DAPLink: once the whole image is on the drive, unmount, program, remount."""

    def run():
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            f = volume / name
            if f.is_file() and f.stat().st_size == size:
                break
            time.sleep(0.02)
        time.sleep(0.1)
        shutil.rmtree(volume)
        time.sleep(0.5)
        volume.mkdir()
        if fail:
            (volume / "FAIL.TXT").write_text(fail)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


def test_mass_storage_copies_the_image_and_waits_for_the_drive_to_come_back(nucleo, tmp_path, monkeypatch):
    _fake_tools(tmp_path, monkeypatch, {})
    volume = _mount(tmp_path, monkeypatch, "NODE_F411RE")
    _ports(monkeypatch, [STLINK])
    image = nucleo.root / "build" / "firmware.bin"
    probe = _probe(volume, "firmware.bin", image.stat().st_size)
    t0 = time.monotonic()
    done = flash_mod.flash("nucleo-f411re", nucleo.root)  # the only method available: the drive
    assert done.method == "mass-storage" and done.url == "/dev/ttyACM3"
    assert time.monotonic() - t0 >= 0.5  # returned only after the drive went and came back
    probe.join(5)
    assert flash_mod.find_volume("NODE_F411RE") == volume


def test_mass_storage_reports_fail_txt(nucleo, tmp_path, monkeypatch):
    microbit = load_board("microbit")  # hex image, MICROBIT drive
    assert microbit.flash_options["image"] == "hex"
    proj = generate_project(microbit, FIXTURE, tmp_path / "mb")
    build_project(proj)
    _fake_tools(tmp_path, monkeypatch, {})
    volume = _mount(tmp_path, monkeypatch, "MICROBIT")
    hex_image = flash_mod._converted(proj.root / "build" / "firmware.elf", "hex")
    assert hex_image.read_text().startswith(":")
    _probe(volume, "firmware.hex", hex_image.stat().st_size, fail="The hex file cannot be decoded.")
    with pytest.raises(TinykdError, match="FAIL.TXT says 'The hex file cannot be decoded.'"):
        flash_mod.flash("microbit", proj.root)


# ------------------------------------------------------------------ the board going and coming back


def test_old_port_name_still_listed_is_not_the_board_back(monkeypatch):
    board = load_board("nano33")
    old = FakePort("/dev/ttyACM0", 0x2341, 0x805A)
    calls = _ports(monkeypatch, [old], [old], [old], [], [], [old])
    probed = []
    got = flash_mod.wait_for_port(board, 5, previous=old.device, probe=probed.append, interval=0.01)
    assert got == "/dev/ttyACM0" and len(calls) == 6 and not probed


def test_port_back_under_another_name(monkeypatch):
    board = load_board("nano33")
    _ports(monkeypatch, [FakePort("/dev/ttyACM0", 0x2341, 0x805A)], [], [FakePort("/dev/ttyACM1", 0x2341, 0x805A)])
    assert flash_mod.wait_for_port(board, 5, previous="/dev/ttyACM0", interval=0.01) == "/dev/ttyACM1"


def test_old_port_listed_all_along_counts_only_when_the_firmware_answers(monkeypatch):
    board = load_board("nano33")
    _ports(monkeypatch, [FakePort("/dev/ttyACM0", 0x2341, 0x805A)])
    t0 = time.monotonic()
    with pytest.raises(TinykdError, match="stayed listed but no tinykd firmware answered"):
        flash_mod.wait_for_port(board, 1.5, previous="/dev/ttyACM0", probe=lambda url: False, settle=0.2, interval=0.01)
    assert 1.4 < time.monotonic() - t0 < 4
    answers = iter([False, True])
    got = flash_mod.wait_for_port(
        board, 5, previous="/dev/ttyACM0", probe=lambda url: next(answers), settle=0.1, interval=0.01
    )
    assert got == "/dev/ttyACM0"


def test_board_that_never_comes_back_is_a_clear_error(monkeypatch):
    _ports(monkeypatch, [FakePort("/dev/ttyACM0", 0x2341, 0x805A)], [])
    with pytest.raises(TinykdError, match="did not come back after the upload.*0x2341.*--port"):
        flash_mod.wait_for_port(load_board("nano33"), 0.5, previous="/dev/ttyACM0", interval=0.01)


def test_device_link_reopens_a_serial_port_that_is_re_enumerating(tmp_path):
    """The port's name appears 0.5 s after open() starts (as a USB port after a reset)."""
    master, slave = pty.openpty()
    link_path = tmp_path / "ttyACM0"

    def appear():
        time.sleep(0.5)
        link_path.symlink_to(os.ttyname(slave))

    threading.Thread(target=appear, daemon=True).start()
    try:
        link = DeviceLink(str(link_path), open_timeout=5).open()
        assert link.ser is not None and link.ser.is_open
        link.close()
    finally:
        os.close(master)
        os.close(slave)
    t0 = time.monotonic()
    with pytest.raises(TinykdError, match="did not appear within 0.3 s"):
        DeviceLink(str(tmp_path / "ttyNOPE"), open_timeout=0.3).open()
    assert time.monotonic() - t0 < 2


# ------------------------------------------------------------------ doctor


def test_doctor_lists_flash_tools_bossa_and_ports_matched_to_boards(tmp_path, monkeypatch):
    from tinykd.doctor import run_checks

    _fake_tools(tmp_path, monkeypatch, {"openocd": 0, "bossac": 0})
    _ports(monkeypatch, [FakePort("/dev/ttyACM0", 0x2341, 0x805A), FakePort("/dev/ttyACM1", 0x0483, 0x374B)])
    checks = {c.name: c for c in run_checks(str(tmp_path))}
    assert checks["openocd"].ok and "nucleo-f411re" in checks["openocd"].detail
    assert not checks["st-flash"].ok and "stlink-tools" in checks["st-flash"].detail
    assert not checks["pyocd"].ok and "pip install pyocd" in checks["pyocd"].detail
    arduino = checks["arduino-cli"].detail
    assert not checks["arduino-cli"].ok and "arduino-cli core install" in arduino and "arduino:mbed_nano" in arduino
    # Seeed's core is not in Arduino's index: the command names Seeed's.
    seeed = "`arduino-cli core install Seeeduino:mbed --additional-urls https://files.seeedstudio.com/arduino/"
    assert seeed in arduino and "`arduino-cli core install arduino:mbed_nano`" in arduino
    assert "bossa-cli" in checks["bossac"].detail and "not a fallback" in checks["bossac"].detail
    ports = checks["serial ports"].detail
    assert "/dev/ttyACM0 (2341:805a: nano33)" in ports and "/dev/ttyACM1 (0483:374b: nucleo-f411re" in ports
