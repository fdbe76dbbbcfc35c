"""Generate model.c / model.h for the tinykd int8 runtime (firmware/runtime) from a .tflite.

`generate_model_sources(tflite_path, out_dir)` writes two files that read like hand-written C:
weights and biases as aligned `static const` arrays, every requantisation constant computed
here (the way TFLite / TFLite Micro compute them, so results are bit-exact), one static
function per layer calling the runtime, and a static arena whose offsets come from tensor
lifetimes (greedy placement in several orders; RESHAPE is an alias, not a copy). Beside
them, model.json holds the returned `ModelSources` facts.

The model's single input and output live in the arena like every other tensor (the input's
bytes are reused once its readers are done; layers may write their output over the input they
consume where the kernel allows it, see planner.py): the caller writes the input at
`tkd_model_input()` and reads the output at `tkd_model_output()`.

The device application depends on the model.h contract (see render.render_header):
TKD_MODEL_* macros, `tkd_model_hash`, `tkd_model_input()`, `tkd_model_output()` and
`int tkd_model_invoke(const int8_t *input, int8_t *output)` (NULL, NULL: in place; other
buffers are copied in and out).

A float-input model whose input goes straight into QUANTIZE, or whose output comes straight
from DEQUANTIZE, is accepted: those boundary ops are left to the caller (the contract's int8
input/output are the QUANTIZE output and DEQUANTIZE input; use TKD_MODEL_INPUT_SCALE/ZERO_POINT
to quantise). Every other tensor must be int8 (int32 for biases).

Modules, in the order the data flows:
  quant.py     TFLite's quantisation arithmetic (multipliers, activation ranges, padding)
  graph.py     Graph: the model checked (ops, types, one input/output), boundary ops peeled
  ops/         the emitter registry (EMITTERS, SUPPORTED_OPS): one emitter per operator,
               each returning a Layer (emit.py) with its constants and C body
  planner.py   plan_arena: Steps -> ArenaPlan (PlanEntry per arena tensor, C locations)
  sources.py   ModelSources: the facts handed to project generation (and model.json)
  render.py    the text of model.h and model.c
  generate.py  generate_model_sources, tying them together
"""

from __future__ import annotations

from .generate import generate_model_sources
from .graph import Graph
from .ops import EMITTERS, SUPPORTED_OPS
from .planner import ARENA_ALIGN, ArenaPlan, PlanEntry, Step, plan_arena
from .quant import (
    ADD_LEFT_SHIFT,
    activation_range,
    out_size,
    pad_before,
    quantize_multiplier,
    round_half_away,
    short_requant,
)
from .sources import ModelSources

__all__ = [
    "ADD_LEFT_SHIFT",
    "ARENA_ALIGN",
    "EMITTERS",
    "SUPPORTED_OPS",
    "ArenaPlan",
    "Graph",
    "ModelSources",
    "PlanEntry",
    "Step",
    "activation_range",
    "generate_model_sources",
    "out_size",
    "pad_before",
    "plan_arena",
    "quantize_multiplier",
    "round_half_away",
    "short_requant",
]
