"""`tinykd evaluate --model FILE --random N`: any int8 model, checked on the device against TFLite Micro."""

from __future__ import annotations

import math
from pathlib import Path

from ..boards import load_board
from ..evaluate import int8_outputs_tflm
from ..fileio import write_json
from ..firmware.build import build_firmware
from .evaluate import PARTIAL_NAME, compare_with_host, random_inputs, remove_partial, run_on_device


def check_model_on_device(
    tflite_path: str | Path, board: str, out_dir: str | Path, *, n: int = 100, port: str | None = None, seed: int = 0
) -> dict:
    """Build firmware for the model, run N random inputs on the board and on the host, compare.

    Interrupted (Ctrl-C, a lost device), the results verified so far stay in
    out_dir/device_partial.npz and the same call streams only the rest."""
    board = load_board(board)
    out_dir = Path(out_dir)
    fw = build_firmware(tflite_path, board, out_dir / "firmware")
    x = random_inputs(n, math.prod(fw.sources.input_shape), seed)
    host = int8_outputs_tflm(tflite_path, x.reshape(n, *fw.sources.input_shape[1:]))
    partial = out_dir / PARTIAL_NAME
    run = run_on_device(board, fw.build.elf, x, expected_sha256=fw.sources.sha256, port=port, partial=partial)
    result = {
        "board": board.name,
        "model": str(tflite_path),
        "examples": n,
        "seed": seed,
        "host_vs_device": compare_with_host(run.outputs, host.reshape(n, -1)),
        "latency": run.latency(board.clock_hz),
        "where": run.where,
        "link": run.link,
        "firmware": fw.summary(),
    }
    write_json(out_dir / "device_check.json", result)
    remove_partial(partial)
    return result
