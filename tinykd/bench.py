"""`tinykd bench`: the runtime benchmark (instructions per MAC, arena, code size) from benchmarks/."""

from __future__ import annotations

import runpy
from pathlib import Path

from .errors import TinykdError


def run_bench(out_dir: str | Path) -> dict:
    """Run benchmarks/runtime_bench.py of this checkout and return its results."""
    script = Path(__file__).resolve().parent.parent / "benchmarks" / "runtime_bench.py"
    if not script.is_file():
        raise TinykdError(
            f"The benchmark script {script} is not there: `tinykd bench` runs from a source checkout "
            "(pip install -e .). Clone the repository and run it there."
        )
    return runpy.run_path(str(script))["run_runtime_bench"](out_dir)
