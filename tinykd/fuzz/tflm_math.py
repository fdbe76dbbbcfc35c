"""TFLite Micro's int8 fixed-point arithmetic, in plain Python integers (a model for checks).

These follow the reference kernels' definitions (QuantizeMultiplier, the double-rounding
MultiplyByQuantizedMultiplier) so the fuzzer can aim inputs at rounding ties and so a
mismatch can be explained by recomputing a layer by hand.
"""

from __future__ import annotations

import math
from decimal import ROUND_HALF_UP, Decimal


def round_half_away(x: float) -> int:
    """std::round of a double: nearest integer, ties away from zero."""
    return int(Decimal(x).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def quantize_multiplier(m: float) -> tuple[int, int]:
    """m (a double) = q * 2^(shift - 31), q a Q0.31 integer in [2^30, 2^31)."""
    if m == 0.0:
        return 0, 0
    frac, shift = math.frexp(m)
    q = round_half_away(frac * (1 << 31))
    if q == (1 << 31):
        q //= 2
        shift += 1
    if shift < -31:
        return 0, 0
    return q, shift


def srdhm(a: int, b: int) -> int:
    """SaturatingRoundingDoublingHighMul for int32 a, b (no saturation case with b >= 0)."""
    p = a * b
    nudge = (1 << 30) if p >= 0 else 1 - (1 << 30)
    v = p + nudge
    # C++ integer division truncates toward zero
    q = abs(v) >> 31
    return q if v >= 0 else -q


def rounding_divide_by_pot(x: int, exponent: int) -> int:
    """RoundingDivideByPOT: x / 2^exponent rounded to nearest, ties away from zero."""
    if exponent == 0:
        return x
    mask = (1 << exponent) - 1
    remainder = x & mask
    threshold = (mask >> 1) + (1 if x < 0 else 0)
    return (x >> exponent) + (1 if remainder > threshold else 0)


def multiply_by_quantized_multiplier(x: int, q: int, shift: int) -> int:
    left = shift if shift > 0 else 0
    right = -shift if shift < 0 else 0
    return rounding_divide_by_pot(srdhm(x * (1 << left), q), right)


EDGE_TOLERANCE = 1 << 24  # "on an edge": within 2^-7 of a unit of the first rounding


def edge_distance(acc: int, q: int, shift: int) -> int:
    """How far acc's requantisation is from a rounding edge where a multiplier a few units
    off changes the result, in units of acc * q * 2^left (the first rounding's unit is 2^31).

    With a right shift, TFLM rounds twice: hi = round(P / 2^31) (P = acc * q * 2^left), then
    hi / 2^right with ties away from zero. hi is an exact tie of the second rounding for P in
    a window of width 2^31 around mid = 2^(30 + right) (mod 2^(31 + right)); a positive acc
    there rounds up where the exact product would round down near the window's lower edge
    (a negative one near its upper edge). The distance is to that edge, from inside the
    window (outside: 2^62). Without a right shift there is one rounding; its edge is
    P = 2^30 (mod 2^31), from either side."""
    left = shift if shift > 0 else 0
    right = -shift if shift < 0 else 0
    p = acc * (q << left)
    if right == 0:
        r = p % (1 << 31)
        e = abs(r - (1 << 30))
        return e
    mod = 1 << (31 + right)
    r = p % mod
    lo = (1 << (30 + right)) - (1 << 30)  # first P (mod) whose hi is the tie
    hi = (1 << (30 + right)) + (1 << 30) - 1  # last one
    if not lo <= r <= hi:
        return 1 << 62
    return r - lo if acc >= 0 else hi - r
