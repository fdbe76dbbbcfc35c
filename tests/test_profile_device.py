"""Per-layer profile measured on the device (issue 11): PROFILE over serial on QEMU mps2-an386.

A small CNN (conv, residual ADD, depthwise, pooling, a dense head, softmax): every layer that
runs code gets a count > 0, the MAC layers their MACs and instructions per MAC, the layers
sum to about the whole-model count of a normal run (INFER, whose counts the profile leaves
alone), and the table lands in device_check.json (`evaluate --model`) and in the build's
device.json, report.md, report.json and plots/layer_profile.png."""

import json
import shutil
from types import SimpleNamespace

import numpy as np
import pytest

from tinykd.fuzz.random_models import ModelSpec, build_tflite

LAYERS = [
    {"kind": "conv", "kh": 3, "kw": 3, "stride": 1, "dilation": 1, "padding": "same", "act": "relu", "filters": 8},
    {"kind": "residual", "k": 3, "two_branches": False, "filters": 8, "inner_act": "relu", "act": None},
    {"kind": "dw", "kh": 3, "kw": 3, "stride": 2, "dilation": 1, "padding": "same", "act": "relu6", "multiplier": 1},
    {"kind": "maxpool", "k": 2, "stride": 2, "padding": "valid"},
    {"kind": "flatten"},
    {"kind": "dense", "units": 10, "act": None},
    {"kind": "softmax"},
]
MAC_OPS = {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"}


@pytest.fixture(scope="module")
def cnn(tmp_path_factory):
    assert shutil.which("qemu-system-arm") and shutil.which("arm-none-eabi-gcc")
    layers = [{**L, "wscale": 1.0, "bias": True, "wscale2": 0.5} for L in LAYERS]
    spec = ModelSpec(1102, "conv", (12, 12, 3), layers, (-1.0, 1.0), float_io=False)
    return build_tflite(spec, tmp_path_factory.mktemp("profile") / "small_cnn.tflite")


def _check_table(profile: dict, sources) -> None:
    assert profile["unit"] == "instructions" and profile["per_mac_label"] == "instr/MAC"
    assert "not cycles" in profile["note"]
    rows = profile["layers"]
    assert [r["layer"] for r in rows] == [L.index for L in sources.layers]
    ops = [r["op"] for r in rows]
    assert {"CONV_2D", "ADD", "DEPTHWISE_CONV_2D", "MAX_POOL_2D", "FULLY_CONNECTED", "SOFTMAX"} <= set(ops)
    for r in rows:
        assert "macs" in r and r["macs"] >= 0
        if not r["runs_code"]:
            assert r["op"] == "RESHAPE" and r["count"] == 0
            continue
        assert r["count"] > 0, r
        if r["op"] in MAC_OPS:
            assert r["macs"] > 0 and r["per_mac"] == pytest.approx(r["count"] / r["macs"], abs=1e-3)
    assert sum(r["macs"] for r in rows) == sources.macs == profile["macs"]
    assert sum(r["count"] for r in rows) == pytest.approx(profile["total"], abs=1.0)
    # the layers sum to the whole model's count within a few SysTick ticks (40 instructions)
    ratio = profile["layers_sum_vs_whole_model"]
    assert 0.98 < ratio < 1.02, profile
    assert abs(profile["total"] - profile["whole_model"]) < 40 * len(rows) + 200
    assert 0 < profile["mark_cost"] < 1000
    assert profile["outputs_differing_from_infer"] == 0
    assert sum(r["share"] for r in rows) == pytest.approx(100.0, abs=0.1)


def test_evaluate_model_writes_the_per_layer_profile(cnn, tmp_path):
    from tinykd.device.check import check_model_on_device
    from tinykd.firmware.codegen import ModelSources

    result = check_model_on_device(cnn, "mps2-an386", tmp_path, n=6, seed=2)
    assert result["host_vs_device"]["mismatches"] == 0
    saved = json.loads((tmp_path / "device_check.json").read_text())
    sources = ModelSources.from_dir(tmp_path / "firmware" / "model")
    assert sources.layers and len(sources.profiled_layers) == len(sources.layers) - 1  # RESHAPE runs no code
    _check_table(saved["layer_profile"], sources)
    assert saved["layer_profile"]["inputs"] == 3
    assert (tmp_path / "layer_profile.png").stat().st_size > 5000 and saved["plots"] == ["layer_profile.png"]
    # INFER's own counts are those of tkd_model_invoke, which has no marks
    model_c = (tmp_path / "firmware" / "model" / "model.c").read_text()
    plain = model_c.split("int tkd_model_invoke(const int8_t *input, int8_t *output)\n{\n", 1)[1]
    assert "mark(" not in plain and plain.count("layer_") == len(sources.profiled_layers)


def test_build_device_stage_and_report_carry_the_profile(cnn, tmp_path):
    """The build's device stage profiles the model; report.md shows the table, report.json
    carries it, plots/layer_profile.png is drawn."""
    from tinykd.boards import load_board
    from tinykd.config import DeviceConfig, resolve
    from tinykd.device.profile import profile_markdown
    from tinykd.evaluate import int8_outputs_tflm
    from tinykd.export import tflite_io_quantization
    from tinykd.export.convert import quantize_input
    from tinykd.fileio import write_bytes, write_json
    from tinykd.firmware.build import build_firmware
    from tinykd.pipeline import measure_stages
    from tinykd.report import write_report

    out, n = tmp_path / "build", 5
    write_bytes(out / "model_int8.tflite", cnn.read_bytes())
    build_firmware(cnn, "mps2-an386", out / "firmware")
    rng = np.random.default_rng(4)
    x = rng.uniform(-1, 1, (n, 12, 12, 3)).astype(np.float32)
    host = int8_outputs_tflm(cnn, quantize_input(x, tflite_io_quantization(cnn).input)).reshape(n, -1)
    np.save(out / "host_int8_outputs.npy", host)
    y = rng.integers(0, 10, n)
    config = resolve(task="mnist", quick=True)
    config.device = DeviceConfig()
    build = SimpleNamespace(
        out=out,
        board=load_board("mps2-an386"),
        dataset=SimpleNamespace(x_test=x, y_test=y, num_classes=10, summary=lambda: {"test": n}),
        config=config,
        task=SimpleNamespace(device_frontend=None, load_test_audio=None),
        records={
            "train-teacher": SimpleNamespace(info={"params": 1000}, seconds=1.0),
            "distill": SimpleNamespace(info={"params": 100}, seconds=1.0),
        },
        log=lambda message: None,
    )
    measure_stages.device(build)
    device = json.loads((out / "device.json").read_text())
    assert device["host_vs_device"]["mismatches"] == 0
    from tinykd.firmware.codegen import ModelSources

    _check_table(device["layer_profile"], ModelSources.from_dir(out / "firmware" / "model"))

    def model(name):
        errors = int((host.argmax(1) != y).sum())
        return {"name": name, "errors": errors, "total": n, "accuracy": 1 - errors / n, "confusion": [[0] * 10] * 10}

    names = ("teacher", "baseline", "student", "student_qat", "int8_litert", "int8_tflm")
    write_json(
        out / "evaluation.json",
        {
            "test_examples": n,
            "models": {k: model(k) for k in names},
            "int8_litert_vs_tflm_mismatches": 0,
            "int8_litert_vs_tflm_max_difference": 0,
            "int8_litert_vs_tflm_prediction_disagreements": 0,
            "class_names": [str(k) for k in range(10)],
        },
    )
    write_report(build)
    report = json.loads((out / "report.json").read_text())
    assert report["device"]["layer_profile"] == device["layer_profile"]
    assert "plots/layer_profile.png" in report["plots"] and (out / "plots" / "layer_profile.png").is_file()
    md = (out / "report.md").read_text()
    assert "### Per layer (measured on the device)" in md
    assert "\n".join(profile_markdown(device["layer_profile"])) in md
    assert "| # | layer | MACs | instructions | instr/MAC | share |" in md and "in place, no code" in md
