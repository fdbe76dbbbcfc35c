#!/usr/bin/env python3
"""Generate tkd_frontend_tables.h: the constant tables of the fixed-point KWS frontend.

Run from anywhere: `python firmware/frontend/gen_tables.py` rewrites the header beside this
script; `--check` only compares and exits 1 if the committed header is stale. The parameters
(sizes, mel range, output scale) are read from tkd_frontend.h, so that header stays the
single source of truth. Only the standard library is used (math), and every value is rounded
to an integer here, so the C code never touches floating point. The generated header is
committed: host and device compile the very same integers.
"""

from __future__ import annotations

import math
import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
PUBLIC_HEADER = HERE / "tkd_frontend.h"
TABLES_HEADER = HERE / "tkd_frontend_tables.h"

LOG2_TABLE_BITS = 8  # log2 mantissa table: 2^8 intervals, linear interpolation


def read_params(header: Path = PUBLIC_HEADER) -> dict[str, float]:
    text = header.read_text()
    params: dict[str, float] = {}
    for name, value in re.findall(r"#define\s+TKD_FRONTEND_(\w+)\s+\(?(-?[0-9.]+)f?\)?\s", text):
        params[name] = float(value)
    return params


def hz_to_mel(f: float) -> float:
    return 1127.0 * math.log(1.0 + f / 700.0)


