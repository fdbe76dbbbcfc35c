"""Measuring the build: every model on the host's test set, the int8 model on the device, the report.

Each takes the `Build` and returns (artifacts, info) for stages.json.
"""

from __future__ import annotations

import json

import numpy as np

from ..errors import TinykdError
from ..fileio import write_json


def evaluate(build):
    """evaluation.json (every float model, the method's own, and the int8 model in LiteRT and
    TFLite Micro) and host_int8_outputs.npy (what the device must reproduce)."""
    from ..evaluate import classification_result, int8_outputs_litert, int8_outputs_tflm, predict_logits
    from ..export import tflite_io_quantization
    from ..export.convert import quantize_input

    d = build.dataset
    results = {}
    for name in ("teacher", "baseline", "student", "student_qat"):
        build.log(f"  evaluating {name} (float) on {len(d.y_test)} test examples")
        logits = predict_logits(build.load_model(name), d.x_test)
        results[name] = classification_result(name, logits, d.y_test, d.num_classes)
    method_logits, method_info = build.recipe.evaluate_models(build)
    for name, logits in method_logits.items():
        results[name] = classification_result(name, np.asarray(logits), d.y_test, d.num_classes)
    tflite = build.out / "model_int8.tflite"
    x_int8 = quantize_input(d.x_test, tflite_io_quantization(tflite).input)
    litert = int8_outputs_litert(tflite, x_int8)
    tflm = int8_outputs_tflm(tflite, x_int8)
    results["int8_litert"] = classification_result("int8_litert", litert, d.y_test, d.num_classes)
    results["int8_tflm"] = classification_result("int8_tflm", tflm, d.y_test, d.num_classes)
    mismatches = int(np.any(litert != tflm, axis=1).sum())
    max_difference = int(np.abs(litert.astype(np.int16) - tflm.astype(np.int16)).max())
    prediction_disagreements = int((litert.argmax(1) != tflm.argmax(1)).sum())
    np.save(build.out / "host_int8_outputs.npy", tflm)
    evaluation = {
        "test_examples": int(len(d.y_test)),
        "models": {k: v.to_dict() for k, v in results.items()},
        "int8_litert_vs_tflm_mismatches": mismatches,
        "int8_litert_vs_tflm_max_difference": max_difference,
        "int8_litert_vs_tflm_prediction_disagreements": prediction_disagreements,
        "class_names": d.class_names,
        **method_info,
    }
    write_json(build.out / "evaluation.json", evaluation)
    for name, r in results.items():
        build.log(f"  {name:<12} {r.errors:>5} errors / {r.total}  ({100 * r.accuracy:.2f} %)")
    build.log(
        f"  int8 outputs differing between LiteRT and TFLite Micro: {mismatches} "
        f"(largest difference {max_difference} step, {prediction_disagreements} different predictions)"
    )
    return ["evaluation.json", "host_int8_outputs.npy"], {"mismatches": mismatches}


def device(build):
    """device.json: the test set streamed to the board, compared with the host's int8 outputs,
    and the model's per-layer profile measured on the board.

    Tasks whose device preprocesses raw input itself (KWS) stream the raw test clips instead:
    the device runs its feature extractor, then the model; its features must equal the host's
    (same C code) and its outputs the host's int8 outputs on those features."""
    from ..device.evaluate import PARTIAL_NAME, compare_with_host, remove_partial, run_on_device
    from ..evaluate import classification_result
    from ..export import tflite_io_quantization
    from ..export.convert import quantize_input
    from ..trials.session import RayOptions

    d, c = build.dataset, build.config.device
    n = min(c.limit or len(d.y_test), len(d.y_test))
    host_features = quantize_input(d.x_test[:n], tflite_io_quantization(build.out / "model_int8.tflite").input)
    firmware = json.loads((build.out / "firmware" / "firmware.json").read_text())
    raw_audio = build.task.device_frontend is not None  # the device computes the features itself
    partial = build.out / PARTIAL_NAME  # verified results of an interrupted run: resumed from
    inputs = _test_audio(build)[:n] if raw_audio else host_features
    what = "raw test clips" if raw_audio else "test examples"
    board, elf = _device_target(build, firmware["elf"])
    build.log(
        f"  streaming {n} {what} to {board.name}"
        + (" (features computed on the device)" if raw_audio else "")
        + (f" over {c.port}" if c.port else "")
    )
    run = run_on_device(
        board,
        elf,
        inputs,
        expected_sha256=firmware["model_sha256"],
        port=c.port or None,
        instances=c.instances,
        raw_audio=raw_audio,
        partial=partial,
        farm=RayOptions(address=c.address or None) if (c.farm or c.address) else None,
    )
    if run.link.get("resumed"):
        build.log(
            f"  resumed: {run.link['resumed']} results from the interrupted run, {run.link['streamed']} streamed now"
        )
    host = np.load(build.out / "host_int8_outputs.npy")[:n]
    result = classification_result("device", run.outputs, d.y_test[:n], d.num_classes)
    host_result = classification_result("host_int8_tflm", host, d.y_test[:n], d.num_classes)
    comparison = compare_with_host(run.outputs, host)
    report = {
        "board": build.board.name,
        "emulated_on": run.board if run.board != build.board.name else None,
        "where": run.where,
        "examples": n,
        "seconds": run.seconds,
        "device": result.to_dict(),
        "host_int8": host_result.to_dict(),
        "host_vs_device": comparison,
        # At the clock of the board the build is for (an emulated chip's clock is QEMU's choice).
        "latency": run.latency(build.board.clock_hz),
        "link": run.link,
    }
    info = {"errors": result.errors, "mismatches": comparison["mismatches"]}
    summary = (
        f"  on device: {result.errors} errors / {n}; host int8: {host_result.errors}; "
        f"outputs differing from the host: {comparison['mismatches']}"
    )
    if raw_audio:
        differing = np.any(run.features.reshape(n, -1) != host_features.reshape(n, -1), axis=1)
        info["feature_mismatches"] = int(differing.sum())
        report.update(
            input="raw audio (int16, 16 kHz, 1 s); features computed on the device",
            feature_mismatches=info["feature_mismatches"],
            frontend_latency=run.frontend_latency(build.board.clock_hz),
        )
        summary += f"; feature vectors differing: {info['feature_mismatches']}"
    report["layer_profile"] = _layer_profile(build, board, elf, firmware, host_features, run)
    write_json(build.out / "device.json", report)
    remove_partial(partial)
    build.log(summary)
    return ["device.json"], info


