"""The arena planner (tinykd/firmware/codegen/planner.py) on its own: exact offsets for a small
graph, alignment, the model's input and output in the arena with their lifetimes, RESHAPE
aliasing, outputs written over dying inputs (elementwise exactly in place, windowed kernels
with a lead), and on random graphs: no two tensors alive at the same time share a byte unless
the step allows it, and then only within its bound."""

from __future__ import annotations

import random

import pytest

from tinykd.firmware.codegen.planner import (
    ARENA_ALIGN,
    ArenaPlan,
    PlanEntry,
    Step,
    plan_arena,
    window_max_shift,
)


def _by_tensor(plan: ArenaPlan) -> dict[int, PlanEntry]:
    return {e.tensor: e for e in plan.entries}


def _check_plan(plan: ArenaPlan, steps: list[Step], sizes: dict[int, int], model_input: int, model_output: int):
    """Every tensor placed, aligned, inside the arena; live tensors disjoint unless aliased or
    an allowed overwrite, which then keeps output offset - input offset <= the step's bound."""
    e = _by_tensor(plan)
    assert plan.size % 16 == 0
    touched = {t for s in steps for t in (*s.inputs, s.output)}
    assert set(e) == touched and set(plan.offsets) == touched
    for a in plan.entries:
        assert a.offset % ARENA_ALIGN == 0 and 0 <= a.offset and a.end <= plan.size and a.nbytes == sizes[a.tensor]
        assert plan.offsets[a.tensor] == a.offset and plan.location(a.tensor).startswith("arena")
        assert a.root == a.tensor or plan.offsets[a.root] == a.offset
    assert e[model_input].first == 0 and e[model_output].last == len(steps) - 1
    assert (plan.input_offset, plan.output_offset) == (e[model_input].offset, e[model_output].offset)
    bound = {}
    for s in steps:
        for t, shift in s.overwrite:
            ri, ro = e[t].root, e[s.output].root
            bound[ri, ro] = min(bound.get((ri, ro), shift), shift)
    for i, a in enumerate(plan.entries):
        for b in plan.entries[i + 1 :]:
            if a.root == b.root or not a.overlaps_in_time(b) or a.end <= b.offset or b.end <= a.offset:
                continue
            assert a.may_share_bytes(b), (a, b)
            inp, out = (a, b) if a.root in b.overwrites else (b, a)
            assert inp.root in out.overwrites and inp.last == out.first
            assert out.offset - inp.offset <= bound[inp.root, out.root], (a, b)
    for k, s in enumerate(steps):
        assert (k in plan.aliased_steps) == (s.in_place and e[s.inputs[0]].root == e[s.output].root)


def test_known_graph_exact_offsets():
    # t0 input (40 B) -> t1 (100 B) -> t2 (30 B) -RESHAPE-> t3 ; (t3, t1) -> t4 (60 B) -> t5 output (8 B)
    steps = [Step((0,), 1), Step((1,), 2), Step((2,), 3, in_place=True), Step((3, 1), 4), Step((4,), 5)]
    sizes = {0: 40, 1: 100, 2: 30, 3: 30, 4: 60, 5: 8}
    plan = plan_arena(steps, sizes, model_input=0, model_output=5)
    e = _by_tensor(plan)
    # largest first: t1 at 0 (alive 0..3); t4 (alive 3..4) after it; t0 (alive 0) after t1;
    # t2/t3 (alive 1..3) after t1 and t4 (t0 is dead by then); t5 (alive 4) in t1's bytes
    assert [(t, e[t].offset, e[t].root, e[t].first, e[t].last) for t in range(6)] == [
        (0, 100, 0, 0, 0),
        (1, 0, 1, 0, 3),
        (2, 160, 2, 1, 3),
        (3, 160, 2, 1, 3),
        (4, 100, 4, 3, 4),
        (5, 0, 5, 4, 4),
    ]
    assert plan.size == 192  # 190 rounded up to 16
    assert plan.aliased_steps == {2}
    assert (plan.input_offset, plan.output_offset) == (100, 0)
    assert plan.location(1) == "arena" and plan.location(4) == "arena + 100"
    _check_plan(plan, steps, sizes, 0, 5)


