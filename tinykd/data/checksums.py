"""Checksums the user gives for their data files ([data] checksums), and digests of what a
build read (so that another dataset in the same folder is never taken for the one trained on)."""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

from ..errors import TinykdError
from .cache import file_digest

_HEX = re.compile(r"^[0-9a-f]+$")
ALGORITHMS = {32: "md5", 64: "sha256"}


def check_digest_format(name: str, digest: str) -> None:
    """A digest in the config is an md5 (32 hex digits) or a sha256 (64)."""
    if not isinstance(digest, str) or len(digest) not in ALGORITHMS or not _HEX.match(digest.lower()):
        raise TinykdError(
            f"[data] checksums: the digest given for {name!r} ({digest!r}) is neither an md5 (32 hex digits) nor "
            "a sha256 (64 hex digits). Give the file's `sha256sum` (or `md5sum`) output."
        )


def verify_checksums(base: Path, checksums: dict[str, str]) -> None:
    """Each file named in `checksums` (relative to the data folder `base`, or absolute) must exist and
    have that md5 or sha256."""
    for name, expected in sorted(checksums.items()):
        check_digest_format(name, expected)
        path = Path(name) if Path(name).is_absolute() else base / name
        if not path.is_file():
            raise TinykdError(
                f"[data] checksums names {name}, but {path} does not exist. Name the data files relative to "
                f"the data folder ({base}), or remove the entry."
            )
        algorithm = ALGORITHMS[len(expected)]
        actual = file_digest(path, algorithm)
        if actual != expected.lower():
            raise TinykdError(
                f"{path} is not the file [data] checksums describes: its {algorithm} is {actual}, expected "
                f"{expected.lower()}. The file changed or is another dataset; copy the right file again, or "
                "update the checksum if the new file is the one you mean."
            )


_DIGESTS: dict[tuple, str] = {}


def files_digest(base: Path, files: list[Path]) -> str:
    """sha256 over the files' names (relative to `base`) and contents; remembered per process
    by path, size and modification time."""
    stats = []
    for f in sorted(files):
        st = os.stat(f)
        stats.append((str(f.resolve()), st.st_size, st.st_mtime_ns))
    key = (str(base.resolve()), tuple(stats))
    if key not in _DIGESTS:
        h = hashlib.sha256()
        for f in sorted(files):
            h.update(f.relative_to(base).as_posix().encode() + b"\0")
            h.update(bytes.fromhex(file_digest(f, "sha256")))
        _DIGESTS[key] = h.hexdigest()
    return _DIGESTS[key]
