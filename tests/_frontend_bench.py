"""firmware/frontend/bench/frontend_cost.py (a script beside the C it measures, outside the
package) as a module: its builds and QEMU runs serve the frontend's device tests too."""

from __future__ import annotations

import functools
import importlib.util
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "firmware" / "frontend" / "bench" / "frontend_cost.py"


@functools.cache
def frontend_cost():
    spec = importlib.util.spec_from_file_location("frontend_cost", BENCH)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # its dataclass looks its module up
    spec.loader.exec_module(mod)
    return mod
