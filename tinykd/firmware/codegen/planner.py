"""The static arena: where every activation tensor lives while the layers run.

Input: the layers as `Step`s (tensors read, tensor written, whether the output may be the
input's bytes), each tensor's size, and which tensors are the model's input and output.
Output: an `ArenaPlan` (arena size, one `PlanEntry` per arena tensor, C locations).

Rules:
- the model's input and output stay in the caller's buffers ("input", "output"), never in
  the arena;
- an in-place step (RESHAPE) makes its output an alias of its input: same root, same bytes,
  no code; except when the output is the model output (that one is a copy into the caller's
  buffer). A reshape of the model input reads the caller's input buffer;
- a root's lifetime runs from the first to the last step that reads or writes it (or any of
  its aliases); roots are placed largest first (ties: earliest first, then tensor index), each
  at the lowest ARENA_ALIGN-aligned offset where it overlaps no placed root alive at the same
  time (first fit);
- the arena's size is rounded up to 16 bytes (it is declared TKD_ALIGN(16)).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

ARENA_ALIGN = 4  # byte alignment of every tensor inside the arena
ARENA_SIZE_ALIGN = 16  # the arena's own size and alignment


@dataclass(frozen=True)
class Step:
    """What the planner needs of one layer."""

    inputs: tuple[int, ...]  # activation tensors read
    output: int  # tensor written
    in_place: bool = False  # the output may share the (first) input's bytes


@dataclass(frozen=True)
class PlanEntry:
    """One activation tensor in the arena."""

    tensor: int
    root: int  # the tensor whose bytes it uses (itself, or the tensor a RESHAPE aliases)
    offset: int  # bytes from the start of the arena
    nbytes: int  # this tensor's size (<= its root's slot)
    first: int  # index of the first step alive (of the root)
    last: int  # index of the last step alive (of the root)

    @property
    def end(self) -> int:
        return self.offset + self.nbytes

    def overlaps_in_time(self, other: PlanEntry) -> bool:
        return not (self.last < other.first or other.last < self.first)


@dataclass
class ArenaPlan:
    size: int  # bytes of the arena (0: no arena needed)
    entries: list[PlanEntry]  # arena tensors, by tensor index
    buffers: dict[int, str]  # every tensor the steps touch -> "input" | "output" | "arena"
    offsets: dict[int, int]  # arena tensors -> offset
    aliased_steps: set[int]  # steps whose output is their input's bytes: no code

    def location(self, tensor: int) -> str:
        """The tensor's address as a C expression: input, output, arena or arena + N."""
        buf = self.buffers[tensor]
        if buf != "arena":
            return buf
        off = self.offsets[tensor]
        return f"arena + {off}" if off else "arena"


def _align(n: int, a: int) -> int:
    return (n + a - 1) // a * a


def plan_arena(steps: Sequence[Step], nbytes: Mapping[int, int], model_input: int, model_output: int) -> ArenaPlan:
    group: dict[int, int] = {}
    aliased: set[int] = set()

    def root(t: int) -> int:
        while group.get(t, t) != t:
            t = group[t]
        return t

    for k, s in enumerate(steps):
        if s.in_place and s.output != model_output:
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

    slots: dict[int, int] = {}
    placed: list[tuple[int, int, int, int]] = []  # offset, size, first, last
    arena = 0
    order = sorted((r for r in size if r not in (model_input, model_output)), key=lambda r: (-size[r], first[r], r))
    for r in order:
        busy = sorted((o, n) for o, n, f, e in placed if not (e < first[r] or f > last[r]))
        off = 0
        for o, n in busy:
            if off + size[r] <= o:
                break
            off = max(off, _align(o + n, ARENA_ALIGN))
        placed.append((off, size[r], first[r], last[r]))
        slots[r] = off
        arena = max(arena, off + size[r])

    buffers: dict[int, str] = {}
    offsets: dict[int, int] = {}
    entries: dict[int, PlanEntry] = {}
    for s in steps:
        for t in (*s.inputs, s.output):
            r = root(t)
            if r == model_input:
                buffers[t] = "input"
            elif t == model_output or r == model_output:  # a RESHAPE of the output reads its buffer
                buffers[t] = "output"
            else:
                buffers[t] = "arena"
                offsets[t] = slots[r]
                entries[t] = PlanEntry(t, r, slots[r], nbytes[t], first[r], last[r])
    return ArenaPlan(
        size=_align(arena, ARENA_SIZE_ALIGN),
        entries=[entries[t] for t in sorted(entries)],
        buffers=buffers,
        offsets=offsets,
        aliased_steps=aliased,
    )