def test_input_dies_after_its_last_reader_and_output_survives_to_the_end():
    # t0 input -> t1 -> t2 -> t3 -> t4 output; t0 read again by step 1: alive 0..1
    steps = [Step((0,), 1), Step((1, 0), 2), Step((2,), 3), Step((3,), 4)]
    sizes = {0: 64, 1: 64, 2: 64, 3: 64, 4: 16}
    plan = plan_arena(steps, sizes, 0, 4)
    e = _by_tensor(plan)
    assert (e[0].first, e[0].last, e[4].first, e[4].last) == (0, 1, 3, 3)
    assert plan.size == 192  # 3 x 64 at step 1 (t0, t1, t2); t3 and the output reuse them
    assert e[3].offset in (e[0].offset, e[1].offset)
    _check_plan(plan, steps, sizes, 0, 4)
    # an output that is read again inside the model is still there at the end
    steps = [Step((0,), 1), Step((1,), 2), Step((1, 2), 3), Step((3,), 4)]
    plan = plan_arena(steps, {0: 8, 1: 32, 2: 32, 3: 32, 4: 32}, 0, 1)
    e = _by_tensor(plan)
    assert (e[1].first, e[1].last) == (0, 3)
    assert all(e[t].end <= e[1].offset or e[1].end <= e[t].offset for t in (2, 3, 4))


def test_offsets_are_aligned_and_arena_is_rounded():
    steps = [Step((0,), 1), Step((1,), 2), Step((1, 2), 3), Step((3,), 4)]
    sizes = {0: 1, 1: 5, 2: 3, 3: 7, 4: 1}
    plan = plan_arena(steps, sizes, 0, 4)
    assert all(x.offset % ARENA_ALIGN == 0 for x in plan.entries)
    assert plan.size == 32  # 5, 3 and 7 bytes alive at step 2, 4-aligned: 19, rounded to 16
    _check_plan(plan, steps, sizes, 0, 4)


def test_tensors_with_disjoint_lifetimes_share_bytes():
    # a chain: each tensor dies when the next-but-one is written, so two slots suffice
    steps = [Step((k,), k + 1) for k in range(6)]
    plan = plan_arena(steps, {k: 64 for k in range(7)}, 0, 6)
    assert plan.size == 128
    assert {e.offset for e in plan.entries} == {0, 64}


def test_reshape_aliases_the_model_input_and_output():
    # a RESHAPE of the model input reads the input's bytes; one to the model output is no copy
    plan = plan_arena([Step((0,), 1, in_place=True), Step((1,), 2)], {0: 12, 1: 12, 2: 3}, 0, 2)
    assert plan.aliased_steps == {0} and plan.offsets[1] == plan.input_offset
    plan = plan_arena([Step((0,), 1), Step((1,), 2, in_place=True)], {0: 4, 1: 12, 2: 12}, 0, 2)
    assert plan.aliased_steps == {1} and plan.offsets[1] == plan.output_offset
    e = _by_tensor(plan)
    assert e[1].root == e[2].root == 1 and e[1].last == 1


def test_chained_reshapes_share_one_root():
    steps = [Step((0,), 1), Step((1,), 2, True), Step((2,), 3, True), Step((3, 1), 4)]
    plan = plan_arena(steps, {0: 4, 1: 24, 2: 24, 3: 24, 4: 4}, 0, 4)
    e = _by_tensor(plan)
    assert e[1].root == e[2].root == e[3].root == 1
    assert e[1].offset == e[2].offset == e[3].offset
    assert plan.aliased_steps == {1, 2}


def test_elementwise_step_writes_exactly_over_its_dying_input():
    # t0 input -> t1 (96) ; ADD(t1, t2 broadcast) -> t3 (96) ; (t3, t0) -> t4 output (8)
    steps = [Step((0,), 1), Step((0,), 2), Step((1, 2), 3, overwrite=((1, 0),)), Step((3, 0), 4)]
    sizes = {0: 96, 1: 96, 2: 8, 3: 96, 4: 8}
    plan = plan_arena(steps, sizes, 0, 4)
    e = _by_tensor(plan)
    assert e[3].offset == e[1].offset and e[3].overwrites == (1,)
    assert plan.size == 208  # t0, t1 and t2 (200 B) at step 2; the ADD needs no more (else 304)
    _check_plan(plan, steps, sizes, 0, 4)
    # the same ADD when its input is read again later: no overwriting
    steps = [Step((0,), 1), Step((0,), 2), Step((1, 2), 3, overwrite=((1, 0),)), Step((3, 0, 1), 4)]
    plan = plan_arena(steps, sizes, 0, 4)
    e = _by_tensor(plan)
    assert e[3].overwrites == () and (e[3].end <= e[1].offset or e[1].end <= e[3].offset)
    _check_plan(plan, steps, sizes, 0, 4)
    # an input read through a tensor the step gives no bound for (here both ADD inputs are
    # aliases of one root, only one is declared): no overwriting either
    steps = [Step((0,), 1), Step((1,), 2, True), Step((1, 2), 3, overwrite=((1, 0),)), Step((3,), 4)]
    plan = plan_arena(steps, {0: 8, 1: 64, 2: 64, 3: 64, 4: 8}, 0, 4)
    assert _by_tensor(plan)[3].overwrites == ()


