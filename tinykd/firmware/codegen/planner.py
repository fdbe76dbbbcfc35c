"""The static arena: where every activation tensor lives while the layers run, the model's
input and output included.

Input: the layers as `Step`s (tensors read, tensor written, whether the output is an alias of
the input, which inputs the output may be written over), each tensor's size, and which tensors
are the model's input and output. Output: an `ArenaPlan` (arena size, one `PlanEntry` per
tensor, C locations, where the input and output are).

Rules:
- every tensor is in the arena. The model input is alive from before the first step (the
  caller writes it there) to its last reader; the model output from its producer to the end
  (the caller reads it there after the run);
- an alias step (RESHAPE, `in_place`) makes its output the same bytes as its input: same root,
  no code. The model output may be such an alias too;
- a root's lifetime runs from the first to the last step that reads or writes it (or any of
  its aliases); two roots alive at the same step never share a byte, except:
- overwriting (`Step.overwrite`): a step whose kernel provably never reads an input byte after
  writing over it may place its output over an input whose last use it is (the input's root
  dies at that step, the output's root is born there). Each (input, max_shift) pair allows
  output_offset - input_offset <= max_shift (in bytes). Elementwise kernels (output element i
  written after input element i is read, and no input element j < i read afterwards) allow
  max_shift 0: exactly in place, or the output anywhere before. `window_max_shift` gives
  the bound for CONV_2D (tkd_conv.c) and the pools (tkd_pool.c), which re-read a pixel's
  receptive field after writing some of its outputs, so they need a lead (never exactly in
  place, even a 1x1 conv that does not widen);
- placement: each root at an ARENA_ALIGN-aligned offset allowed by every root already placed
  that is alive at the same time: first fit (the lowest offset >= 0, TFLM's greedy way), or
  the offset that grows the arena least (negative ones too: an output just below the input it
  is written over; everything shifted up at the end); each in several orders of the roots
  (largest first; born last first; biggest size x lifetime first; chronological; ...). The
  smallest arena wins (ties: the earlier way and order, first fit largest first first);
- the arena's size is rounded up to 16 bytes (it is declared TKD_ALIGN(16)).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

ARENA_ALIGN = 4  # byte alignment of every tensor inside the arena
ARENA_SIZE_ALIGN = 16  # the arena's own size and alignment
CONV_BLOCK_PIXELS = 4  # most output pixels tkd_conv.c computes together (its DSP blocks)
POOL_BLOCK_PIXELS = 1  # tkd_pool.c: one output pixel at a time


@dataclass(frozen=True)
class Step:
    """What the planner needs of one layer."""

    inputs: tuple[int, ...]  # activation tensors read
    output: int  # tensor written
    in_place: bool = False  # the output is an alias of the (first) input's bytes: no code
    # (input tensor, max_shift): the output's bytes may overlap that input's, when this step is
    # the input's last use, with output offset - input offset <= max_shift (see the module doc)
    overwrite: tuple[tuple[int, int], ...] = ()


@dataclass(frozen=True)
class PlanEntry:
    """One activation tensor in the arena."""

    tensor: int
    root: int  # the tensor whose bytes it uses (itself, or the tensor a RESHAPE aliases)
    offset: int  # bytes from the start of the arena
    nbytes: int  # this tensor's size (<= its root's slot)
    first: int  # index of the first step alive (of the root)
    last: int  # index of the last step alive (of the root)
    # the roots whose dying bytes this root's producer writes over (Step.overwrite)
    overwrites: tuple[int, ...] = ()

    @property
    def end(self) -> int:
        return self.offset + self.nbytes

    def overlaps_in_time(self, other: PlanEntry) -> bool:
        return not (self.last < other.first or other.last < self.first)

    def may_share_bytes(self, other: PlanEntry) -> bool:
        """May these two tensors' bytes overlap? Aliases of one root, tensors never alive at the
        same step, and an output written over the input its producer consumes."""
        return (
            self.root == other.root
            or not self.overlaps_in_time(other)
            or other.root in self.overwrites
            or self.root in other.overwrites
        )


@dataclass
class ArenaPlan:
    size: int  # bytes of the arena
    entries: list[PlanEntry]  # every tensor the steps touch, by tensor index
    offsets: dict[int, int]  # tensor -> offset
    aliased_steps: set[int]  # steps whose output is their input's bytes: no code
    input_offset: int  # where the caller writes the model's input
    output_offset: int  # where the caller reads the model's output

    def location(self, tensor: int) -> str:
        """The tensor's address as a C expression: arena or arena + N."""
        off = self.offsets[tensor]
        return f"arena + {off}" if off else "arena"


