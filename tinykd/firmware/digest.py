"""The digest of everything that turns a .tflite into a firmware: the C under firmware/ (runtime,
app, ports, frontend) and the Python that generates and builds it (this package). A build's
firmware stage, sweeps and fits key their cached firmware sizes on it, so a change to either
rebuilds the firmware."""

from __future__ import annotations

import hashlib
from pathlib import Path

from ..resources import firmware_dir

_FIRMWARE_SUFFIXES = {".c", ".h", ".cpp", ".ino", ".in", ".ld"}


def _files() -> list[tuple[str, Path]]:
    generator = Path(__file__).resolve().parent
    c_sources = [
        (f"firmware/{p.relative_to(firmware_dir()).as_posix()}", p)
        for p in firmware_dir().rglob("*")
        if p.is_file() and p.suffix in _FIRMWARE_SUFFIXES
    ]
    python = [(f"generator/{p.relative_to(generator).as_posix()}", p) for p in generator.rglob("*.py")]
    return sorted(c_sources + python)


def firmware_sources_digest() -> str:
    """16 hex digits that change whenever a firmware source or the code generator changes."""
    h = hashlib.sha256()
    for name, path in _files():
        h.update(name.encode() + b"\0")
        h.update(path.read_bytes())
    return h.hexdigest()[:16]
