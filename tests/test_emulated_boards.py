"""A build for a real board whose chip QEMU models (`emulated_by` in its board file) runs its
device stage there when the board is not plugged in: the board's firmware is kept for flashing,
and the same port is proven on the emulated chip."""

import dataclasses
import json
import shutil

from tinykd.pipeline import Build


def test_build_for_a_nucleo_is_evaluated_on_qemu_netduinoplus2(quick_build, tmp_path):
    out = tmp_path / "nucleo"
    # The trained stages do not depend on the board: only firmware, device and report run again.
    shutil.copytree(quick_build.out, out)
    lines = []
    build = Build(dataclasses.replace(quick_build.config, board="nucleo-f411re"), out, log=lines.append)
    build.run_all()
    text = "\n".join(lines)
    assert "[train-teacher] running" not in text and "[distill] running" not in text
    assert "[firmware] running" in text and "[device] running" in text
    assert "no nucleo-f411re on USB: evaluating its port on QEMU netduinoplus2 instead" in text
    firmware = json.loads((out / "firmware" / "firmware.json").read_text())
    emulated = json.loads((out / "firmware-emulated" / "firmware.json").read_text())
    assert firmware["board"] == "nucleo-f411re" and emulated["board"] == "netduinoplus2"
    assert firmware["model_sha256"] == emulated["model_sha256"]
    device = json.loads((out / "device.json").read_text())
    assert device["board"] == "nucleo-f411re" and device["emulated_on"] == "netduinoplus2"
    assert device["host_vs_device"]["mismatches"] == 0 and device["examples"] > 0
    lat = device["latency"]
    assert lat["unit"] == "instructions" and "mean_ms" not in lat
    # The lower bound is at the Nucleo's 100 MHz, not the emulated chip's 168 MHz.
    assert abs(lat["lower_bound_ms"] - lat["mean"] / 100e6 * 1e3) < 1e-3
    report = (out / "report.md").read_text()
    assert "## On the device: nucleo-f411re, emulated on QEMU netduinoplus2" in report
    assert "instructions per inference" in report and "at least" in report