def _align(n: int, a: int) -> int:
    return (n + a - 1) // a * a


def window_max_shift(
    in_hwc: tuple[int, int, int],
    out_hwc: tuple[int, int, int],
    stride: tuple[int, int],
    pad: tuple[int, int],
    batches: int = 1,
    block: int = CONV_BLOCK_PIXELS,
) -> int:
    """The largest output offset - input offset (a multiple of ARENA_ALIGN, usually negative:
    the output starts before the input) at which a windowed NHWC kernel may write its output
    over its input.

    What tkd_conv.c (every path: the reference loop, the 1/2/4-pixel blocks, direct or
    gathered columns; block = 4) and tkd_pool.c (block = 1) do: output pixels in raster order,
    in blocks of at most `block` consecutive pixels; while computing a block they read only the
    receptive fields of its pixels and write only their outputs, in any interleaving (a 1x1
    conv writes some channels of a pixel, then reads that pixel's input again for the next
    channels). A pixel's receptive field starts at input byte
    (max(oy*sh - ph, 0) * in_w + max(ox*sw - pw, 0)) * in_c or later (dilation, groups, a
    pool's channel and taps outside the image only move reads later). So writing the output at
    input offset + shift is safe when, for every block start q, the block's last output byte
    lands before the lowest input byte that block or any later one reads:
    (q + block) * out_c - 1 + shift < min_{p >= q} first_read(p)."""
    ih, iw, ic = in_hwc
    oh, ow, oc = out_hwc
    sh, sw = stride
    ph, pw = pad
    firsts = []
    for b in range(batches):
        for oy in range(oh):
            row = b * ih * iw + min(max(oy * sh - ph, 0), ih) * iw
            for ox in range(ow):
                firsts.append((row + min(max(ox * sw - pw, 0), iw)) * ic)
    n = len(firsts)
    shift = None
    suffix_min = None
    for q in range(n - 1, -1, -1):
        suffix_min = firsts[q] if suffix_min is None else min(suffix_min, firsts[q])
        bound = suffix_min - min(q + block, n) * oc
        shift = bound if shift is None else min(shift, bound)
    if shift is None:
        return -(1 << 40)
    return shift // ARENA_ALIGN * ARENA_ALIGN  # floor (towards -inf) to the alignment


def _first_fit(forbidden: list[tuple[int, int]]) -> int:
    """Lowest aligned offset >= 0 outside every open interval (lo, hi) of forbidden offsets."""
    off = 0
    for lo, hi in sorted(forbidden):
        if off <= lo:
            break
        if off < hi:
            off = _align(hi, ARENA_ALIGN)
    return off


