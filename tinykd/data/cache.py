"""Where datasets are cached, and file digests for verifying them."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path


def cache_dir() -> Path:
    """Where downloaded and generated datasets live: $TINYKD_CACHE, else ~/.cache/tinykd."""
    return Path(os.environ.get("TINYKD_CACHE") or Path.home() / ".cache" / "tinykd")


def file_digest(path: str | os.PathLike, algorithm: str) -> str:
    """Hex digest of a file, read in 1 MiB chunks (archives can be gigabytes)."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def md5sum(path: str | os.PathLike) -> str:
    return file_digest(path, "md5")


def sha256sum(path: str | os.PathLike) -> str:
    return file_digest(path, "sha256")
