"""The KWS task end to end: `--quick` on a small espeak-ng set generated into the cache,
distilled DS-CNN, int8 with the frontend's input quantisation, evaluated on QEMU from raw audio."""

from __future__ import annotations

import json
import os
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
    assert quick.teacher.arch.startswith("ds-cnn")  # not --quick's MNIST MLP teacher
    mnist_quick = resolve(task="mnist", quick=True)  # MNIST's --quick is untouched
    assert mnist_quick.teacher.arch == "mlp-256-256" and mnist_quick.data.train_limit == 3000


def test_kws_data_dir_that_is_not_speech_commands_is_explained(tmp_path):
    from tinykd.data import get_task

    with pytest.raises(TinykdError, match="Speech Commands layout"):
        get_task("kws").load(str(tmp_path))


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
    (synth,) = Path(os.environ["TINYKD_CACHE"]).glob("kws-synth-0-16-*")  # -<key of the recipe>
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
    # the report speaks in accuracy, shows the frontend's cost and the MFCC of right and wrong clips
    report = (out / "report.md").read_text()
    assert "## Test accuracy (" in report and "Feature extractor (frontend)" in report
    assert "Feature vectors that differ between device and host: **0**" in report
    assert (out / "plots" / "mfcc_examples.png").stat().st_size > 5000
    assert "plots/mfcc_examples.png" in json.loads((out / "report.json").read_text())["plots"]


def test_kws_augment_and_synth_size_settings(tmp_path):
    from tinykd.config import resolve
    from tinykd.data import load_dataset

    base = resolve(task="kws", quick=True)
    more = resolve(task="kws", quick=True, overrides={"data": {"augment": 2, "synth_clips": 16}})
    plain, augmented = load_dataset(base), load_dataset(more)
    # the same 16-clip set (train_limit sizes it to 16 too); two augmented copies appended
    assert len(augmented.y_train) == 3 * len(plain.y_train)
    assert np.array_equal(augmented.y_train, np.tile(plain.y_train, 3))
    assert np.array_equal(augmented.x_train[: len(plain.y_train)], plain.x_train)
    assert np.array_equal(augmented.x_test, plain.x_test)  # evaluation data is never augmented
    with pytest.raises(TinykdError, match="only apply to the kws task"):
        resolve(task="mnist", overrides={"data": {"augment": 1}})
    with pytest.raises(TinykdError, match="non-negative"):
        resolve(task="kws", overrides={"data": {"synth_clips": -1}})


def test_data_synth_kws_command_writes_the_speech_commands_layout(tmp_path):
    from click.testing import CliRunner

    from tinykd.cli import main
    from tinykd.data.kws import speech_commands

    out = tmp_path / "synth"
    result = CliRunner().invoke(main, ["data", "synth-kws", "--out", str(out), "--clips", "2", "--seed", "4"])
    assert result.exit_code == 0, result.output
    assert speech_commands.is_dataset_dir(out) and len(list((out / "stop").glob("*.wav"))) == 2
    assert f"--data-dir {out}" in result.output
    again = CliRunner().invoke(main, ["data", "synth-kws", "--out", str(tmp_path), "--clips", "0"])
    assert again.exit_code == 2 and "clips_per_word must be at least 1" in again.output
