"""The KWS task end to end: `--quick` on a small espeak-ng set generated into the cache,
distilled DS-CNN, int8 with the frontend's input quantisation, evaluated on QEMU from raw audio."""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from tinykd.errors import TinykdError


def test_kws_task_defaults_and_quick():
    from tinykd.config import resolve
    from tinykd.data import get_task

    task = get_task("kws")
    assert task.input_quantization == (0.5, 45) and task.jitter_pixels == 0
    full = resolve(task="kws")
    assert (full.teacher.arch, full.student.arch, full.data.jitter) == ("ds-cnn-l", "ds-cnn-s", 0)
    quick = resolve(task="kws", quick=True)
    assert quick.student.arch == "ds-cnn-s" and quick.data.train_limit == 150
    assert quick.teacher.arch.startswith("ds-cnn")          # not --quick's MNIST MLP teacher
    mnist_quick = resolve(task="mnist", quick=True)         # MNIST's --quick is untouched
    assert mnist_quick.teacher.arch == "mlp-256-256" and mnist_quick.data.train_limit == 3000


def test_kws_data_dir_that_is_not_speech_commands_is_explained(tmp_path):
    from tinykd.data import get_task

    with pytest.raises(TinykdError, match="Speech Commands layout"):
        get_task("kws").load(str(tmp_path))


@pytest.mark.skipif(not (shutil.which("espeak-ng") and shutil.which("qemu-system-arm")
                         and shutil.which("arm-none-eabi-gcc")),
                    reason="needs espeak-ng, qemu-system-arm and arm-none-eabi-gcc")
def test_quick_kws_build_on_synthetic_audio_runs_on_qemu_from_raw_audio(tmp_path):
    from tinykd.config import resolve
    from tinykd.export import tflite_io_quantization
    from tinykd.firmware.codegen import SUPPORTED_OPS
    from tinykd.firmware.tflite_model import read_tflite
    from tinykd.pipeline import Build

    config = resolve(task="kws", quick=True)
    build = Build(config, tmp_path / "build", log=lambda m: None)
    build.run_all()
    out = build.out
    # the synthetic set was generated once into the cache, sized by --quick's train_limit
    synth = Path(os.environ["TINYKD_CACHE"]) / "kws-synth-0-16"
    assert (synth / ".tinykd_synth.json").is_file() and len(list((synth / "yes").glob("*.wav"))) == 16
    d = build.dataset
    assert d.input_shape == (49, 10, 1) and d.num_classes == 12 and len(d.y_test) >= 8
    q = tflite_io_quantization(out / "model_int8.tflite")
    assert (q.input.scale, q.input.zero_point) == (0.5, 45)
    ops = {op.opcode for op in read_tflite(out / "model_int8.tflite").operators}
    assert ops <= set(SUPPORTED_OPS) and "MEAN" not in ops
    device = json.loads((out / "device.json").read_text())
    n = min(config.device.limit, len(d.y_test))
    assert device["examples"] == n and "raw audio" in device["input"]
    assert device["feature_mismatches"] == 0
    assert device["host_vs_device"]["mismatches"] == 0
    assert device["device"]["errors"] == device["host_int8"]["errors"]
    assert device["frontend_latency"]["unit"] == "instructions"
    assert 1e6 < device["frontend_latency"]["mean"] < 2e7 and device["latency"]["mean"] > 1e5
    # the host's int8 outputs came from the same features the device computed from audio
    host = np.load(out / "host_int8_outputs.npy")
    assert host.shape == (len(d.y_test), 12)
