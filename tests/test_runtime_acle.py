"""Issue 11, defect 4: the runtime builds with an <arm_acle.h> that lacks the DSP intrinsics.

The Arduino Mbed core compiles with its own arm-none-eabi-gcc 7-2017q4, whose arm_acle.h has
no __smlad, __sxtb16, __ssat, __smlabb, __smlatt. The runtime uses its own inline-assembly
wrappers instead; here a stub arm_acle.h without those intrinsics comes first on the include
path, and the runtime plus a generated model must compile with
-Werror=implicit-function-declaration and link (every public kernel referenced, so every DSP
path is in the image) for Cortex-M4, and compile for M7, M33 and M55. Bit-exactness of the
DSP paths on those cores: tests/test_runtime_dsp_qemu.py."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from _tflite_models import ModelFactory  # noqa: E402

from tinykd.firmware.codegen import generate_model_sources  # noqa: E402
from tinykd.firmware.host_build import runtime_dir, runtime_sources  # noqa: E402

CC = "arm-none-eabi-gcc"
# what arm_acle.h of an old GCC offers: the header exists, the DSP intrinsics do not
STUB_ACLE = "/* stub arm_acle.h: no DSP intrinsics (like arm-none-eabi-gcc 7-2017q4) */\n#include <stdint.h>\n"
MAIN_C = r"""
#include <stdint.h>
#include "model.h"
#include "tkd_runtime.h"
/* every public kernel, so the linker keeps all of them with their DSP paths */
void *volatile tkd_all_kernels[] = {
    (void *)tkd_fully_connected_s8, (void *)tkd_conv_s8, (void *)tkd_depthwise_conv_s8,
    (void *)tkd_avg_pool_s8, (void *)tkd_max_pool_s8, (void *)tkd_add_s8,
    (void *)tkd_softmax_s8, (void *)tkd_requantize_s8, (void *)tkd_copy,
};
static int8_t in_buf[TKD_MODEL_INPUT_BYTES], out_buf[TKD_MODEL_OUTPUT_BYTES];
int main(void)
{
    return tkd_model_invoke(in_buf, out_buf);
}
"""
CPUS = {
    "cortex-m4": ["-mcpu=cortex-m4", "-mthumb", "-mfpu=fpv4-sp-d16", "-mfloat-abi=hard"],
    "cortex-m7": ["-mcpu=cortex-m7", "-mthumb", "-mfpu=fpv5-d16", "-mfloat-abi=hard"],
    "cortex-m33": ["-mcpu=cortex-m33", "-mthumb", "-mfpu=fpv5-sp-d16", "-mfloat-abi=hard"],
    "cortex-m55": ["-mcpu=cortex-m55", "-mthumb", "-mfloat-abi=hard"],
}
FLAGS = ["-std=c99", "-O2", "-Wall", "-Wextra", "-Werror", "-Werror=implicit-function-declaration"]
SPEC = ((9, 9, 4), [("conv", 8, 3, 1, "same", "relu"), ("dw", 3, 1, "same", 1, None), ("flatten",), ("dense", 5, None)])


@pytest.fixture(scope="module")
def stub_dir(tmp_path_factory):
    if not shutil.which(CC):
        pytest.fail(f"{CC} is required for this test")
    d = tmp_path_factory.mktemp("old_acle")
    (d / "arm_acle.h").write_text(STUB_ACLE)
    return d


def _cc(args, cwd=None):
    return subprocess.run([CC, *args], capture_output=True, text=True, cwd=cwd)


def test_stub_header_hides_the_intrinsics(stub_dir, tmp_path):
    """The stub reproduces the old toolchain: code calling __smlad fails with it and builds
    with GCC 12's own arm_acle.h (so the runtime test below would catch a regression)."""
    src = tmp_path / "uses_acle.c"
    src.write_text("#include <arm_acle.h>\nint f(int a, int b, int c) { return __smlad(a, b, c); }\n")
    args = [*CPUS["cortex-m4"], *FLAGS, "-c", str(src), "-o", str(tmp_path / "u.o")]
    assert _cc(args).returncode == 0
    bad = _cc([f"-I{stub_dir}", *args])
    assert bad.returncode != 0 and "implicit declaration of function '__smlad'" in bad.stderr


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    factory = ModelFactory(tmp_path_factory.mktemp("acle_models"))
    out = tmp_path_factory.mktemp("acle_model_src")
    generate_model_sources(factory.get(SPEC, seed=5, name="acle_mix"), out)
    (out / "main.c").write_text(MAIN_C)
    return out


@pytest.mark.parametrize("cpu", sorted(CPUS))
def test_runtime_builds_without_acle_intrinsics(cpu, stub_dir, model_dir, tmp_path):
    incs = [f"-I{stub_dir}", f"-I{runtime_dir()}", f"-I{model_dir}"]
    objs = []
    for src in [*runtime_sources(), model_dir / "model.c", model_dir / "main.c"]:
        obj = tmp_path / (src.stem + ".o")
        r = _cc([*CPUS[cpu], *FLAGS, *incs, "-c", str(src), "-o", str(obj)])
        assert r.returncode == 0, f"{src.name} for {cpu}:\n{r.stderr}"
        objs.append(str(obj))
    if cpu != "cortex-m4":
        return
    elf = tmp_path / "fw.elf"
    r = _cc([*CPUS[cpu], "--specs=nano.specs", "--specs=nosys.specs", *objs, "-o", str(elf)])
    assert r.returncode == 0, f"link for {cpu}:\n{r.stderr}"
    dis = subprocess.run(["arm-none-eabi-objdump", "-d", str(elf)], capture_output=True, text=True, check=True).stdout
    # the DSP paths are in the image, written by our wrappers
    for insn in ("smlad", "sxtb16", "smlabb", "smlatt", "ssat", "smmulr"):
        assert f"\t{insn}" in dis, f"no {insn} in the linked runtime"
