"""`tinykd evaluate --model FILE --random N`: any int8 model, checked on the device against TFLite Micro.

The device runs int8 in, int8 out. A model with a float boundary (QUANTIZE first, DEQUANTIZE
last: the code generator leaves both to the host) gets random float inputs in its calibrated
range, quantised here with TFLite Micro's QUANTIZE arithmetic; the device's int8 outputs are
dequantised with TFLM's DEQUANTIZE arithmetic and compared bit for bit with the TFLM
interpreter's float outputs on the same float inputs, and the int8 bytes with TFLM's int8
tensor before its DEQUANTIZE (recovered exactly from its float outputs).

The result (device_check.json) also carries the per-layer profile measured on the device
(tinykd.device.profile), and the bar plot layer_profile.png is written beside it.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..boards import load_board
from ..evaluate import int8_before_dequantize, model_io, outputs_tflm, random_float_inputs
from ..fileio import write_json
from ..firmware.build import build_firmware
from ..fuzz.compare import dequantize_f32, quantize_f32
from .evaluate import PARTIAL_NAME, compare_with_host, random_inputs, remove_partial, run_on_device
from .profile import PROFILE_INPUTS, profile_on_device

if TYPE_CHECKING:
    from ..trials.session import RayOptions


def check_model_on_device(
    tflite_path: str | Path,
    board: str,
    out_dir: str | Path,
    *,
    n: int = 100,
    port: str | None = None,
    seed: int = 0,
    farm: RayOptions | None = None,
) -> dict:
    """Build firmware for the model, run N random inputs on the board and on the host, compare;
    profile the first few inputs layer by layer.

    Interrupted (Ctrl-C, a lost device), the results verified so far stay in
    out_dir/device_partial.npz and the same call streams only the rest."""
    board = load_board(board)
    out_dir = Path(out_dir)
    io = model_io(tflite_path)
    fw = build_firmware(tflite_path, board, out_dir / "firmware")
    s = fw.sources
    shape = (n, *s.input_shape[1:])
    if io.float_input:
        xf = random_float_inputs(n, io, seed)
        x = quantize_f32(xf, s.input_scale, s.input_zero_point).reshape(n, -1)
        host = outputs_tflm(tflite_path, xf)
    else:
        x = random_inputs(n, math.prod(s.input_shape), seed)
        host = outputs_tflm(tflite_path, x.reshape(shape))
    partial = out_dir / PARTIAL_NAME
    run = run_on_device(board, fw.build.elf, x, expected_sha256=s.sha256, port=port, partial=partial, farm=farm)
    result = {
        "board": board.name,
        "model": str(tflite_path),
        "examples": n,
        "seed": seed,
        "input": _input_facts(io),
        "output": _output_facts(io),
    }
    if io.float_output:
        got = dequantize_f32(run.outputs, s.output_scale, s.output_zero_point)
        result["host_vs_device"] = compare_floats(got, host.reshape(n, -1))
        host_q, known = int8_before_dequantize(host.reshape(n, -1), s.output_scale, s.output_zero_point)
        result["int8_host_vs_device"] = {
            **compare_with_host(run.outputs, host_q),
            "unknown_host_values": int((~known).sum()),
            "note": "TFLM's int8 tensor before its DEQUANTIZE, recovered exactly from its float outputs",
        }
        if not known.all():
            result["int8_host_vs_device"]["mismatches"] = max(
                result["int8_host_vs_device"]["mismatches"], int(np.any(~known, axis=1).sum())
            )
    else:
        result["host_vs_device"] = compare_with_host(run.outputs, host.reshape(n, -1).astype(np.int8))
    k = min(n, PROFILE_INPUTS)
    if farm is not None and not board.is_qemu:
        # The farm's boards sit on other nodes; the per-layer profile needs one here (--port).
        profile = {"skipped": "not run over a device farm of real boards: profile one board with --port"}
    else:
        profile = profile_on_device(
            board,
            fw.build.elf,
            x[:k],
            s,
            expected_sha256=s.sha256,
            port=port,
            whole_model_counts=run.counts[:k],
            outputs=run.outputs[:k],
        )
    result.update(latency=run.latency(board.clock_hz), layer_profile=profile)
    result.update(where=run.where, link=run.link, firmware=fw.summary())
    if "layers" in profile:
        from ..report.plots import layer_profile as plot_layer_profile

        result["plots"] = [str(plot_layer_profile(profile, s.name, out_dir / "layer_profile.png").name)]
    write_json(out_dir / "device_check.json", result)
    remove_partial(partial)
    return result


def compare_floats(device: np.ndarray, host: np.ndarray) -> dict:
    """How many samples' float32 outputs differ between device and host, bit for bit."""
    device = np.ascontiguousarray(device, dtype=np.float32)
    host = np.ascontiguousarray(host, dtype=np.float32)
    differing_values = device.view(np.uint32) != host.view(np.uint32)
    differing = np.any(differing_values, axis=1)
    return {
        "compared": "float32",
        "values": int(device.size),
        "mismatches": int(differing.sum()),
        "differing_values": int(differing_values.sum()),
        "first_mismatches": [int(i) for i in np.flatnonzero(differing)[:10]],
        "max_difference": float(np.abs(device.astype(np.float64) - host.astype(np.float64)).max())
        if device.size
        else 0.0,
    }


def _input_facts(io) -> dict:
    if not io.float_input:
        return {"type": "int8", "random": "uniform int8 bytes"}
    sc, zp = np.float32(io.input_scale), io.input_zero_point
    return {
        "type": "float32",
        "range": [float((-128 - zp) * sc), float((127 - zp) * sc)],
        "random": "uniform over the calibrated range, half on the input QUANTIZE's rounding ties",
        "quantized_on": "host",
        "quantization": f"TFLite Micro's QUANTIZE (float32 x / {io.input_scale:.9g}, ties away from zero, "
        f"+ {zp}, saturated)",
    }


def _output_facts(io) -> dict:
    if not io.float_output:
        return {"type": "int8", "compared": "int8 bytes with TFLite Micro's"}
    return {
        "type": "float32",
        "dequantized_on": "host",
        "dequantization": f"TFLite Micro's DEQUANTIZE (float32(double({io.output_scale:.9g}) * "
        f"(q - {io.output_zero_point})))",
        "compared": "float32 bit for bit with TFLite Micro's; int8 bytes with its tensor before DEQUANTIZE",
    }
