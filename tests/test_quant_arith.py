"""TFLite's quantisation arithmetic in tinykd/firmware/codegen/quant.py against
- TFLite Micro's own definitions, evaluated the way its C++ does (a small C program on the host
  with frexp/round in double, float division and roundf for activation ranges, int division
  for padding), over edge cases and thousands of random values; and
- the tflite-micro Python interpreter: a FULLY_CONNECTED layer computed in numpy from
  quant.py's multipliers gives the interpreter's bytes exactly."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from _tflite_models import ModelFactory, tflm_outputs  # noqa: E402

from tinykd.firmware.codegen import quant  # noqa: E402
from tinykd.firmware.tflite_model import read_tflite  # noqa: E402

# The reference, written from TFLite's definitions (quantization_util.cc QuantizeMultiplier,
# kernel_util.cc CalculateActivationRangeQuantized, padding.h ComputeOutSize /
# ComputePaddingWithOffset). One query per input line; one answer per output line.
REFERENCE_C = r"""
#include <math.h>
#include <stdint.h>
#include <stdio.h>

static void quantize_multiplier(double m, long long *q, int *shift)
{
    double frac;
    long long q_fixed;
    if (m == 0.0) { *q = 0; *shift = 0; return; }
    frac = frexp(m, shift);
    q_fixed = (long long)round(frac * (double)(1LL << 31));
    if (q_fixed == (1LL << 31)) { q_fixed /= 2; ++*shift; }
    if (*shift < -31) { *shift = 0; q_fixed = 0; }
    *q = q_fixed;
}