def test_window_max_shift():
    # a 1x1 conv that keeps the width is NOT safe exactly in place: a 4-pixel block's output
    # channels are written while the block's input pixels are read again; a lead of 4 pixels is
    assert window_max_shift((8, 8, 16), (8, 8, 16), (1, 1), (0, 0)) == -4 * 16
    assert window_max_shift((8, 8, 16), (8, 8, 8), (1, 1), (0, 0)) == -32  # first block: 4 x 8 out bytes
    # 3x3 SAME stride 1, 32x32x16 (ResNet-8): the row above and one pixel to the left are still
    # needed, plus the block of 4: (32 + 1 + 4) pixels x 16 bytes
    assert window_max_shift((32, 32, 16), (32, 32, 16), (1, 1), (1, 1)) == -37 * 16
    # a 2x2 stride-2 pool, one pixel at a time: one output pixel's bytes ahead
    assert window_max_shift((28, 28, 8), (14, 14, 8), (2, 2), (0, 0), block=1) == -8
    # widening (1 -> 8 channels): the output must start far before the input
    s = window_max_shift((28, 28, 1), (28, 28, 8), (1, 1), (1, 1))
    assert s % ARENA_ALIGN == 0 and s <= -(28 * 28 * 8 - 28 * 28)


def test_windowed_step_writes_its_output_with_a_lead():
    # ResNet-8's first stack: x0 -> conv a -> conv b ; ADD(x0, b) -> y ; y -> out
    n = 32 * 32 * 16
    shift = window_max_shift((32, 32, 16), (32, 32, 16), (1, 1), (1, 1))
    steps = [
        Step((0,), 1, overwrite=((0, -(1 << 20)),)),
        Step((1,), 2, overwrite=((1, shift),)),
        Step((2,), 3, overwrite=((2, shift),)),
        Step((1, 3), 4, overwrite=((1, 0), (3, 0))),
        Step((4,), 5),
    ]
    sizes = {0: 3072, 1: n, 2: n, 3: n, 4: n, 5: 12}
    plan = plan_arena(steps, sizes, 0, 5)
    e = _by_tensor(plan)
    assert e[3].overwrites == (2,) and e[3].offset - e[2].offset == shift
    assert plan.size == 2 * n - shift  # x0 + (a and b, b 592 bytes ahead of a), not 3 x 16 384
    _check_plan(plan, steps, sizes, 0, 5)


@pytest.mark.parametrize("seed", range(48))
def test_random_graphs_never_share_live_bytes(seed):
    rng = random.Random(seed)
    n = rng.randint(2, 16)
    sizes = {0: rng.randint(1, 300)}
    steps = []
    for k in range(n):
        out = k + 1
        reads = sorted({k} | {rng.randint(0, k) for _ in range(rng.randint(0, 2))})
        kind = rng.random()
        if kind < 0.2:  # RESHAPE
            steps.append(Step((k,), out, True))
            sizes[out] = sizes[k]
            continue
        sizes[out] = rng.randint(1, 300)
        overwrite = ()
        if kind < 0.45:  # elementwise: the same-size inputs
            sizes[out] = sizes[k]
            overwrite = tuple((t, 0) for t in reads if sizes[t] == sizes[out])
        elif kind < 0.7:  # windowed: a random lead
            overwrite = ((k, -4 * rng.randint(0, 40)),)
        steps.append(Step(tuple(reads), out, False, overwrite))
    plan = plan_arena(steps, sizes, 0, n)
    _check_plan(plan, steps, sizes, 0, n)
    # never worse than no reuse at all, and every tensor a step touches has a location
    assert plan.size <= sum(-(-s // 4) * 4 for s in sizes.values()) + 16