def _device_target(build, elf: str):
    """(board, ELF) the device stage streams to. A real board with a QEMU model of its chip
    (`emulated_by` in its board file) is evaluated on that model when no port is given and no
    such board is plugged in: the same port code, built for the emulated chip's wiring (e.g.
    the Nucleo's USART2 becomes QEMU's USART1), so CI proves the board's port without it."""
    from ..boards import load_board
    from ..device.flash import find_ports
    from ..firmware.build import build_firmware

    board, c = build.board, build.config.device
    if board.is_qemu or not board.emulated_by or c.port or c.farm or c.address or find_ports(board):
        return board, elf
    emulator = load_board(board.emulated_by)
    build.log(f"  no {board.name} on USB: evaluating its port on QEMU {emulator.name} instead")
    fw = build_firmware(
        build.out / "model_int8.tflite", emulator, build.out / "firmware-emulated", build.task.device_frontend
    )
    return emulator, str(fw.build.elf)


def _layer_profile(build, board, elf: str, firmware: dict, host_features, run) -> dict:
    """The model's per-layer profile on the device (tinykd.device.profile): PROFILE on the first
    few test inputs (the model's int8 input also when the device computes the features)."""
    from ..device.profile import PROFILE_INPUTS, profile_on_device
    from ..firmware.codegen import ModelSources

    c = build.config.device
    if (c.farm or c.address) and not board.is_qemu:
        # The farm's boards sit on other nodes; the per-layer profile needs one here (--port).
        return {"skipped": "not run over a device farm of real boards: profile one board with --port"}
    k = min(PROFILE_INPUTS, len(run.outputs))
    build.log(f"  profiling the model layer by layer on {k} test inputs")
    profile = profile_on_device(
        board,
        elf,
        np.asarray(host_features[:k]).reshape(k, -1),
        ModelSources.from_dir(build.out / "firmware" / "model"),
        expected_sha256=firmware["model_sha256"],
        port=build.config.device.port or None,
        whole_model_counts=run.counts[:k],
        outputs=run.outputs[:k],
    )
    if "layers" in profile:
        top = max((r for r in profile["layers"] if r["runs_code"]), key=lambda r: r["count"])
        build.log(
            f"  layers sum to {profile['total']:,.0f} {profile['unit']} (whole model {profile['whole_model']:,.0f}); "
            f"heaviest: layer {top['layer']} {top['op']} ({top['share']:.1f} %)"
        )
    return profile


def _test_audio(build):
    from ..data import load_test_audio

    audio = load_test_audio(build.config)
    if len(audio) != len(build.dataset.y_test):
        raise TinykdError(
            f"The raw test clips ({len(audio)}) do not line up with the test features "
            f"({len(build.dataset.y_test)}); the dataset changed during the build. Run again with --force."
        )
    return audio


def report(build):
    """report.json, report.md and the plots."""
    from ..report import write_report

    paths = write_report(build)
    return [str(p.relative_to(build.out)) for p in paths], {}