int main(void)
{
    char kind;
    while (scanf(" %c", &kind) == 1) {
        if (kind == 'm') {
            double m; long long q; int s;
            if (scanf("%la", &m) != 1) return 1;
            quantize_multiplier(m, &q, &s);
            printf("%lld %d\n", q, s);
        } else if (kind == 'r') {
            double x;
            if (scanf("%la", &x) != 1) return 1;
            printf("%.0f\n", round(x));
        } else if (kind == 'a') {
            float f, scale;
            if (scanf("%a %a", &f, &scale) != 2) return 1;
            printf("%ld\n", (long)roundf(f / scale));
        } else if (kind == 'p') {
            int same, image, filt, stride, dil, eff, out, total;
            if (scanf("%d %d %d %d %d", &same, &image, &filt, &stride, &dil) != 5) return 1;
            eff = (filt - 1) * dil + 1;
            out = same ? (image + stride - 1) / stride : (image + stride - eff) / stride;
            total = (out - 1) * stride + eff - image;
            total = total > 0 ? total : 0;
            printf("%d %d\n", out, total / 2);
        }
    }
    return 0;
}
"""


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    cc = shutil.which("gcc") or shutil.which("cc")
    assert cc, "a host C compiler (gcc) is required for this test"
    d = tmp_path_factory.mktemp("quant_ref")
    (d / "ref.c").write_text(REFERENCE_C)
    subprocess.run([cc, "-O0", "-std=c99", str(d / "ref.c"), "-lm", "-o", str(d / "ref")], check=True)

    def ask(lines: list[str]) -> list[str]:
        r = subprocess.run([str(d / "ref")], input="\n".join(lines) + "\n", capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        return r.stdout.split("\n")[: len(lines)]

    return ask


def _multipliers() -> list[float]:
    rng = np.random.default_rng(0)
    edge = [
        0.0,
        0.5,
        1.0,
        0.75,
        2.0,
        1.0 - 2.0**-40,  # rounds up to 2^31
        0.5 - 2.0**-60,
        2.0**-31,
        2.0**-32,
        2.0**-33,
        2.0**-40,  # flushed to zero
        5e-324,  # the smallest denormal
        np.nextafter(1.0, 0.0),
        1.5 * 2.0**-31,
        (2**31 - 0.5) / 2**31,  # a tie at the top
        (2**30 + 0.5) / 2**31,  # a tie
        3.0e5,
    ]
    return edge + list(10.0 ** rng.uniform(-12, 4, 3000)) + list(rng.uniform(0, 1, 1000))


def test_quantize_multiplier_matches_tflite(reference):
    ms = [float(m) for m in _multipliers()]
    got = [quant.quantize_multiplier(m) for m in ms]
    want = [tuple(int(v) for v in line.split()) for line in reference([f"m {m.hex()}" for m in ms])]
    assert got == want
    for m, (q, s) in zip(ms, got):  # and the result means what it says
        assert q == 0 or ((1 << 30) <= q < (1 << 31) and abs(q * 2.0 ** (s - 31) - m) <= m * 2.0**-30)


def test_round_half_away_is_std_round(reference):
    rng = np.random.default_rng(1)
    xs = [0.5, -0.5, 1.5, -1.5, 2.5, -2.5, 0.49999999999999994, -0.49999999999999994, 1e15 + 0.5, 4503599627370497.0]
    xs += list(np.round(rng.uniform(-1e6, 1e6, 500) * 2) / 2) + list(rng.normal(0, 1e3, 500))
    xs = [float(x) for x in xs]
    want = [int(line) for line in reference([f"r {x.hex()}" for x in xs])]
    assert [quant.round_half_away(x) for x in xs] == want


def test_activation_range_matches_tflite(reference):
    rng = np.random.default_rng(2)
    cases = [
        (float(np.float32(s)), int(z)) for s, z in zip(10.0 ** rng.uniform(-4, 0, 400), rng.integers(-128, 128, 400))
    ]
    cases += [(0.5, 45), (6.0 / 255, -128), (1.0 / 128, 0), (0.0235294122, -128)]
    for act, bounds in ((1, (0.0, None)), (3, (0.0, 6.0)), (2, (-1.0, 1.0))):
        lines = []
        for scale, _ in cases:
            lines += [f"a {float(np.float32(b)).hex()} {scale.hex()}" for b in bounds if b is not None]
        ref = iter(int(v) for v in reference(lines))
        for scale, zp in cases:
            lo = max(-128, zp + next(ref))
            hi = 127 if bounds[1] is None else min(127, zp + next(ref))
            assert quant.activation_range(act, scale, zp) == (lo, hi), (act, scale, zp)
    assert quant.activation_range(0, 0.1, 3) == (-128, 127)


def test_out_size_and_padding_match_tflite(reference):
    cases = []
    for image in (1, 2, 5, 7, 12, 49):
        for filt in (1, 2, 3, 5):
            for stride in (1, 2, 3):
                for dil in (1, 2):
                    for same in (1, 0):
                        if same or image >= (filt - 1) * dil + 1:  # VALID needs the filter to fit
                            cases.append((same, image, filt, stride, dil))
    want = reference(["p " + " ".join(map(str, c)) for c in cases])
    for (same, image, filt, stride, dil), line in zip(cases, want):
        out, pad = (int(v) for v in line.split())
        padding = 0 if same else 1  # tflite::Padding: SAME = 0, VALID = 1
        assert quant.out_size(padding, image, filt, stride, dil) == out
        assert quant.pad_before(stride, dil, image, filt, out) == pad


def test_short_requant_needs_right_shifts_and_small_accumulators():
    assert quant.short_requant(np.array([100, -5]), np.array([10, 3]), [0.01, 0.2]) == 1
    assert quant.short_requant(np.array([100]), np.array([10]), [0.7]) == 0  # shift 0
    assert quant.short_requant(np.array([0]), np.array([(1 << 23) - 1]), [0.01]) == 1
    assert quant.short_requant(np.array([0]), np.array([1 << 23]), [0.01]) == 0  # 128 * sum = 2^30


def _srdhm(a: int, b: int) -> int:
    """SaturatingRoundingDoublingHighMul (gemmlowp), in Python integers."""
    if a == b == -(1 << 31):
        return (1 << 31) - 1
    ab = a * b
    nudge = (1 << 30) if ab >= 0 else 1 - (1 << 30)
    v = ab + nudge
    return int(v / (1 << 31)) if v >= 0 else -((-v) // (1 << 31))


def _rdbp(x: int, e: int) -> int:
    """RoundingDivideByPOT: x / 2^e, ties away from zero."""
    mask = (1 << e) - 1
    rem, thr = x & mask, (mask >> 1) + (1 if x < 0 else 0)
    return (x >> e) + (1 if rem > thr else 0)


def _mbqm(x: int, q: int, shift: int) -> int:
    left, right = max(shift, 0), max(-shift, 0)
    v = x * (1 << left)
    v = (v + (1 << 31)) % (1 << 32) - (1 << 31)
    return _rdbp(_srdhm(v, q), right)


def test_fully_connected_from_quant_multipliers_matches_tflm_interpreter(tmp_path_factory):
    """A per-channel and a per-tensor dense layer computed in Python from quant.py's numbers
    equal the tflite-micro interpreter's outputs byte for byte."""
    factory = ModelFactory(tmp_path_factory.getbasetemp() / "tflite_models")
    spec = ((24,), [("dense", 7, "relu")])
    for per_tensor in (False, True):
        path = factory.get(spec, seed=11, per_tensor=per_tensor, name="quant_fc" + ("_pt" if per_tensor else ""))
        m = read_tflite(path)
        (op,) = [o for o in m.operators if o.opcode == "FULLY_CONNECTED"]
        x_t, w_t, b_t, y_t = (m.tensors[i] for i in (*op.inputs[:3], op.outputs[0]))
        w = w_t.array().reshape(w_t.shape).astype(np.int64)
        b = b_t.array().astype(np.int64)
        if len(w_t.scale) > 1:
            mults = [quant.quantize_multiplier(x_t.scale[0] * s / y_t.scale[0]) for s in w_t.scale]
        else:
            real = quant.conv_multiplier_per_tensor(x_t.scale[0], w_t.scale[0], y_t.scale[0])
            mults = [quant.quantize_multiplier(real)] * w.shape[0]
        lo, hi = quant.activation_range(
            int(op.options.get("FusedActivationFunction", 0)), y_t.scale[0], y_t.zero_point[0]
        )
        rng = np.random.default_rng(4)
        xs = [rng.integers(-128, 128, (1, 24)).astype(np.int8) for _ in range(30)]
        for x, ref in zip(xs, tflm_outputs(path, xs)):
            acc = (w + (-w_t.zero_point[0] if len(w_t.scale) == 1 else 0)) @ (
                x[0].astype(np.int64) - x_t.zero_point[0]
            ) + b
            y = [min(hi, max(lo, _mbqm(int(a), q, s) + y_t.zero_point[0])) for a, (q, s) in zip(acc, mults)]
            np.testing.assert_array_equal(np.array(y, np.int8), ref.reshape(-1))
