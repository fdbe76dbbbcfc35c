"""The device frontend is a build option, not a guess from the model's size: a model with the
KWS input size (49 x 10 int8) builds with the raw-audio path only when asked
(device_frontend="kws-mfcc"); without it the firmware takes features from the host, whatever
the input's zero point (a public DS-CNN has 83, not the frontend's 45). A model that does not
take the frontend's features is refused by Python before anything compiles."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

import tinykd  # noqa: F401  (sets TF_USE_LEGACY_KERAS before tensorflow loads)
from tinykd.errors import TinykdError
from tinykd.firmware.frontends import DEVICE_FRONTENDS, get_device_frontend
from tinykd.resources import firmware_dir

REPO = Path(__file__).resolve().parents[1]
FIXTURE = REPO / "tests" / "fixtures" / "fixture_model"
KWS_SPEC = ((49, 10, 1), [("conv", 4, 3, 2, "same", "relu"), ("flatten",), ("dense", 12, None)])


def _kws_sized_model(out: Path, zero_point: int) -> Path:
    from tinykd.export.convert import convert_int8
    from tinykd.models.from_spec import build_from_spec

    model = build_from_spec(KWS_SPEC, 3)
    x = (0.5 * (np.random.default_rng(3).integers(-128, 128, (16, 49, 10, 1)) - zero_point)).astype(np.float32)
    return convert_int8(model, x, out, samples=16, input_quantization=(0.5, zero_point))


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    d = tmp_path_factory.mktemp("kws_sized")
    return {zp: _kws_sized_model(d / f"kws_zp{zp}.tflite", zp) for zp in (45, 83)}


def _symbols(elf: Path) -> set[str]:
    out = subprocess.run(["arm-none-eabi-nm", str(elf)], capture_output=True, text=True, check=True).stdout
    return {line.split()[-1] for line in out.splitlines() if line.strip()}


def test_frontend_constants_match_the_c_frontend_and_the_host_frontend():
    from tinykd.data.kws import frontend as host

    fe = DEVICE_FRONTENDS["kws-mfcc"]
    h = (firmware_dir() / fe.source_dir / "tkd_frontend.h").read_text()
    defs = dict(re.findall(r"^#define (TKD_FRONTEND_\w+)\s+(\S+)", h, re.M))
    assert int(defs["TKD_FRONTEND_NUM_FRAMES"]) * int(defs["TKD_FRONTEND_NUM_MFCC"]) == fe.input_bytes
    assert float(defs["TKD_FRONTEND_SCALE"].rstrip("f")) == fe.input_scale
    assert int(defs["TKD_FRONTEND_ZERO_POINT"]) == fe.input_zero_point
    assert (host.NUM_FRAMES * host.NUM_MFCC, host.SCALE, host.ZERO_POINT) == (
        fe.input_bytes,
        fe.input_scale,
        fe.input_zero_point,
    )
    app = (firmware_dir() / "app" / "tkd_app.c").read_text()
    assert f"#if {fe.define}" in app
    assert get_device_frontend(None) is None
    with pytest.raises(TinykdError, match="Unknown device frontend 'mfcc'.*kws-mfcc"):
        get_device_frontend("mfcc")


def test_kws_sized_model_builds_with_and_without_the_frontend(models, tmp_path):
    from tinykd.firmware.build import build_firmware
    from tinykd.firmware.codegen import ModelSources

    assert shutil.which("arm-none-eabi-nm"), "the Arm GNU toolchain is required for this test"
    # with the frontend: the raw-audio path and the C feature extractor are in the image
    fw = build_firmware(models[45], "mps2-an386", tmp_path / "audio", device_frontend="kws-mfcc")
    assert fw.sources.input_bytes == 490 and fw.sources.input_zero_point == 45
    assert fw.summary()["device_frontend"] == "kws-mfcc"
    assert "#define TKD_APP_FRONTEND_KWS 1" in (tmp_path / "audio" / "app" / "tkd_app_config.h").read_text()
    assert (tmp_path / "audio" / "app" / "tkd_frontend.c").is_file()
    assert "tkd_frontend_run" in _symbols(fw.build.elf)
    # the project's model folder keeps the facts the generator stated
    facts = ModelSources.from_dir(tmp_path / "audio" / "model")
    assert facts == fw.sources

    # without: features from the host, no frontend, even for 490 bytes with zero point 83
    for zp in (45, 83):
        fw = build_firmware(models[zp], "mps2-an386", tmp_path / f"features{zp}")
        assert fw.sources.input_bytes == 490 and fw.sources.input_zero_point == zp
        assert "#define TKD_APP_FRONTEND_KWS 0" in (tmp_path / f"features{zp}" / "app" / "tkd_app_config.h").read_text()
        assert not (tmp_path / f"features{zp}" / "app" / "tkd_frontend.c").exists()
        syms = _symbols(fw.build.elf)
        assert "tkd_frontend_run" not in syms and "tkd_model_invoke" in syms
        assert fw.build.ram_used < 32_000 + fw.sources.arena_bytes  # no 32 000-byte clip buffer


def test_model_not_taking_the_frontend_features_is_refused_before_compiling(models, tmp_path):
    from tinykd.firmware.build import build_firmware

    with pytest.raises(TinykdError, match=r"zero point 83 instead of 45.*without device_frontend") as e:
        build_firmware(models[83], "mps2-an386", tmp_path / "fw", device_frontend="kws-mfcc")
    assert type(e.value) is TinykdError
    assert not (tmp_path / "fw" / "build").exists()
    assert not (tmp_path / "fw" / "Makefile").exists()


def test_hand_written_sources_with_the_frontend_fail_in_c_with_the_reason(tmp_path):
    """Without model.json (hand-written sources) Python cannot check the model; the app's
    static checks say what is wrong."""
    from tinykd.firmware.project import build_project, generate_project

    project = generate_project("mps2-an386", FIXTURE, tmp_path / "fw", device_frontend="kws-mfcc")
    assert project.model_name is None and project.device_frontend == "kws-mfcc"
    with pytest.raises(TinykdError, match="does not take the frontend's 49 x 10 int8 features"):
        build_project(project)
