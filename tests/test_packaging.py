"""An installed wheel (not only a checkout) carries the firmware sources and board files."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_wheel_ships_firmware_and_boards_and_finds_them_without_a_checkout(tmp_path):
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path / "dist"),
            str(REPO),
        ],
        check=True,
        cwd=tmp_path,
    )
    (wheel,) = (tmp_path / "dist").glob("tinykd-*.whl")
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        z.extractall(tmp_path / "site")
    for needed in (
        "tinykd/_shipped/firmware/app/tkd_app.c",
        "tinykd/_shipped/firmware/runtime/tkd_runtime.h",
        "tinykd/_shipped/firmware/frontend/tkd_frontend.c",
        "tinykd/_shipped/firmware/ports/qemu-mps/tkd_port_qemu.c",
        "tinykd/_shipped/boards/nano33.toml",
    ):
        assert needed in names, needed
    assert not any("/build/" in n or n.endswith(".o") for n in names)
    # Imported from the unpacked wheel, away from the checkout: the shipped copies are found.
    probe = (
        "from tinykd.resources import firmware_dir, boards_dir; from tinykd.boards import load_board; "
        "print(firmware_dir()); print(boards_dir()); print(load_board('nano33').name)"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(tmp_path / "site"), "PATH": "/usr/bin:/bin"},
        check=True,
    ).stdout
    firmware, boards, board = out.split()
    assert firmware == str(tmp_path / "site" / "tinykd" / "_shipped" / "firmware")
    assert boards == str(tmp_path / "site" / "tinykd" / "_shipped" / "boards") and board == "nano33"
