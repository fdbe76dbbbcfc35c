"""Where the files that are not Python live: the firmware sources and the board files.

In a checkout (and an editable install) they are firmware/ and boards/ beside the package;
an installed wheel carries copies in tinykd/_shipped/ (see setup.py). $TINYKD_FIRMWARE and
$TINYKD_BOARDS point elsewhere, e.g. at a user's own board files.
"""

from __future__ import annotations

import os
from pathlib import Path

from .errors import TinykdError

_PACKAGE = Path(__file__).resolve().parent


def _locate(name: str, env: str, marker: str) -> Path:
    override = os.environ.get(env)
    if override:
        path = Path(override)
        if not (path / marker).exists():
            raise TinykdError(
                f"${env} points to {path}, which does not hold {marker}. Point it at tinykd's {name}/ "
                f"folder (or a copy of it), or unset it to use the one shipped with tinykd."
            )
        return path
    for candidate in (_PACKAGE.parent / name, _PACKAGE / "_shipped" / name):
        if (candidate / marker).exists():
            return candidate
    raise TinykdError(
        f"Cannot find tinykd's {name}/ folder (looked beside the package and in its installed copy, "
        f"{_PACKAGE / '_shipped' / name}). Reinstall tinykd (pip install tinykd, or pip install -e . in a "
        f"checkout) or set ${env} to a copy of the folder."
    )


def firmware_dir() -> Path:
    """The firmware sources: runtime/, app/, frontend/, ports/."""
    return _locate("firmware", "TINYKD_FIRMWARE", "app/tkd_app.c")


def boards_dir() -> Path:
    """The folder of board description files (<name>.toml)."""
    override = os.environ.get("TINYKD_BOARDS")
    if override and not Path(override).is_dir():
        raise TinykdError(
            f"$TINYKD_BOARDS points to {override}, which is not a folder. Set it to a folder of board "
            ".toml files, or unset it to use the boards shipped with tinykd."
        )
    return Path(override) if override else _locate("boards", "TINYKD_BOARDS", "mps2-an386.toml")
