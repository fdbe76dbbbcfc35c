"""`ModelSources`: the generated model.c / model.h and the facts about them that the rest of
tinykd needs (name, hash, input/output sizes and quantisation, arena, weights). Project
generation takes it as is (no reading model.h back); `generate_model_sources` also writes it
as model.json beside the C files so a folder of generated sources carries its facts."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from tinykd import fileio
from tinykd.errors import TinykdError

from .planner import PlanEntry

FACTS_FILE = "model.json"
FACTS_VERSION = 1


@dataclass
class LayerFacts:
    """One layer of model.c: its index, operator, summary line, MACs, and whether it runs code
    (an in-place RESHAPE does not). The layers that run code are the ones
    tkd_model_invoke_profile marks, in order."""

    index: int
    op: str
    summary: str
    macs: int
    runs_code: bool


@dataclass
class ModelSources:
    model_c: Path
    model_h: Path
    name: str
    sha256: str
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    input_scale: float
    input_zero_point: int
    output_scale: float
    output_zero_point: int
    arena_bytes: int  # the model's input and output included (they live in the arena)
    activations_total_bytes: int  # sum of all non-constant tensors, incl. input and output
    weight_bytes: int  # weights + biases as stored (int8 / int32)
    param_count: int
    macs: int
    ops: list[str] = field(default_factory=list)
    arena_plan: list[PlanEntry] = field(default_factory=list)  # every tensor, input and output included
    notes: list[str] = field(default_factory=list)
    layers: list[LayerFacts] = field(default_factory=list)
    # where the input and output live in the arena (None: sources of an older tinykd, whose
    # input and output were the caller's buffers outside the arena)
    input_offset: int | None = None
    output_offset: int | None = None

    @property
    def profiled_layers(self) -> list[LayerFacts]:
        """The layers tkd_model_invoke_profile marks (TKD_MODEL_PROFILE_LAYERS of them), in order."""
        return [L for L in self.layers if L.runs_code]

    @property
    def input_bytes(self) -> int:
        """int8 elements of the single input tensor (TKD_MODEL_INPUT_BYTES)."""
        n = 1
        for d in self.input_shape:
            n *= d
        return n

    @property
    def output_bytes(self) -> int:
        n = 1
        for d in self.output_shape:
            n *= d
        return n

    @property
    def directory(self) -> Path:
        return self.model_c.parent

    def write_facts(self) -> Path:
        """Write model.json beside model.c (paths relative to it)."""
        d = asdict(self)
        d["model_c"], d["model_h"] = self.model_c.name, self.model_h.name
        d["version"] = FACTS_VERSION
        path = self.directory / FACTS_FILE
        fileio.write_text(path, json.dumps(d, indent=1) + "\n")
        return path

    @classmethod
    def from_dir(cls, directory: str | Path) -> ModelSources | None:
        """The facts written by `generate_model_sources` into `directory`, or None when the
        folder has none (hand-written model sources that only follow the model.h contract)."""
        directory = Path(directory)
        path = directory / FACTS_FILE
        if not path.is_file():
            return None
        try:
            d = json.loads(path.read_text())
            if d.pop("version", None) != FACTS_VERSION:
                raise ValueError("unknown version")
            d["model_c"], d["model_h"] = directory / d["model_c"], directory / d["model_h"]
            d["input_shape"], d["output_shape"] = tuple(d["input_shape"]), tuple(d["output_shape"])
            plan = d["arena_plan"]
            d["arena_plan"] = [PlanEntry(**(e | {"overwrites": tuple(e.get("overwrites", ()))})) for e in plan]
            d["layers"] = [LayerFacts(**e) for e in d.get("layers", [])]
            return cls(**d)
        except (OSError, ValueError, TypeError, KeyError) as e:
            raise TinykdError(
                f"{path} is not a model facts file this tinykd can read ({e}). Regenerate the model "
                "sources from the .tflite with `tinykd firmware --model MODEL.tflite` (or delete "
                "model.json if model.c and model.h are hand-written)."
            ) from e
