"""The Arduino Nano 33 BLE project: sketch generated, the portable part compiles for the
core's Cortex-M4F softfp ABI and fits the board's budget minus the Mbed OS allowance, and
the Arduino port itself compiles against a minimal stand-in for Arduino.h."""

import shutil
import subprocess
from pathlib import Path

import pytest

import tinykd.device.flash as flash_mod
import tinykd.firmware.project as project_mod
from tinykd.boards import load_board
from tinykd.errors import FirmwareTooLarge, TinykdError
from tinykd.firmware.project import Project, build_project, generate_project

REPO = Path(__file__).resolve().parents[1]
FIXTURE = REPO / "tests" / "fixtures" / "fixture_model"

# The stand-in core: what the port uses from an Arduino core (Serial, micros, delay), nothing more.
STANDIN = REPO / "firmware" / "ports" / "arduino" / "standin"


def _no_arduino_cli(monkeypatch):
    real = shutil.which
    monkeypatch.setattr(
        project_mod.shutil, "which", lambda name, *a, **k: None if name == "arduino-cli" else real(name, *a, **k)
    )


def _require(tool):
    assert shutil.which(tool), f"{tool} is required for this test and is not on PATH"


def test_nano33_sketch_is_generated(tmp_path):
    proj = generate_project("nano33ble", FIXTURE, tmp_path / "fw")
    assert proj.kind == "arduino" and proj.board.name == "nano33"
    sketch = proj.sketch_dir
    assert sketch.name == "tinykd_nano33"
    names = {p.name for p in sketch.iterdir()}
    assert {
        "tinykd_nano33.ino",
        "tkd_port_arduino.cpp",
        "tkd_app.c",
        "tkd_protocol.c",
        "tkd_port.h",
        "model.c",
        "model.h",
        "tkd_board.h",
    } <= names
    # Mbed OS brings its own start-up and main(): none of ours may end up in the sketch
    assert not names & {"tkd_startup.c", "tkd_port_qemu.c", "tkd_port_standin.c"}
    # no device frontend asked for: the app's switch is off and the frontend stays out
    assert "#define TKD_APP_FRONTEND_KWS 0" in (sketch / "tkd_app_config.h").read_text()
    assert not any(n.startswith("tkd_frontend") for n in names)
    board_h = (sketch / "tkd_board.h").read_text()
    assert '"nano33"' in board_h and "64000000u" in board_h and "TKD_UART_BASE" not in board_h
    again = Project.from_dir(tmp_path / "fw")
    assert again.sketch_dir == sketch and again.kind == "arduino"


def test_nano33_portable_part_compiles_softfp_and_fits(tmp_path, monkeypatch):
    _require("arm-none-eabi-gcc")
    _no_arduino_cli(monkeypatch)
    board = load_board("nano33")
    res = build_project(generate_project(board, FIXTURE, tmp_path / "fw"))
    assert res.method == "fitcheck" and res.fits
    assert res.flash_budget == 983_040 - board.mbed_flash_allowance == 884_736
    assert res.ram_budget == 262_144 - board.mbed_ram_allowance == 212_992
    assert 1000 < res.flash_used < 16_384 and 0 < res.ram_used < 16_384
    assert any("Mbed" in n for n in res.notes)
    attrs = subprocess.run(
        ["arm-none-eabi-readelf", "-A", str(res.elf)], capture_output=True, text=True, check=True
    ).stdout
    assert "Tag_CPU_arch: v7E-M" in attrs and "Tag_FP_arch: VFPv4-D16" in attrs
    assert "Tag_ABI_VFP_args: VFP registers" not in attrs  # softfp, not hard-float
    print(f"\nnano33 fit check: flash {res.flash_used}/{res.flash_budget} B, RAM {res.ram_used}/{res.ram_budget} B")


@pytest.mark.parametrize(
    "board, cpu",
    [("nano33", ["-mcpu=cortex-m4", "-mfpu=fpv4-sp-d16", "-mfloat-abi=softfp"]), ("pico", ["-mcpu=cortex-m0plus"])],
)
def test_arduino_port_compiles_for_the_cpu_against_stand_in_core(tmp_path, board, cpu):
    """The port and sketch compile for the board's CPU (DWT counter on the M4, micros() on the M0+)."""
    _require("arm-none-eabi-g++")
    proj = generate_project(board, FIXTURE, tmp_path / "fw")
    flags = [*cpu, "-mthumb", "-Wall", "-Wextra", "-Werror", "-I", str(STANDIN), "-I", str(proj.sketch_dir)]
    for src in (proj.sketch_dir / "tkd_port_arduino.cpp", proj.sketch_dir / f"{proj.sketch_dir.name}.ino"):
        subprocess.run(
            ["arm-none-eabi-g++", *flags, "-x", "c++", "-c", str(src), "-o", str(tmp_path / (src.name + ".o"))],
            check=True,
        )


