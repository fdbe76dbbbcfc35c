"""From the QAT student to what the board runs: the int8 .tflite, its C array, the firmware.

Each takes the `Build` and returns (artifacts, info) for stages.json.
"""

from __future__ import annotations

import hashlib


def convert(build):
    """model_int8.tflite: full-integer conversion of student_qat, calibrated on training examples."""
    from ..export import convert_int8

    path = convert_int8(
        build.load_model("student_qat"),
        build.dataset.x_train,
        build.out / "model_int8.tflite",
        samples=build.config.qat.calibration_samples,
        input_quantization=build.task.input_quantization,
    )
    data = path.read_bytes()
    return ["model_int8.tflite"], {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def export(build):
    """model_data.h / .cc: the .tflite's bytes as a C array with its input/output quantisation."""
    from ..export import tflite_io_quantization, write_c_array

    tflite = build.out / "model_int8.tflite"
    write_c_array(tflite, build.out, tflite_io_quantization(tflite), build.dataset.class_names)
    return ["model_data.h", "model_data.cc"], {}


def firmware(build):
    """firmware/: the generated model sources compiled for the board; firmware.json its sizes."""
    from ..firmware.build import build_firmware

    fw = build_firmware(
        build.out / "model_int8.tflite", build.board, build.out / "firmware", build.task.device_frontend
    )
    b = fw.build
    build.log(
        f"  {build.board.name}: flash {b.flash_used:,} of {b.flash_budget:,} B, "
        f"RAM {b.ram_used:,} of {b.ram_budget:,} B (arena {fw.sources.arena_bytes:,} B)"
    )
    for note in fw.summary()["notes"]:
        build.log(f"  note: {note}")
    return ["firmware/firmware.json"], fw.summary()
