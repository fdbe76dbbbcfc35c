"""From an int8 .tflite to a compiled firmware that fits the board: codegen, project, compile."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..boards import Board, load_board
from ..fileio import write_json
from .codegen import ModelSources, generate_model_sources
from .project import BuildResult, Project, build_project, generate_project


@dataclass
class Firmware:
    board: Board
    sources: ModelSources
    project: Project
    build: BuildResult

    def summary(self) -> dict:
        s, b = self.sources, self.build
        return {
            "board": self.board.name,
            "device_frontend": self.project.device_frontend,
            "model_sha256": s.sha256,
            "ops": s.ops,
            "params": s.param_count,
            "macs": s.macs,
            "weight_bytes": s.weight_bytes,
            "arena_bytes": s.arena_bytes,
            "activations_total_bytes": s.activations_total_bytes,
            "text": b.text,
            "data": b.data,
            "bss": b.bss,
            "flash_used": b.flash_used,
            "flash_budget": b.flash_budget,
            "ram_used": b.ram_used,
            "ram_budget": b.ram_budget,
            "build_method": b.method,
            "elf": str(b.elf) if b.elf else None,
            "notes": list(s.notes) + list(b.notes),
        }


def build_firmware(
    tflite_path: str | Path, board: str | Board, out_dir: str | Path, device_frontend: str | None = None
) -> Firmware:
    """Generate model.c/.h, the board's project around them, compile, and check the fit.

    device_frontend: None (the host sends the model's input) or the feature extractor the
    device runs on raw input, e.g. "kws-mfcc" (see tinykd/firmware/frontends.py).

    Raises TinykdError for an unsupported model, a model that does not take the frontend's
    features, or a missing toolchain; FirmwareTooLarge for a model that does not fit the board
    (with both sizes and what to try).
    """
    board = load_board(board)
    out_dir = Path(out_dir)
    sources = generate_model_sources(tflite_path, out_dir / "model")
    project = generate_project(board, sources, out_dir, device_frontend=device_frontend)
    result = build_project(project)
    firmware = Firmware(board, sources, project, result)
    write_json(out_dir / "firmware.json", firmware.summary())
    return firmware