def test_nano33_model_too_big(tmp_path, monkeypatch):
    _require("arm-none-eabi-gcc")
    _no_arduino_cli(monkeypatch)
    model = tmp_path / "model"
    model.mkdir()
    (model / "model.h").write_bytes((FIXTURE / "model.h").read_bytes())
    src = (FIXTURE / "model.c").read_text()
    src = src.replace("static int32_t arena", "extern const volatile int8_t tkd_big[];\nstatic int32_t arena")
    src = src.replace(
        "    if (input[0] == -128",
        "    if (tkd_big[(uint8_t)input[2]] == 5) {\n        return 9;\n    }\n    if (input[0] == -128",
    )
    (model / "model.c").write_text(src)
    (model / "weights.c").write_text("#include <stdint.h>\nconst volatile int8_t tkd_big[900000] = {1};\n")
    with pytest.raises(FirmwareTooLarge) as e:
        build_project(generate_project("nano33", model, tmp_path / "fw"))
    msg = str(e.value)
    assert "nano33" in msg and "884736" in msg and "212992" in msg
    assert "smaller student" in msg and "over flash by" in msg
    err = e.value
    assert (err.board, err.flash_budget, err.ram_budget) == ("nano33", 884_736, 212_992)
    # measured by a trial link without the board's limits, so the sizes are known
    assert err.flash_used > 900_000 and err.flash_used > err.flash_budget and 0 < err.ram_used


def hide_tool(monkeypatch, module, tool: str) -> None:
    """`module`'s shutil.which finds every program but `tool`."""
    real = shutil.which
    monkeypatch.setattr(module.shutil, "which", lambda name, *a, **k: None if name == tool else real(name, *a, **k))


def test_nano33_flash_without_arduino_cli_says_how_to_install(tmp_path, monkeypatch):
    proj = generate_project("nano33", FIXTURE, tmp_path / "fw")
    hide_tool(monkeypatch, flash_mod, "arduino-cli")
    with pytest.raises(TinykdError, match="arduino-cli.*install"):
        flash_mod.flash("nano33", proj)


def test_missing_toolchain_says_how_to_install(tmp_path, monkeypatch):
    proj = generate_project("mps2-an386", FIXTURE, tmp_path / "fw")
    hide_tool(monkeypatch, project_mod, "arm-none-eabi-gcc")
    with pytest.raises(TinykdError, match="arm-none-eabi-gcc.*gcc-arm-none-eabi"):
        build_project(proj)


def test_not_a_model_folder(tmp_path):
    with pytest.raises(TinykdError, match="model.c and model.h"):
        generate_project("nano33", tmp_path, tmp_path / "fw")


def test_relative_out_dir_builds(tmp_path, monkeypatch):
    """`--out build/x` is relative to where the user stands; the project must still build."""
    from tinykd.firmware.project import build_project, generate_project

    monkeypatch.chdir(tmp_path)
    fixture = Path(__file__).parent / "fixtures" / "fixture_model"
    project = generate_project("mps2-an386", fixture, Path("rel") / "firmware")
    result = build_project(Path("rel") / "firmware")
    assert result.elf is not None and result.elf.is_file() and result.flash_used > 0
    assert project.root.is_absolute()


def test_nano33_sketch_sources_build_with_an_old_arm_acle(tmp_path, monkeypatch):
    """Issue 15, defect 1: the Arduino Mbed core compiles with its own GCC 7, whose <arm_acle.h>
    lacks the DSP intrinsics. The sketch's portable sources (app, runtime, model: the fit check
    compiles exactly these, with the core's flags) build and link with a stub <arm_acle.h> without
    them first on the include path and implicit declarations as errors; the DSP code is there."""
    from _tflite_models import ModelFactory
    from test_runtime_acle import SPEC, STUB_ACLE

    from tinykd.firmware.codegen import generate_model_sources

    _require("arm-none-eabi-gcc")
    _no_arduino_cli(monkeypatch)
    stub = tmp_path / "old_acle"
    stub.mkdir()
    (stub / "arm_acle.h").write_text(STUB_ACLE)
    model = generate_model_sources(ModelFactory(tmp_path / "m").get(SPEC, seed=5, name="acle_mix"), tmp_path / "src")
    project = generate_project("nano33", model, tmp_path / "fw")
    sketch_sources = {p.name for p in project.sketch_dir.glob("*.c")}
    fitcheck_sources = {p.name for p in project.fitcheck_dir.glob("*/*.c")} - {"tkd_startup.c", "tkd_port_standin.c"}
    assert sketch_sources == fitcheck_sources, "the fit check compiles the sketch's own C sources"
    flags = f"EXTRA_CFLAGS=-I{stub} -Werror=implicit-function-declaration"
    r = subprocess.run(["make", "-C", str(project.fitcheck_dir), flags], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert f"-I{stub}" in r.stdout and "implicit declaration" not in r.stderr
    elf = project.fitcheck_dir / "build" / "firmware.elf"
    dis = subprocess.run(["arm-none-eabi-objdump", "-d", str(elf)], capture_output=True, text=True, check=True).stdout
    assert "\tsmlad" in dis and "\tssat" in dis
