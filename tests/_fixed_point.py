"""Python references of the runtime's fixed-point helpers (TFLite's gemmlowp arithmetic), in
Python integers: the kernel tests on the host and the DSP tests on QEMU check the C against them."""

from __future__ import annotations

INT32_MIN, INT32_MAX = -(1 << 31), (1 << 31) - 1


def py_srdhm(a: int, b: int) -> int:
    """SaturatingRoundingDoublingHighMul."""
    if a == b == INT32_MIN:
        return INT32_MAX
    ab = a * b
    nudge = (1 << 30) if ab >= 0 else 1 - (1 << 30)
    q = abs(ab + nudge) // (1 << 31)  # C division truncates toward zero
    return q if ab + nudge >= 0 else -q


def py_rdbpot(x: int, e: int) -> int:
    """RoundingDivideByPOT: round(x / 2^e), ties away from zero."""
    if e == 0:
        return x
    q, r = divmod(abs(x), 1 << e)
    if 2 * r >= (1 << e):
        q += 1
    return q if x >= 0 else -q


def wrap32(v: int) -> int:
    return (v + (1 << 31)) % (1 << 32) - (1 << 31)


def py_mbqm(x: int, m: int, shift: int) -> int:
    """MultiplyByQuantizedMultiplier (double rounding)."""
    left, right = max(shift, 0), max(-shift, 0)
    return py_rdbpot(py_srdhm(wrap32(x * (1 << left)), m), right)