def _tightest_fit(size: int, forbidden: list[tuple[int, int]], low: int, high: int) -> int:
    """The aligned offset, negative ones included, outside every forbidden interval that grows
    the extent [low, high) of the roots placed so far the least (ties: nearest to 0). The
    candidates are 0 and the aligned ends of the forbidden intervals: an output may then go
    just below the input it is written over."""
    cands = {0}
    for lo, hi in forbidden:
        cands.add(_align(hi, ARENA_ALIGN))
        cands.add(lo // ARENA_ALIGN * ARENA_ALIGN)
    best = None
    for off in sorted(cands, key=abs):
        if any(lo < off < hi for lo, hi in forbidden):
            continue
        extent = max(high, off + size) - min(low, off)
        if best is None or extent < best[0]:
            best = (extent, off)
    return best[1]


def _place(
    order: Sequence[int],
    size: Mapping[int, int],
    first: Mapping[int, int],
    last: Mapping[int, int],
    shift: Mapping[tuple[int, int], int],
    tight: bool,
) -> tuple[int, dict[int, int]]:
    """Place the roots in `order`, each first fit (offsets >= 0) or, if `tight`, where it grows
    the arena least (negative offsets allowed, all shifted up at the end); (arena, offsets)."""
    slots: dict[int, int] = {}
    low = high = 0
    for r in order:
        s = size[r]
        forbidden = []
        for p, po in slots.items():
            if last[p] < first[r] or first[p] > last[r]:
                continue
            ps = size[p]
            if (p, r) in shift:  # r is written over p (p is the input): r_off - po <= shift
                forbidden.append((max(po - s, po + shift[p, r]), po + ps))
            elif (r, p) in shift:  # p is written over r (r is the input): po - r_off <= shift
                forbidden.append((po - s, min(po + ps, po - shift[r, p])))
            else:
                forbidden.append((po - s, po + ps))
        off = _tightest_fit(s, forbidden, low, high) if tight and slots else _first_fit(forbidden)
        slots[r] = off
        low, high = min(low, off), max(high, off + s)
    return high - low, {r: off - low for r, off in slots.items()}


# Orders tried by plan_arena (roots, by key): the first is TFLM's greedy order (largest first).
_ORDERS: tuple[Callable[[int, dict, dict, dict], tuple], ...] = (
    lambda r, size, first, last: (-size[r], first[r], r),
    lambda r, size, first, last: (-size[r], -first[r], r),
    lambda r, size, first, last: (-size[r] * (last[r] - first[r] + 1), first[r], r),
    lambda r, size, first, last: (first[r] - last[r], -size[r], r),
    lambda r, size, first, last: (first[r], -size[r], r),
    lambda r, size, first, last: (-first[r], -size[r], r),
)


def plan_arena(steps: Sequence[Step], nbytes: Mapping[int, int], model_input: int, model_output: int) -> ArenaPlan:
    group: dict[int, int] = {}
    aliased: set[int] = set()

    def root(t: int) -> int:
        while group.get(t, t) != t:
            t = group[t]
        return t

    for k, s in enumerate(steps):
        if s.in_place and root(s.inputs[0]) != root(s.output):
            group[s.output] = root(s.inputs[0])
            aliased.add(k)
    first: dict[int, int] = {}
    last: dict[int, int] = {}
    size: dict[int, int] = {}
    for k, s in enumerate(steps):
        for t in (*s.inputs, s.output):
            r = root(t)
            first[r] = min(first.get(r, k), k)
            last[r] = max(last.get(r, k), k)
            size[r] = max(size.get(r, 0), nbytes[t])
    if steps:
        first[root(model_input)] = 0  # written by the caller before the first step
        last[root(model_output)] = len(steps) - 1  # read by the caller after the last one

    # (input root, output root) -> max shift, for steps that may write over a dying input
    shift: dict[tuple[int, int], int] = {}
    for k, s in enumerate(steps):
        if k in aliased or not s.overwrite:
            continue
        ro = root(s.output)
        allowed = dict(s.overwrite)
        for ri in {root(t) for t in s.inputs}:
            reads = [t for t in s.inputs if root(t) == ri]
            if ri == ro or last[ri] != k or first[ro] != k or any(t not in allowed for t in reads):
                continue  # alive afterwards, or read through a tensor the step gives no bound for
            shift[ri, ro] = min(allowed[t] for t in reads)

    best: tuple[int, dict[int, int]] | None = None
    for tight in (False, True):
        for key in _ORDERS:
            order = sorted(size, key=lambda r, key=key: key(r, size, first, last))
            arena, slots = _place(order, size, first, last, shift, tight)
            if best is None or arena < best[0]:
                best = (arena, slots)
    arena, slots = best if best else (0, {})

    over: dict[int, tuple[int, ...]] = {}
    for ri, ro in sorted(shift):
        a, b = slots[ri], slots[ro]
        if a < b + size[ro] and b < a + size[ri]:  # placed overlapping: record it
            over[ro] = (*over.get(ro, ()), ri)
    offsets: dict[int, int] = {}
    entries: dict[int, PlanEntry] = {}
    for s in steps:
        for t in (*s.inputs, s.output):
            r = root(t)
            offsets[t] = slots[r]
            entries[t] = PlanEntry(t, r, slots[r], nbytes[t], first[r], last[r], over.get(r, ()))
    return ArenaPlan(
        size=_align(arena, ARENA_SIZE_ALIGN),
        entries=[entries[t] for t in sorted(entries)],
        offsets=offsets,
        aliased_steps=aliased,
        input_offset=offsets.get(model_input, 0),
        output_offset=offsets.get(model_output, 0),
    )