def mel_layout(p: dict[str, float]):
    """Per FFT bin: the band whose rising slope it is on and that weight (the falling weight
    1 - w goes to the band before). Triangles with peak 1, HTK mel scale."""
    n_fft = int(p["FFT_SIZE"])
    rate = p["SAMPLE_RATE"]
    n_mel = int(p["NUM_MEL"])
    lo, hi = hz_to_mel(p["MEL_LOW_HZ"]), hz_to_mel(p["MEL_HIGH_HZ"])
    edges = [lo + (hi - lo) * i / (n_mel + 1) for i in range(n_mel + 2)]
    bins = []
    for k in range(n_fft // 2 + 1):
        m = hz_to_mel(k * rate / n_fft)
        if m < edges[0] or m >= edges[-1]:
            continue
        j = max(i for i in range(n_mel + 1) if edges[i] <= m)
        w = (m - edges[j]) / (edges[j + 1] - edges[j])
        bins.append((k, j, w))
    ks = [b[0] for b in bins]
    assert ks == list(range(ks[0], ks[-1] + 1)), "mel bins must be contiguous"
    return bins


def q(x: float, bits: int) -> int:
    return int(math.floor(x * (1 << bits) + 0.5))


def c_array(ctype: str, name: str, values: list[int], per_line: int = 12) -> str:
    lines = [f"static const {ctype} {name}[{len(values)}] = {{"]
    for i in range(0, len(values), per_line):
        lines.append("    " + ", ".join(str(v) for v in values[i : i + per_line]) + ",")
    lines.append("};")
    return "\n".join(lines)


def generate() -> str:
    p = read_params()
    window = int(p["WINDOW"])
    n_fft = int(p["FFT_SIZE"])
    n_mel = int(p["NUM_MEL"])
    n_mfcc = int(p["NUM_MFCC"])
    scale = p["SCALE"]

    # Periodic Hann, Q15, all 640 points (w[320] = 32768: uint16).
    hann = [q(0.5 - 0.5 * math.cos(2.0 * math.pi * n / window), 15) for n in range(window)]

    # Twiddles, Q31 (1 saturates to 2^31 - 1): W^m = cos - i sin of 2 pi m / n_fft.
    def q31(x: float) -> int:
        return max(min(q(x, 31), (1 << 31) - 1), -(1 << 31))

    def cs(m: int, n: int = n_fft) -> list[int]:
        return [q31(math.cos(2.0 * math.pi * m / n)), q31(math.sin(2.0 * math.pi * m / n))]

    w1024 = [v for m in range(n_fft // 4) for v in cs(m)]
    # Radix-4 DIF stages of the n_fft/2-point complex FFT, spans L = 256, 64, 16 (the span-4
    # stage needs none): for j = 1 .. L/4 - 1 the twiddles W_L^j, W_L^2j, W_L^3j.
    half = n_fft // 2
    spans = [half // 2 // 4**i for i in range(3)]
    assert spans == [256, 64, 16] and half == 2 * 4**4, spans
    r4 = [v for span in spans for j in range(1, span // 4) for r in (1, 2, 3) for v in cs(r * j, span)]

    bins = mel_layout(p)
    first_bin = bins[0][0]
    band = [j for _, j, _ in bins]
    weight = [q(w, 15) for _, _, w in bins]
    # Headroom check for the C accumulator: sum of Q15 weights in any band < 2^20.
    sums = [0] * n_mel
    for j, w in zip(band, weight):
        if j < n_mel:
            sums[j] += w
        if j >= 1:
            sums[j - 1] += (1 << 15) - w
    assert max(sums) < (1 << 20) and min(sums) > 0, sums
    # The C walks the bins band by band: segment j = the bins whose rising edge is band j.
    assert band == sorted(band) and band[0] == 0 and band[-1] <= n_mel, band
    band_start = [sum(1 for b in band if b < j) for j in range(n_mel + 2)]

    # Where the FFT leaves Z[k]: DIF radix 2 then four radix-4 stages, outputs digit-reversed,
    # k = r0 + 2 r1 + 8 r2 + 32 r3 + 128 r4 at p = 256 r0 + 64 r1 + 16 r2 + 4 r3 + r4. Per
    # filterbank bin k: p(k) | p(512 - k) << 16.
    def pos(k: int) -> int:
        r0, k = k % 2, k // 2
        digits = []
        for _ in range(4):
            digits.append(k % 4)
            k //= 4
        return 256 * r0 + 64 * digits[0] + 16 * digits[1] + 4 * digits[2] + digits[3]

    assert sorted(pos(k) for k in range(half)) == list(range(half))
    positions = [pos(k) | pos(half - k) << 16 for k, _, _ in bins]

    # log2(1 + i / 2^bits) in Q16, i = 0 .. 2^bits.
    n_log = 1 << LOG2_TABLE_BITS
    log2_q16 = [q(math.log2(1.0 + i / n_log), 16) for i in range(n_log + 1)]
    # The C interpolates in uint32: step * (2^(31 - bits) - 1) + 2^(30 - bits) < 2^32.
    step = max(b - a for a, b in zip(log2_q16, log2_q16[1:]))
    assert step * ((1 << (31 - LOG2_TABLE_BITS)) - 1) + (1 << (30 - LOG2_TABLE_BITS)) < (1 << 32), step

    # Orthonormal DCT-II rows k < n_mfcc, with ln(2) (log2 -> ln) and 1/scale folded in, Q30.
    # Row k is (-1)^k-symmetric about the middle: only n < n_mel / 2 is stored.
    dct = []
    for k in range(n_mfcc):
        norm = math.sqrt((1.0 if k == 0 else 2.0) / n_mel)
        row = [q(norm * math.cos(math.pi * k * (n + 0.5) / n_mel) * math.log(2.0) / scale, 30) for n in range(n_mel)]
        assert all(row[n_mel - 1 - n] == (-1) ** k * row[n] for n in range(n_mel // 2)), k
        dct.extend(row[: n_mel // 2])
    assert max(abs(v) for v in dct) < (1 << 31)

    out = [
        "/* Generated by gen_tables.py from tkd_frontend.h. Do not edit: run",
        " *   python firmware/frontend/gen_tables.py",
        " * and commit the result. */",
        "#ifndef TKD_FRONTEND_TABLES_H",
        "#define TKD_FRONTEND_TABLES_H",
        "",
        "#include <stdint.h>",
        "",
        f"#define TKD_MEL_FIRST_BIN {first_bin}",
        f"#define TKD_MEL_NUM_BINS {len(bins)}",
        f"#define TKD_LOG2_TABLE_BITS {LOG2_TABLE_BITS}",
        "",
        "/* Periodic Hann window, Q15. */",
        c_array("uint16_t", "tkd_hann_q15", hann),
        "",
        "/* cos, sin of 2 pi m / FFT_SIZE for m = 0 .. FFT_SIZE/4 - 1, Q31, interleaved. */",
        c_array("int32_t", "tkd_w1024_q31", w1024, 6),
        "",
        "/* Radix-4 stage twiddles (spans 256, 64, 16; j = 1 .. span/4 - 1): cos, sin of W^j, W^2j, W^3j. */",
        c_array("int32_t", "tkd_r4_twiddle_q31", r4, 6),
        "",
        "/* Per filterbank bin k: FFT buffer position of Z[k] | that of Z[FFT_SIZE/2 - k] << 16. */",
        c_array("uint32_t", "tkd_fft_pos", positions, 8),
        "",
        "/* Per FFT bin from TKD_MEL_FIRST_BIN: band whose rising edge it is on (NUM_MEL: none). */",
        c_array("uint8_t", "tkd_mel_band", band, 16),
        "",
        "/* First bin (from TKD_MEL_FIRST_BIN) of each band's rising edge, [NUM_MEL + 2]. */",
        c_array("uint16_t", "tkd_mel_band_start", band_start, 16),
        "",
        "/* Rising weight of that band, Q15; the band before gets 32768 - weight. */",
        c_array("uint16_t", "tkd_mel_weight_q15", weight),
        "",
        "/* log2(1 + i / 2^TKD_LOG2_TABLE_BITS), Q16. */",
        c_array("uint32_t", "tkd_log2_q16", log2_q16),
        "",
        "/* DCT-II rows (orthonormal) * ln(2) / TKD_FRONTEND_SCALE, Q30, [NUM_MFCC][NUM_MEL / 2]. */",
        c_array("int32_t", "tkd_dct_q30", dct, 8),
        "",
        "#endif /* TKD_FRONTEND_TABLES_H */",
        "",
    ]
    return "\n".join(out)


def main(argv: list[str]) -> int:
    text = generate()
    if "--check" in argv:
        current = TABLES_HEADER.read_text() if TABLES_HEADER.exists() else ""
        if current != text:
            print(f"{TABLES_HEADER} is stale: run python {Path(__file__)}", file=sys.stderr)
            return 1
        return 0
    tmp = TABLES_HEADER.with_suffix(".h.tmp")
    tmp.write_text(text)
    tmp.replace(TABLES_HEADER)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
