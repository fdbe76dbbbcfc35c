"""KWS on the device: the firmware's INFER_AUDIO path (raw audio -> C frontend -> model) under
QEMU gives the host's feature bytes and the host's int8 outputs; the DS-CNN models convert to
int8 with only ops our runtime runs, with the frontend's input quantisation, and fit the Nano 33."""

from __future__ import annotations

import numpy as np
import pytest

import tinykd  # noqa: F401
from tinykd.errors import TinykdError


def _ops(path) -> set[str]:
    from tinykd.firmware.tflite_model import read_tflite

    return {op.opcode for op in read_tflite(path).operators}


def _clips() -> np.ndarray:
    """Four clips: two espeak-ng words (noisy), digital silence and full-scale noise."""
    from tinykd.data.kws import synth

    words = [synth.speak(synth.clip_spec(3, w, i)) for i, w in enumerate(("yes", "stop"))]
    rng = np.random.default_rng(5)
    loud = rng.integers(-32768, 32768, 16000).astype(np.int16)
    return np.stack(words + [np.zeros(16000, np.int16), loud])


@pytest.fixture(scope="module")
def kws_qat_model(tmp_path_factory):
    """ds-cnn-s through QAT (a few steps on random features) and conversion, as the pipeline does."""
    import tf_keras as keras

    from tinykd.data.kws import frontend
    from tinykd.export.convert import convert_int8
    from tinykd.models import build_model
    from tinykd.quantize import quantize_student

    keras.utils.set_random_seed(1)
    rng = np.random.default_rng(1)
    q = rng.integers(-128, 108, size=(64, 49, 10, 1))
    x = frontend.dequantize(q).astype(np.float32)
    y = rng.integers(0, 12, 64)
    qat = quantize_student(build_model("ds-cnn-s", (49, 10, 1), 12))
    qat.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    qat.fit(x, y, epochs=1, batch_size=32, verbose=0)
    out = tmp_path_factory.mktemp("kws-model") / "model_int8.tflite"
    convert_int8(qat, x, out, samples=32, input_quantization=(frontend.SCALE, frontend.ZERO_POINT))
    return out


def test_ds_cnn_s_converts_to_supported_int8_ops_and_fits_nano33(kws_qat_model, tmp_path):
    from tinykd.export import tflite_io_quantization
    from tinykd.firmware.build import build_firmware
    from tinykd.firmware.codegen import SUPPORTED_OPS

    ops = _ops(kws_qat_model)
    assert ops <= set(SUPPORTED_OPS), ops
    assert {"CONV_2D", "DEPTHWISE_CONV_2D", "AVERAGE_POOL_2D", "FULLY_CONNECTED"} <= ops
    assert not ops & {"MEAN", "MUL", "ADD", "SUB"}  # batch norm folded, no global mean
    q = tflite_io_quantization(kws_qat_model)
    assert q.input.shape == (1, 49, 10, 1)
    assert (q.input.scale, q.input.zero_point) == (0.5, 45)
    fw = build_firmware(kws_qat_model, "nano33", tmp_path / "fw", device_frontend="kws-mfcc")
    s = fw.summary()
    assert s["flash_used"] <= s["flash_budget"] and s["ram_used"] <= s["ram_budget"]
    assert 15_000 < s["params"] < 40_000  # Hello Edge DS-CNN S: ~24 k parameters
    # the audio path is in: the 32 000-byte clip buffer and the frontend's tables
    assert s["ram_used"] > 32_000 + s["arena_bytes"]


