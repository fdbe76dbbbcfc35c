"""Compile C (the runtime plus generated model.c) with the host compiler into a shared
library for ctypes. Builds are cached in a directory keyed by a hash of the compiler, the
flags and every source and header, so repeated tests do not recompile."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path

from tinykd.errors import TinykdError
from tinykd.resources import firmware_dir

HOST_CFLAGS = ("-std=c99", "-O2", "-fPIC", "-shared", "-Wall", "-Wextra", "-Werror")


def runtime_dir() -> Path:
    """firmware/runtime: the C runtime's sources."""
    return firmware_dir() / "runtime"


def runtime_sources() -> list[Path]:
    return sorted(runtime_dir().glob("*.c"))


def cache_dir() -> Path:
    env = os.environ.get("TINYKD_HOST_BUILD_CACHE")
    d = Path(env) if env else Path(tempfile.gettempdir()) / f"tinykd-hostbuild-{os.getuid()}"
    d.mkdir(parents=True, exist_ok=True)
    return d


def find_compiler() -> str:
    for cand in (os.environ.get("CC"), "cc", "gcc", "clang"):
        if cand and shutil.which(cand):
            return shutil.which(cand)
    raise TinykdError(
        "No host C compiler found (tried $CC, cc, gcc, clang). Install one, e.g. "
        "`sudo apt-get install build-essential`, or set $CC."
    )


def build_shared_library(
    sources: Sequence[str | os.PathLike],
    include_dirs: Iterable[str | os.PathLike] = (),
    extra_flags: Sequence[str] = (),
) -> Path:
    """Compile `sources` (+ the runtime's include dir) into a .so; return its cached path."""
    cc = find_compiler()
    incs = [runtime_dir()] + [Path(d) for d in include_dirs]
    flags = list(HOST_CFLAGS) + list(extra_flags)
    h = hashlib.sha256()
    h.update(cc.encode() + b"\0" + " ".join(flags).encode() + b"\0")
    for s in sources:
        p = Path(s)
        h.update(p.name.encode() + b"\0" + p.read_bytes() + b"\0")
    for d in incs:
        for hdr in sorted(Path(d).glob("*.h")):
            h.update(hdr.name.encode() + b"\0" + hdr.read_bytes() + b"\0")
    out = cache_dir() / f"tkd_{h.hexdigest()[:20]}.so"
    if out.exists():
        return out
    fd, tmp = tempfile.mkstemp(prefix=out.name + ".", suffix=".tmp", dir=out.parent)
    os.close(fd)
    cmd = [cc, *flags, *(f"-I{d}" for d in incs), *map(str, sources), "-o", tmp]
    try:
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0:
            raise TinykdError(
                f"The host C compiler failed to build the model for testing "
                f"(exit {r.returncode}):\n{r.stderr[-3000:]}\nCommand: "
                f"{' '.join(cmd[:8])} ...  Fix the error above (a generated-code "
                "bug is worth reporting)."
            )
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return out
