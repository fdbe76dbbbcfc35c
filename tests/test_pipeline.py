"""End to end on a data subset: every artifact, C arrays, determinism, resume."""

import json

import numpy as np
import pytest
import tf_keras as keras

import tinykd  # noqa: F401
from tinykd.config import resolve
from tinykd.distill import Distiller, train
from tinykd.export.c_array import read_c_array
from tinykd.models import build_model
from tinykd.pipeline import Build


def test_quick_build_makes_every_artifact(quick_build):
    out = quick_build.out
    for name in [
        "config.toml",
        "teacher.keras",
        "baseline.keras",
        "student.keras",
        "student_qat.h5",
        "model_int8.tflite",
        "model_data.cc",
        "model_data.h",
        "evaluation.json",
        "report.json",
        "report.md",
        "plots/training_curves.png",
        "plots/confusion_int8.png",
        "plots/errors.png",
    ]:
        assert (out / name).is_file(), name
    report = json.loads((out / "report.json").read_text())
    results = report["results"]
    assert set(results) == {"teacher", "baseline", "student", "student_qat", "int8_litert", "int8_tflm"}
    # A 3000-example, 2-epoch student still learns: far better than chance (450 errors of 500).
    assert results["int8_tflm"]["total"] == 500 and results["int8_tflm"]["errors"] < 150
    assert sum(map(sum, results["int8_tflm"]["confusion"])) == 500
    assert "Hinton" in (out / "report.md").read_text() or report["dataset"]["test"] != 10000


def test_int8_model_is_fully_integer(quick_build):
    from tinykd.export import tflite_io_quantization

    q = tflite_io_quantization(quick_build.out / "model_int8.tflite")
    assert q.input.shape == (1, 28, 28, 1) and q.output.shape == (1, 10)
    # Pixels in [0, 1] map onto the whole int8 range: scale 1/255, zero point -128.
    assert q.input.zero_point == -128 and abs(q.input.scale - 1 / 255) < 1e-6


def test_c_array_round_trips_the_tflite_bytes(quick_build):
    out = quick_build.out
    data = (out / "model_int8.tflite").read_bytes()
    assert read_c_array(out / "model_data.cc") == data
    header = (out / "model_data.h").read_text()
    cc = (out / "model_data.cc").read_text()
    assert "extern const unsigned char g_model[];" in header and "extern const unsigned int g_model_len;" in header
    assert f"{len(data)} bytes" in header and "zero point -128" in header
    assert "alignas(16) const unsigned char g_model[]" in cc and f"g_model_len = {len(data)};" in cc


def test_rerun_skips_finished_stages_and_redoes_changed_ones(quick_build):
    logs = []
    build = Build(quick_build.config, quick_build.out, log=logs.append)
    build.run_all()
    assert all("up to date" in line for line in logs), logs
    # Losing an artifact (an interrupted stage) redoes that stage and nothing upstream.
    (quick_build.out / "model_data.cc").unlink()
    logs.clear()
    Build(quick_build.config, quick_build.out, log=logs.append).run("export")
    assert "[export] running" in logs and not any("[qat] running" in line for line in logs)
    assert (quick_build.out / "model_data.cc").is_file()


def test_same_seed_same_bytes(quick_build, tmp_path):
    """A second build from scratch with the same config gives a byte-identical int8 model."""
    again = Build(quick_build.config, tmp_path / "again", log=lambda m: None)
    again.run("export")
    assert (again.out / "model_int8.tflite").read_bytes() == (quick_build.out / "model_int8.tflite").read_bytes()
    assert (again.out / "model_data.cc").read_bytes() == (quick_build.out / "model_data.cc").read_bytes()


