"""Inputs aimed at rounding ties.

For a model whose first layer (after an optional float QUANTIZE) is FULLY_CONNECTED,
CONV_2D or DEPTHWISE_CONV_2D, an input is searched so that chosen output elements of that
layer requantise exactly on a tie of TFLM's double rounding, at the edge where a multiplier
a few units off its last digits changes the result (`tflm_math.edge_distance`):

1. start from random int8 bytes and compute the element's accumulator exactly
   (bias + sum (x - input zero point) * w, padding taps skipped as in the reference);
2. among the accumulators reachable by moving the element's inputs within [-128, 127]
   (a window of up to 2^20 values around the current one), rank by edge distance, with
   q, shift from the double-precision effective scale input_scale * filter_scale /
   output_scale (what TFLM computes);
3. realise the best candidates' accumulator change exactly by editing input bytes (greedy
   over the weights, largest |w| first); the first candidate reached within
   EDGE_TOLERANCE (2^-7 of the first rounding's unit) counts as landed.

FULLY_CONNECTED gets one aimed element per input row; convolutions get several per input,
on output pixels whose receptive fields do not overlap. A multiplier formed differently
(e.g. in float32), or a different rounding rule, flips exactly these elements; deeper
layers see the flipped values, not aimed ones.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tinykd.fuzz.tflm_math import EDGE_TOLERANCE, edge_distance, quantize_multiplier

AIMED_OPS = ("FULLY_CONNECTED", "CONV_2D", "DEPTHWISE_CONV_2D")
WINDOW = 1 << 20


@dataclass
class _Layer:
    opcode: str
    in_shape: tuple[int, ...]
    in_zp: int
    w: np.ndarray  # int64
    bias: np.ndarray  # int64 (zeros without bias)
    mults: list[tuple[int, int]]  # (q, shift) per output channel
    options: dict


def first_aimed_layer(model) -> tuple[_Layer | None, bool]:
    """The first compute layer reading the model's (int8) input, and whether the model has a
    float input (QUANTIZE first). None when the model starts with another op."""
    t = model.tensors
    ops = list(model.operators)
    float_in = False
    inp = model.inputs[0]
    if ops and ops[0].opcode == "QUANTIZE" and t[inp].type == "FLOAT32":
        inp = ops[0].outputs[0]
        ops = ops[1:]
        float_in = True
    if not ops or ops[0].opcode not in AIMED_OPS or ops[0].inputs[0] != inp:
        return None, float_in
    op = ops[0]
    x, w, y = t[op.inputs[0]], t[op.inputs[1]], t[op.outputs[0]]
    wa = w.array().astype(np.int64)
    oc = y.shape[-1]
    if len(op.inputs) > 2 and op.inputs[2] >= 0:
        bias = t[op.inputs[2]].array().astype(np.int64).reshape(-1)
    else:
        bias = np.zeros(oc, np.int64)
    wscales = list(w.scale) if len(w.scale) > 1 else [w.scale[0]] * oc
    if op.opcode == "FULLY_CONNECTED":
        wa = wa - (w.zero_point[0] if len(w.scale) == 1 else 0)
    mults = [quantize_multiplier(x.scale[0] * s / y.scale[0]) for s in wscales]
    return _Layer(op.opcode, tuple(x.shape), int(x.zero_point[0]), wa, bias, mults, dict(op.options)), float_in


def _edge_distances(acc: np.ndarray, q: int, shift: int) -> np.ndarray:
    """tflm_math.edge_distance over an array of accumulators (2^62 where the shifted
    accumulator would not fit an int32: the reference would overflow there)."""
    left = shift if shift > 0 else 0
    right = -shift if shift < 0 else 0
    a2 = acc.astype(np.int64) << left
    ok = np.abs(a2) < (1 << 31)
    p = np.where(ok, a2, 0) * np.int64(q)
    far = np.int64(1) << 62
    if right == 0:
        d = np.abs(np.mod(p, np.int64(1) << 31) - (np.int64(1) << 30))
    else:
        r = np.mod(p, np.int64(1) << (31 + right))
        lo = (np.int64(1) << (30 + right)) - (np.int64(1) << 30)
        hi = (np.int64(1) << (30 + right)) + (np.int64(1) << 30) - 1
        d = np.where(acc >= 0, r - lo, hi - r)
        d = np.where((r >= lo) & (r <= hi), d, far)
    return np.where(ok, d, far)


def _realise(x: np.ndarray, idx: np.ndarray, w: np.ndarray, delta: int) -> bool:
    """Change x[idx] (int64, in place) so that sum(change * w) == delta; False if not found."""
    order = np.argsort(-np.abs(w), kind="stable")
    new = x.copy()
    r = int(delta)
    for _pass in range(2):
        for k in order:
            wk = int(w[k])
            if wk == 0 or r == 0:
                continue
            i = idx[k]
            step = int(r / wk)  # toward zero: never overshoots
            if step == 0:
                continue
            lo, hi = -128 - int(new[i]), 127 - int(new[i])
            step = max(lo, min(hi, step))
            new[i] += step
            r -= step * wk
        if r == 0:
            x[:] = new
            return True
    return False


def _aim(x, idx, w, base, q, shift) -> bool:
    """Move one element (inputs x[idx], weights w, accumulator without inputs `base`) onto a
    rounding edge; True when it got within EDGE_TOLERANCE of one."""
    acc0 = int(base + np.dot(x[idx], w))
    up = int(np.sum(np.where(w > 0, (127 - x[idx]) * w, (-128 - x[idx]) * w)))
    down = int(np.sum(np.where(w > 0, (-128 - x[idx]) * w, (127 - x[idx]) * w)))
    lo, hi = max(down, -WINDOW // 2), min(up, WINDOW // 2)
    if hi <= lo:
        return False
    acc = acc0 + np.arange(lo, hi + 1, dtype=np.int64)
    acc = acc[np.abs(acc) < (1 << 31)]
    if acc.size == 0:
        return False
    dist = _edge_distances(acc, q, shift)
    for b in np.argsort(dist, kind="stable")[:40]:
        if dist[b] > EDGE_TOLERANCE:
            break
        if _realise(x, idx, w, int(acc[b]) - acc0):
            assert edge_distance(int(base + np.dot(x[idx], w)), q, shift) <= EDGE_TOLERANCE
            return True
    return False


def tie_input(model, rng: np.random.Generator) -> tuple[np.ndarray, int] | None:
    """An int8 input (the int8 side of a float input) with aimed elements, and how many
    elements were put on a tie; None when the model's first layer is not aimable."""
    layer, _ = first_aimed_layer(model)
    if layer is None:
        return None
    shape = layer.in_shape
    x = rng.integers(-128, 128, size=int(np.prod(shape))).astype(np.int64)
    zp = layer.in_zp
    landed = 0
    if layer.opcode == "FULLY_CONNECTED":
        out_depth, accum = layer.w.shape
        for b in range(x.size // accum):
            j = int(rng.integers(out_depth))
            idx = np.arange(b * accum, (b + 1) * accum)
            q, s = layer.mults[j]
            base = int(layer.bias[j]) - zp * int(layer.w[j].sum())
            landed += _aim(x, idx, layer.w[j], base, q, s)
        return x.astype(np.int8).reshape(shape), landed
    # convolutions: NHWC input, filter (oc, kh, kw, ic) or depthwise (1, kh, kw, oc)
    _, ih, iw, ic = shape
    o = layer.options
    sh, sw = int(o.get("StrideH", 1)), int(o.get("StrideW", 1))
    dh, dw = int(o.get("DilationHFactor", 1)), int(o.get("DilationWFactor", 1))
    depthwise = layer.opcode == "DEPTHWISE_CONV_2D"
    kh, kw = layer.w.shape[1], layer.w.shape[2]
    oc = layer.w.shape[3] if depthwise else layer.w.shape[0]
    same = int(o.get("Padding", 0)) == 0

    def out_size(n, k, s, d):
        eff = (k - 1) * d + 1
        return (n + s - 1) // s if same else (n - eff) // s + 1

    oh, ow = out_size(ih, kh, sh, dh), out_size(iw, kw, sw, dw)
    ph = max(0, (oh - 1) * sh + (kh - 1) * dh + 1 - ih) // 2
    pw = max(0, (ow - 1) * sw + (kw - 1) * dw + 1 - iw) // 2
    used = np.zeros(x.size, bool)
    pixels = [(a, b) for a in range(oh) for b in range(ow)]
    order = rng.permutation(len(pixels))
    for p in order[:64]:
        oy, ox = pixels[p]
        j = int(rng.integers(oc))
        idx, ws = [], []
        for ky in range(kh):
            iy = oy * sh - ph + ky * dh
            if not 0 <= iy < ih:
                continue
            for kx in range(kw):
                ix = ox * sw - pw + kx * dw
                if not 0 <= ix < iw:
                    continue
                if depthwise:
                    c = j // (oc // ic)
                    idx.append((iy * iw + ix) * ic + c)
                    ws.append(layer.w[0, ky, kx, j])
                else:
                    for c in range(ic):
                        idx.append((iy * iw + ix) * ic + c)
                        ws.append(layer.w[j, ky, kx, c])
        if not idx:
            continue
        idx_a, w_a = np.array(idx), np.array(ws, np.int64)
        if used[idx_a].any():
            continue
        q, s = layer.mults[j]
        base = int(layer.bias[j]) - zp * int(w_a.sum())
        if _aim(x, idx_a, w_a, base, q, s):
            landed += 1
            used[idx_a] = True
    return x.astype(np.int8).reshape(shape), landed
