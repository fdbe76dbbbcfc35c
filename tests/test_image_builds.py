"""`tinykd build --task image --quick` end to end on data the tests make (MNIST digits rotated,
resized, noisy, coloured; 5 classes): one build per format, each run on QEMU mps2-an386 with
every device output equal to the host's int8 output.

- idx, training files .gz and test files raw, 20x20x1, the cnn teacher and cnn-s student;
- a .npz in a folder, 32x32x3 with its own class names, the cnn teacher and an MLP student;
- a folder of grey PNGs in train/ and test/, resized to an odd 21x17;
- a folder of RGB PNGs and JPEGs without test/ ([data] test_split), resized to 32x32, cnn-m.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from _cli import run
from _image_data import NAMES, make_images, write_folder, write_idx

from tinykd.export import tflite_io_quantization

pytestmark = pytest.mark.slow

# Tiny data trains in a few seconds; more epochs and steps than --quick's so that the models learn
# (QAT on 3 batches of 128 leaves its activation ranges near their initial values).
TRAINING = """
[teacher]
batch_size = 32
[student]
batch_size = 32
learning_rate = 0.005
[distill]
temperature = 4.0
alpha = 0.7
[qat]
batch_size = 32
"""


def _build(tmp_path, data, data_keys: str, *options) -> tuple[dict, object]:
    config = tmp_path / "image.toml"
    config.write_text("[data]\n" + data_keys + TRAINING)
    out = tmp_path / "build"
    args = ["--task", "image", "--quick", "--config", str(config), "--data-dir", str(data), "--out", str(out)]
    code, output = run("build", *args, "--teacher-epochs", "6", "--epochs", "6", *options)
    assert code == 0, output
    report = json.loads((out / "report.json").read_text())
    device = report["device"]
    assert device["board"] == "mps2-an386" and device["examples"] == report["dataset"]["test"]
    assert device["host_vs_device"]["mismatches"] == 0  # the board computes exactly what TFLite Micro does
    assert device["device"]["errors"] == report["results"]["int8_tflm"]["errors"]
    assert (out / "plots" / "confusion_device.png").is_file() and (out / "plots" / "confusion_int8.png").is_file()
    return report, out


def _check(report, out, shape, classes, teacher_errors_below, student_errors_below):
    """Input shape and quantisation, class names in the report and the C header, some learning."""
    q = tflite_io_quantization(out / "model_int8.tflite")
    assert q.input.shape == (1, *shape) and q.output.shape == (1, len(classes))
    # pixels 0..255 (the data spans them) -> int8 -128..127, as the host sends them to the board
    assert q.input.zero_point == -128 and abs(q.input.scale - 1 / 255) < 1e-6
    assert report["dataset"]["classes"] == list(classes) and report["dataset"]["input_shape"] == list(shape)
    assert json.loads((out / "evaluation.json").read_text())["class_names"] == list(classes)
    assert f"Classes ({len(classes)}): {', '.join(classes)}" in (out / "model_data.h").read_text()
    results, total = report["results"], report["dataset"]["test"]
    # chance is 4/5 of the test set wrong
    assert results["teacher"]["errors"] < teacher_errors_below * total, results["teacher"]
    assert results["int8_tflm"]["errors"] < student_errors_below * total, results["int8_tflm"]


def test_idx_gz_and_raw_20x20_grey(mnist_dir, tmp_path):
    data = make_images(mnist_dir, 400, 100, (20, 20), 1, seed=1)
    gz = {"train_images": True, "train_labels": True, "test_images": False, "test_labels": False}
    folder = write_idx(tmp_path / "idx", data, gz)["train_images"].parent
    assert sorted(p.name for p in folder.iterdir()) == [
        "t10k-images-idx3-ubyte",
        "t10k-labels-idx1-ubyte",
        "train-images-idx3-ubyte.gz",
        "train-labels-idx1-ubyte.gz",
    ]
    keys = f"class_names = {json.dumps(list(NAMES))}\njitter = 1\n"
    report, out = _build(tmp_path, folder, keys, "--teacher", "cnn")
    assert report["config"]["student"]["arch"] == "cnn-s" and report["config"]["teacher"]["arch"] == "cnn"
    _check(report, out, (20, 20, 1), NAMES, 0.2, 0.3)


def test_npz_32x32_rgb_with_its_class_names(mnist_dir, tmp_path):
    data = make_images(mnist_dir, 400, 100, (32, 32), 3, seed=2)
    names = np.array(["nought", "one", "two", "three", "four"])
    (tmp_path / "npz").mkdir()
    np.savez_compressed(tmp_path / "npz" / "digits.npz", **data, class_names=names)
    # --data-dir names a folder holding one .npz ([data] dir may name the file itself)
    report, out = _build(tmp_path, tmp_path / "npz", "", "--teacher", "cnn", "--student", "mlp-64")
    _check(report, out, (32, 32, 3), list(names), 0.2, 0.4)


def test_grey_png_folders_resized_to_odd_21x17(mnist_dir, tmp_path):
    data = make_images(mnist_dir, 400, 100, (28, 28), 1, seed=3)
    write_folder(tmp_path / "png", data, splits=True)
    report, out = _build(tmp_path, tmp_path / "png", "image_size = [21, 17]\n", "--teacher", "cnn")
    _check(report, out, (21, 17, 1), sorted(NAMES), 0.2, 0.3)


def test_rgb_png_and_jpeg_folders_with_test_split_resized_to_32x32(mnist_dir, tmp_path):
    data = make_images(mnist_dir, 400, 100, (36, 36), 3, seed=4)
    write_folder(tmp_path / "photos", data, splits=False, jpeg_every=3)
    keys = "image_size = [32, 32]\nchannels = 3\ntest_split = 0.2\n"
    report, out = _build(tmp_path, tmp_path / "photos", keys, "--teacher", "cnn", "--student", "cnn-m")
    assert 60 <= report["dataset"]["test"] <= 140  # about a fifth of the 500 images, by file name
    _check(report, out, (32, 32, 3), sorted(NAMES), 0.2, 0.3)
