"""`generate_model_sources`: .tflite -> checked graph -> one Layer per operator (the emitter
registry) -> arena plan -> ModelSources -> model.h, model.c and model.json."""

from __future__ import annotations

from pathlib import Path

from tinykd import fileio
from tinykd.errors import TinykdError
from tinykd.firmware.tflite_model import read_tflite

from .emit import EmitContext, Layer
from .graph import Graph
from .ops import EMITTERS
from .planner import CONV_BLOCK_PIXELS, POOL_BLOCK_PIXELS, Step, plan_arena, window_max_shift
from .quant import pad_before
from .render import render_header, render_source
from .sources import LayerFacts, ModelSources


def generate_model_sources(tflite_path: str | Path, out_dir: str | Path) -> ModelSources:
    """Write model.h, model.c (and model.json, their facts) for the int8 model in `tflite_path`
    into `out_dir`; return the facts."""
    tflite_path = Path(tflite_path)
    out_dir = Path(out_dir)
    m = read_tflite(tflite_path)
    g = Graph(m)
    ctx = EmitContext(g)
    layers = [EMITTERS[op.opcode](ctx, k, op, f"layer_{k:02d}_{op.opcode.lower()}") for k, op in enumerate(g.ops)]
    if g.output not in {L.output for L in layers}:
        raise TinykdError(
            f"The output tensor of {tflite_path.name} is not computed by any operator. Convert the model again."
        )
    acts = {t for L in layers for t in (*L.inputs, L.output)}
    plan = plan_arena(
        [Step(tuple(L.inputs), L.output, L.in_place, _overwrite(g, L)) for L in layers],
        {t: g.tensor(t).nbytes for t in acts},
        g.input,
        g.output,
    )
    in_t, out_t = g.tensor(g.input), g.tensor(g.output)
    src = ModelSources(
        model_c=out_dir / "model.c",
        model_h=out_dir / "model.h",
        name=tflite_path.stem,
        sha256=m.sha256,
        input_shape=tuple(in_t.shape),
        output_shape=tuple(out_t.shape),
        input_scale=in_t.scale[0],
        input_zero_point=in_t.zero_point[0],
        output_scale=out_t.scale[0],
        output_zero_point=out_t.zero_point[0],
        arena_bytes=plan.size,
        activations_total_bytes=sum(g.tensor(t).nbytes for t in acts),
        weight_bytes=ctx.weight_bytes,
        param_count=ctx.param_count,
        macs=sum(L.macs for L in layers),
        ops=[L.op.opcode for L in layers],
        arena_plan=plan.entries,
        notes=list(g.notes),
        input_offset=plan.input_offset,
        output_offset=plan.output_offset,
        layers=[LayerFacts(L.index, L.op.opcode, L.summary, L.macs, L.index not in plan.aliased_steps) for L in layers],
    )
    shapes = {t: tuple(g.tensor(t).shape) for t in acts}
    fileio.write_text(src.model_h, render_header(src))
    fileio.write_text(src.model_c, render_source(src, layers, plan, ctx, shapes))
    src.write_facts()
    return src


# Kernels that read input element i before writing output element i and never read an
# earlier input element afterwards (tkd_add.c: both the tabulated and the broadcasting loop
# walk the output in order, a full-size input at the output's index; tkd_requantize_s8;
# tkd_softmax_s8: per row, max and sum first, then out[c] after in[c]): the output may be
# written exactly over such an input (max shift 0).
_ELEMENTWISE = {"ADD", "QUANTIZE", "SOFTMAX"}


def _overwrite(g: Graph, L: Layer) -> tuple[tuple[int, int], ...]:
    """The Step.overwrite pairs of a layer: which inputs its kernel may write its output over,
    and how far (see planner.py). None for the others (depthwise, FC: not analysed, or their
    kernels read inputs after writing outputs at those places)."""
    y = g.tensor(L.output)
    op = L.op.opcode
    if op in _ELEMENTWISE:
        return tuple((t, 0) for t in dict.fromkeys(L.inputs) if g.tensor(t).nbytes == y.nbytes)
    if op not in ("CONV_2D", "AVERAGE_POOL_2D", "MAX_POOL_2D"):
        return ()
    # the same padding as the emitters (ops/conv.py, ops/pool.py)
    x = g.tensor(L.inputs[0])
    _, ih, iw, ic = x.shape
    n, oh, ow, oc = y.shape
    o = L.op.options
    sh, sw = int(o.get("StrideH", 1)), int(o.get("StrideW", 1))
    if op == "CONV_2D":
        kh, kw = g.tensor(L.op.inputs[1]).shape[1:3]
        dh, dw = int(o.get("DilationHFactor", 1)), int(o.get("DilationWFactor", 1))
        block = CONV_BLOCK_PIXELS
    else:
        kh, kw = int(o.get("FilterHeight", 1)), int(o.get("FilterWidth", 1))
        dh = dw = 1
        block = POOL_BLOCK_PIXELS
    pad = (pad_before(sh, dh, ih, kh, oh), pad_before(sw, dw, iw, kw, ow))
    return ((x.index, window_max_shift((ih, iw, ic), (oh, ow, oc), (sh, sw), pad, n, block)),)