class _Interrupt(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        if epoch == 0:
            raise KeyboardInterrupt


def test_training_resumes_from_the_epoch_checkpoint(mnist_dir, tmp_path):
    """Cut a 2-epoch run after epoch 1; the resumed run ends with the uninterrupted run's weights."""
    import tensorflow as tf

    from tinykd.data import mnist

    d = mnist.load(mnist_dir, val_size=200, train_limit=1000, test_limit=10)
    tf.config.experimental.enable_op_determinism()

    def fresh():
        keras.utils.set_random_seed(5)
        return build_model("mlp-30-30", d.input_shape, 10)

    kwargs = dict(epochs=2, batch_size=100, learning_rate=1e-3, seed=5, max_shift=2)
    straight = fresh()
    full = train(Distiller(straight), d.x_train, d.y_train, None, checkpoint_dir=tmp_path / "a", **kwargs)

    cut = fresh()
    with pytest.raises(KeyboardInterrupt):
        train(
            Distiller(cut),
            d.x_train,
            d.y_train,
            None,
            checkpoint_dir=tmp_path / "b",
            callbacks=[_Interrupt()],
            **kwargs,
        )
    resumed = fresh()  # a new process would start from fresh weights, then restore
    result = train(Distiller(resumed), d.x_train, d.y_train, None, checkpoint_dir=tmp_path / "b", **kwargs)
    assert len(result.history["loss"]) == 2
    np.testing.assert_allclose(result.history["loss"], full.history["loss"], rtol=1e-6)
    for a, b in zip(straight.get_weights(), resumed.get_weights()):
        np.testing.assert_array_equal(a, b)


def tiny_config(mnist_dir, **sections):
    """--quick on 500 training and 50 test examples, one epoch per stage, a 30-30 student."""
    overrides = {
        "data": {"dir": str(mnist_dir), "train_limit": 500, "test_limit": 50},
        "teacher": {"epochs": 1},
        "student": {"epochs": 1, "arch": "mlp-30-30"},
        "qat": {"epochs": 1},
    }
    return resolve(quick=True, overrides={**overrides, **sections})


def test_build_from_python_with_overrides(mnist_dir, tmp_path):
    build = Build(tiny_config(mnist_dir), tmp_path / "py", log=lambda m: None)
    record = build.run("convert")
    assert record.info["bytes"] == (tmp_path / "py" / "model_int8.tflite").stat().st_size
    assert "model_int8.tflite" in record.artifacts


def test_quick_build_runs_on_the_qemu_board_with_no_mismatches(quick_build):
    """The int8 model, compiled by our codegen + runtime, on QEMU mps2-an386 over serial."""
    out = quick_build.out
    firmware = json.loads((out / "firmware" / "firmware.json").read_text())
    assert firmware["board"] == "mps2-an386" and firmware["flash_used"] <= firmware["flash_budget"]
    assert firmware["arena_bytes"] <= firmware["activations_total_bytes"]
    device = json.loads((out / "device.json").read_text())
    assert device["examples"] == 500
    assert device["host_vs_device"]["mismatches"] == 0
    assert device["device"]["errors"] == device["host_int8"]["errors"]
    assert device["latency"]["unit"] == "instructions" and device["latency"]["mean"] > 1000
    report = json.loads((out / "report.json").read_text())
    assert report["device"]["host_vs_device"]["mismatches"] == 0
    md = (out / "report.md").read_text()
    assert "On the device: mps2-an386" in md and "QEMU counts executed instructions" in md
    assert (out / "plots" / "confusion_device.png").is_file()


def test_any_tflite_checked_on_the_device_from_the_cli(quick_build, tmp_path):
    from click.testing import CliRunner

    from tinykd.cli import main

    result = CliRunner().invoke(
        main,
        [
            "evaluate",
            "--model",
            str(quick_build.out / "model_int8.tflite"),
            "--board",
            "mps2-an505",
            "--random",
            "40",
            "--out",
            str(tmp_path / "chk"),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "40 random inputs on mps2-an505: 0 outputs differ" in result.output
    check = json.loads((tmp_path / "chk" / "device_check.json").read_text())
    assert check["host_vs_device"]["mismatches"] == 0 and check["examples"] == 40


def test_student_too_big_for_the_board_is_a_clear_error(mnist_dir, tmp_path):
    """The 300-300 student (~330 KB of weights) on a board with 64 KB of flash: both sizes shown."""
    import dataclasses

    from tinykd.boards import load_board
    from tinykd.errors import TinykdError
    from tinykd.firmware.build import build_firmware

    small = dataclasses.replace(load_board("mps2-an386"), flash_bytes=64 * 1024)
    config = resolve(
        quick=True,
        overrides={
            "data": {"dir": str(mnist_dir), "train_limit": 300, "test_limit": 20},
            "teacher": {"epochs": 1},
            "student": {"epochs": 1},
            "qat": {"epochs": 1},
        },
    )
    build = Build(config, tmp_path / "big", log=lambda m: None)
    build.run("convert")  # mlp-300-300: ~330 KB of weights
    with pytest.raises(TinykdError) as info:
        build_firmware(build.out / "model_int8.tflite", small, tmp_path / "fw")
    message = str(info.value)
    assert "does not fit board mps2-an386" in message and "(budget 65536 B)" in message
    assert "Try a smaller student" in message


def test_changed_settings_never_resume_from_old_checkpoints(quick_build, tmp_path):
    """Checkpoints belong to one set of settings: a changed learning rate starts training afresh,
    and the data folder's spelling (not part of the result) changes nothing."""
    import dataclasses

    base = quick_build.config
    moved = dataclasses.replace(base, data=dataclasses.replace(base.data, dir=str(base.data.dir) + "/"))
    assert Build(moved, quick_build.out, log=lambda m: None).fingerprint("train-teacher") == quick_build.fingerprint(
        "train-teacher"
    )
    changed = dataclasses.replace(base, teacher=dataclasses.replace(base.teacher, learning_rate=1e-4))
    build = Build(changed, quick_build.out, log=lambda m: None)
    assert build.fingerprint("train-teacher") != quick_build.fingerprint("train-teacher")
    folder = build.checkpoints("train-teacher")
    assert not folder.exists() or not any(folder.iterdir())
    # The old settings' checkpoints are gone, so nothing stale can be restored later either.
    assert [p.name for p in (quick_build.out / "checkpoints").glob("teacher-*")] in ([], [folder.name])


def test_method_option_reaches_the_build(mnist_dir, tmp_path):
    """--method picks the loss of the distill stage; unknown methods are refused."""
    from click.testing import CliRunner

    from tinykd.cli import main
    from tinykd.errors import TinykdError

    with pytest.raises(TinykdError, match="Unknown distillation method 'nope'; choose one of hinton, ensemble"):
        resolve(overrides={"distill": {"method": "nope"}})
    histories = {}
    for method in ("hinton", "fitnets"):
        build = Build(tiny_config(mnist_dir, distill={"method": method}), tmp_path / method, log=lambda m: None)
        build.run("distill")
        histories[method] = {
            name: json.loads((build.out / "history" / f"{name}.json").read_text())["history"]
            for name in ("baseline", "student")
        }
    # Same seed: the labels-only baseline is identical, the distilled student is not.
    assert histories["hinton"]["baseline"]["loss"] == histories["fitnets"]["baseline"]["loss"]
    assert histories["hinton"]["student"]["soft"] != histories["fitnets"]["student"]["soft"]
    result = CliRunner().invoke(main, ["build", "--method", "nope", "--out", str(tmp_path / "x")])
    assert result.exit_code == 2 and "Unknown distillation method 'nope'" in result.output
