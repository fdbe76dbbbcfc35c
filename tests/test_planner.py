"""The arena planner (tinykd/firmware/codegen/planner.py) on its own: exact offsets for a small
graph, alignment, in-place RESHAPE aliasing, the model's input and output kept out of the
arena, and on random graphs: no two tensors alive at the same time share a byte."""

from __future__ import annotations

import random

import pytest

from tinykd.firmware.codegen.planner import ARENA_ALIGN, ArenaPlan, PlanEntry, Step, plan_arena


def _by_tensor(plan: ArenaPlan) -> dict[int, PlanEntry]:
    return {e.tensor: e for e in plan.entries}


def test_known_graph_exact_offsets():
    # t0 input -> t1 (100 B) -> t2 (30 B) -RESHAPE-> t3 ; (t3, t1) -> t4 (60 B) -> t5 output
    steps = [Step((0,), 1), Step((1,), 2), Step((2,), 3, in_place=True), Step((3, 1), 4), Step((4,), 5)]
    sizes = {0: 10, 1: 100, 2: 30, 3: 30, 4: 60, 5: 8}
    plan = plan_arena(steps, sizes, model_input=0, model_output=5)
    e = _by_tensor(plan)
    # largest first: t1 at 0 (alive 0..3); t4 (alive 3..4) after it; t2/t3 (alive 1..3) after both
    assert [(t, e[t].offset, e[t].root, e[t].first, e[t].last) for t in (1, 2, 3, 4)] == [
        (1, 0, 1, 0, 3),
        (2, 160, 2, 1, 3),
        (3, 160, 2, 1, 3),
        (4, 100, 4, 3, 4),
    ]
    assert plan.size == 192  # 190 rounded up to 16
    assert plan.aliased_steps == {2}
    assert plan.location(0) == "input" and plan.location(5) == "output"
    assert plan.location(1) == "arena" and plan.location(4) == "arena + 100"
    assert sorted(plan.offsets) == [1, 2, 3, 4] and 0 not in e and 5 not in e


def test_offsets_are_aligned_and_arena_is_rounded():
    steps = [Step((0,), 1), Step((1,), 2), Step((1, 2), 3), Step((3,), 4)]
    sizes = {0: 1, 1: 5, 2: 3, 3: 7, 4: 1}
    plan = plan_arena(steps, sizes, 0, 4)
    e = _by_tensor(plan)
    assert (e[3].offset, e[1].offset, e[2].offset) == (0, 8, 16)
    assert all(x.offset % ARENA_ALIGN == 0 for x in plan.entries)
    assert plan.size == 32


def test_tensors_with_disjoint_lifetimes_share_bytes():
    # a chain: each tensor dies when the next-but-one is written, so two slots suffice
    steps = [Step((k,), k + 1) for k in range(6)]
    plan = plan_arena(steps, {k: 64 for k in range(7)}, 0, 6)
    assert plan.size == 128
    assert {e.offset for e in plan.entries} == {0, 64}


def test_reshape_of_model_output_is_a_copy_and_of_model_input_reads_the_input():
    plan = plan_arena([Step((0,), 1), Step((1,), 2, in_place=True)], {0: 4, 1: 12, 2: 12}, 0, 2)
    assert plan.aliased_steps == set()  # the output buffer is the caller's: copied into it
    assert plan.location(1) == "arena" and plan.location(2) == "output"
    plan = plan_arena([Step((0,), 1, in_place=True), Step((1,), 2)], {0: 12, 1: 12, 2: 3}, 0, 2)
    assert plan.aliased_steps == {0} and plan.location(1) == "input"
    assert plan.entries == [] and plan.size == 0


def test_chained_reshapes_share_one_root():
    steps = [Step((0,), 1), Step((1,), 2, True), Step((2,), 3, True), Step((3, 1), 4)]
    plan = plan_arena(steps, {0: 4, 1: 24, 2: 24, 3: 24, 4: 4}, 0, 4)
    e = _by_tensor(plan)
    assert e[1].root == e[2].root == e[3].root == 1
    assert e[1].offset == e[2].offset == e[3].offset
    assert plan.aliased_steps == {1, 2}


@pytest.mark.parametrize("seed", range(40))
def test_random_graphs_never_share_live_bytes(seed):
    rng = random.Random(seed)
    n = rng.randint(2, 14)
    sizes = {0: rng.randint(1, 300)}
    steps = []
    for k in range(n):
        out = k + 1
        reads = sorted({k} | {rng.randint(0, k) for _ in range(rng.randint(0, 2))})
        in_place = rng.random() < 0.25
        if in_place:
            reads = [k]
        sizes[out] = sizes[k] if in_place else rng.randint(1, 300)
        steps.append(Step(tuple(reads), out, in_place))
    plan = plan_arena(steps, sizes, 0, n)
    assert plan.size % 16 == 0
    for a in plan.entries:
        assert a.offset % ARENA_ALIGN == 0 and a.end <= plan.size and a.nbytes == sizes[a.tensor]
        assert plan.offsets[a.tensor] == a.offset
        assert a.root == a.tensor or plan.offsets[a.root] == a.offset
    for i, a in enumerate(plan.entries):
        for b in plan.entries[i + 1 :]:
            if a.root != b.root and a.overlaps_in_time(b):
                assert a.end <= b.offset or b.end <= a.offset, (seed, a, b)
    # every tensor a step touches has a location; only in-place steps are skipped
    for k, s in enumerate(steps):
        for t in (*s.inputs, s.output):
            assert plan.location(t)
        assert (k in plan.aliased_steps) == (s.in_place and s.output != n)