@pytest.mark.parametrize("arch", ["ds-cnn-xs", "ds-cnn-l"])
def test_other_kws_models_convert_with_supported_ops(arch, tmp_path):
    import tf_keras as keras

    from tinykd.data.kws import frontend
    from tinykd.export.convert import convert_int8
    from tinykd.firmware.build import build_firmware
    from tinykd.firmware.codegen import SUPPORTED_OPS
    from tinykd.models import build_model

    keras.utils.set_random_seed(2)
    model = build_model(arch, (49, 10, 1), 12)
    x = frontend.dequantize(np.random.default_rng(2).integers(-128, 100, (16, 49, 10, 1))).astype(np.float32)
    out = convert_int8(
        model, x, tmp_path / "m.tflite", samples=16, input_quantization=(frontend.SCALE, frontend.ZERO_POINT)
    )
    ops = _ops(out)
    assert ops <= set(SUPPORTED_OPS) and "MEAN" not in ops and "MUL" not in ops, ops
    if arch == "ds-cnn-xs":
        fw = build_firmware(out, "nano33", tmp_path / "fw", device_frontend="kws-mfcc")
        # the model and everything the app holds for raw audio fit in 64 KB of RAM
        assert fw.build.ram_used <= 64 * 1024, fw.summary()


def test_fixed_input_quantisation_must_contain_zero(tmp_path):
    from tinykd.export.convert import convert_int8
    from tinykd.models import build_model

    model = build_model("ds-cnn-xs", (49, 10, 1), 12)
    with pytest.raises(TinykdError, match="zero point"):
        convert_int8(model, np.zeros((2, 49, 10, 1), np.float32), tmp_path / "m.tflite", input_quantization=(0.5, 200))
    assert not (tmp_path / "m.tflite").exists()


def test_device_frontend_and_model_on_raw_audio_match_the_host(kws_qat_model, tmp_path):
    """Raw clips over serial (INFER_AUDIO) to QEMU mps2-an386: the device's features are the
    host frontend's bytes, its outputs TFLite Micro's on those features; both counts come back."""
    from tinykd.data.kws import frontend
    from tinykd.device.run import run_audio_qemu
    from tinykd.evaluate import int8_outputs_tflm
    from tinykd.firmware.build import build_firmware

    fw = build_firmware(kws_qat_model, "mps2-an386", tmp_path / "fw", device_frontend="kws-mfcc")
    audio = _clips()
    outputs, features, counts, fcounts = run_audio_qemu(
        "mps2-an386",
        fw.build.elf,
        audio,
        instances=2,
        expected_sha256_hex=fw.sources.sha256,
        progress=False,
        time_limit=300,
    )
    host_features = frontend.features(audio)
    np.testing.assert_array_equal(features.reshape(host_features.shape), host_features)
    assert len({f.tobytes() for f in host_features}) == 4  # the clips really differ
    host = int8_outputs_tflm(kws_qat_model, host_features[..., None])
    np.testing.assert_array_equal(outputs, host)
    # instruction counts: the frontend ~6 M per clip, the model its own (non-zero) share
    assert np.all((fcounts > 1_000_000) & (fcounts < 20_000_000)), fcounts
    assert np.all(counts > 100_000), counts


def test_raw_audio_to_a_non_kws_firmware_is_refused(tmp_path):
    """A firmware whose model does not take the frontend's features: a TinykdError that says
    so before any audio is sent."""
    from pathlib import Path

    from tinykd.device.run import run_audio_qemu
    from tinykd.firmware.project import build_project, generate_project

    fixture = Path(__file__).parent / "fixtures" / "fixture_model"
    project = generate_project("mps2-an386", fixture, tmp_path / "fw")
    elf = build_project(project).elf
    with pytest.raises(TinykdError, match="cannot run on raw audio"):
        run_audio_qemu("mps2-an386", elf, np.zeros((1, 16000), np.int16), instances=1, progress=False, time_limit=60)
    # and the firmware itself answers INFER_AUDIO with ERROR(UNSUPPORTED)
    from tinykd.device import protocol as P
    from tinykd.device.link import DeviceLink
    from tinykd.device.qemu import QemuInstance

    with QemuInstance("mps2-an386", elf, time_limit=60) as q, DeviceLink(q.url) as link:
        link.connect()
        with pytest.raises(TinykdError, match="unsupported"):
            link.request(P.INFER_AUDIO, b"", expect=P.AUDIO_RESULT)
    with pytest.raises(TinykdError, match="16000 int16"):
        run_audio_qemu("mps2-an386", elf, np.zeros((1, 8000), np.int16), instances=1, progress=False)
