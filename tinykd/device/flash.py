"""Put an existing firmware on a board and say where to talk to it. Nothing here compiles.

`flash(board, target, port=None, tool=None)` takes a firmware that exists already (a tinykd
firmware project folder, a folder holding one in `firmware/`, an ELF, a Project or a
BuildResult) and returns a `Flashed` handle with the serial `url`:
  * QEMU boards: starts QEMU with the ELF, its serial on a free local TCP port or the one
    `port` names (the handle owns the process: close it, or use it as a context manager);
  * hardware: the first of the board's flash methods (`Board.flash_methods`, preferred first)
    whose tool is installed, or the one `tool` names, one small function each:

        arduino-cli   arduino-cli upload --fqbn FQBN --port PORT --input-dir DIR SKETCH
        openocd       openocd -f CFG... -c "program {ELF} verify reset exit"
        st-flash      st-flash --reset write BIN 0xORIGIN
        pyocd         pyocd flash -t TARGET ELF
        mass-storage  copy the .bin/.hex onto the probe's USB drive, wait for it to remount

    then finds the board's serial port by its USB vendor id. A board whose own USB is the
    serial port (Arduino) re-enumerates after the upload: we wait for it to go and come back.

The board file's [flash] table holds each tool's settings:
    openocd = ["interface/stlink.cfg", "target/stm32f4x.cfg"]   # -f files, in order
    pyocd_target = "stm32f411retx"                              # pyocd -t
    volume_label = "NODE_F411RE"                                # mass-storage drive name
    image = "bin"                                               # mass-storage: "bin" | "hex"
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tinykd.boards import Board, load_board
from tinykd.device.qemu import QemuInstance, check_elf_for_board
from tinykd.errors import TinykdError
from tinykd.firmware.project import MANIFEST, BuildResult, Project

TOOL_TIMEOUT = 300.0  # s: a tool that has not finished by then is stuck (probe wedged, board in reset)

# The program each method runs (mass-storage needs none) and how to get it.
TOOLS = {"arduino-cli": "arduino-cli", "openocd": "openocd", "st-flash": "st-flash", "pyocd": "pyocd"}
INSTALL = {
    "arduino-cli": "install arduino-cli (https://arduino.github.io/arduino-cli/latest/installation/)",
    "openocd": "`sudo apt-get install openocd` (Debian/Ubuntu; `brew install open-ocd` on macOS)",
    "st-flash": "`sudo apt-get install stlink-tools` (Debian/Ubuntu; `brew install stlink` on macOS)",
    "pyocd": "`pip install pyocd`",
    "mass-storage": "plug the board in and let the system mount its USB drive",
}
# Debian packages BOSSA as `bossa-cli`; it looks like a way to flash the Nano 33 BLE without the
# Arduino tools, but it is not: only Arduino's fork of BOSSA (shipped inside the board core)
# speaks the nRF52840 bootloader.
BOSSA_NOTE = (
    "Debian's `bossa-cli` (bossac) is upstream BOSSA, without the nRF52 support of Arduino's fork: "
    "it cannot flash the Nano 33 BLE (nRF52840) and is not a fallback."
)


def core_install_command(board: Board) -> str:
    """`arduino-cli core install CORE`, with the core's package index when it is not Arduino's
    own ([flash] core_index_url, e.g. Seeed's)."""
    core = board.fqbn.rsplit(":", 1)[0] if board.fqbn else "arduino:mbed_nano"
    url = board.flash_options.get("core_index_url")
    return f"arduino-cli core install {core}" + (f" --additional-urls {url}" if url else "")


def arduino_install_hint(board: Board) -> str:
    """What to install to upload to an Arduino board: arduino-cli and the board's core."""
    core = board.fqbn.rsplit(":", 1)[0] if board.fqbn else "arduino:mbed_nano"
    hint = (
        "Install arduino-cli (https://arduino.github.io/arduino-cli/latest/installation/), then "
        f"`{core_install_command(board)}` (the core brings its own upload tool)."
    )
    if core.startswith("arduino:mbed"):
        hint += " " + BOSSA_NOTE
    return hint


@dataclass
class Flashed:
    board: Board
    url: str | None  # None: flashed, but no serial port found (pass --port to evaluate)
    qemu: QemuInstance | None = None
    method: str = "qemu"

    def close(self) -> None:
        if self.qemu is not None:
            self.qemu.close()

    def __enter__(self) -> Flashed:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# ------------------------------------------------------------------ what to flash


@dataclass
class Firmware:
    """An image that exists on disk: its ELF and, for an Arduino sketch, arduino-cli's output folder."""

    board: Board
    elf: Path
    project: Project | None = None
    sketch_output: Path | None = None  # arduino: the folder `arduino-cli compile --output-dir` wrote


def _project_of(path: Path) -> Project | None:
    for root in (path, path / "firmware"):
        if (root / MANIFEST).is_file():
            return Project.from_dir(root)
    return None


def _remake_hint(project: Project) -> str:
    parent = project.root.parent
    if (parent / "config.toml").is_file():  # a build folder
        return f"`tinykd firmware --out {parent}`"
    return f"`tinykd firmware --model MODEL.tflite --board {project.board.name} --out {parent}`"


def find_firmware(target, board: str | Board | None = None) -> Firmware:
    """The existing firmware `target` names (see the module docstring); TinykdError when there is none.
    `board`, when given, must be the one the firmware was made for (an ELF alone needs it)."""
    wanted = load_board(board) if board is not None else None
    if isinstance(target, BuildResult):
        if target.elf is None:
            raise TinykdError("This build has no ELF image to flash. Make the firmware again with `tinykd firmware`.")
        target = target.elf
    project = target if isinstance(target, Project) else None
    path = Path(target) if project is None else project.root
    if project is None and path.is_dir():
        project = _project_of(path)
        if project is None:
            raise TinykdError(
                f"{path} is not a tinykd firmware folder (no {MANIFEST} in it or in {path / 'firmware'}). "
                "Give the folder `tinykd firmware --out DIR` wrote, or an ELF with --elf."
            )
    if project is None:
        if not path.is_file():
            raise TinykdError(f"{path} does not exist. Give an ELF image (build/firmware.elf of a firmware project).")
        if wanted is None:
            raise TinykdError(f"Flashing the ELF {path} needs the board it was built for: pass --board.")
        return Firmware(wanted, path)
    if wanted is not None and wanted.name != project.board.name:
        raise TinykdError(
            f"{project.root} holds firmware for {project.board.name}, not {wanted.name}. Flash it with "
            f"--board {project.board.name}, or make firmware for {wanted.name} with "
            f"`tinykd firmware --board {wanted.name}`."
        )
    if project.kind == "arduino":
        out = project.root / "build"
        elf = out / f"{project.sketch_dir.name}.ino.elf"
        if not (elf.is_file() or elf.with_suffix(".bin").is_file()):
            raise TinykdError(
                f"The sketch in {project.sketch_dir} was never compiled by arduino-cli (without it `tinykd firmware` "
                f"only checks the fit), so there is nothing to upload; flash never compiles. "
                f"{arduino_install_hint(project.board)} Then run {_remake_hint(project)} again to compile the sketch, "
                "and flash."
            )
        return Firmware(project.board, elf, project, out)
    elf = project.root / "build" / "firmware.elf"
    if not elf.is_file():
        raise TinykdError(
            f"{project.root} has no build/firmware.elf: the project was generated but not compiled; flash never "
            f"compiles. Make it with {_remake_hint(project)} (or `make -C {project.root}`)."
        )
    return Firmware(project.board, elf, project)


def _converted(elf: Path, fmt: str) -> Path:
    """The ELF as a raw .bin or Intel .hex beside it (the Makefile's build/firmware.bin when it is
    up to date), converted with arm-none-eabi-objcopy."""
    out = elf.with_suffix("." + fmt)
    if out.is_file() and out.stat().st_mtime >= elf.stat().st_mtime:
        return out
    objcopy = shutil.which("arm-none-eabi-objcopy")
    if not objcopy:
        raise TinykdError(
            f"Converting {elf.name} to .{fmt} needs arm-none-eabi-objcopy, which is not on PATH: "
            "`sudo apt-get install binutils-arm-none-eabi` (or gcc-arm-none-eabi)."
        )
    r = subprocess.run(
        [objcopy, "-O", "binary" if fmt == "bin" else "ihex", str(elf), str(out)], capture_output=True, text=True
    )
    if r.returncode != 0:
        raise TinykdError(f"arm-none-eabi-objcopy could not convert {elf} to .{fmt}: {r.stderr.strip()[-600:]}")
    return out


# ------------------------------------------------------------------ choosing the method


def tool_installed(method: str, board: Board) -> bool:
    if method == "mass-storage":
        label = board.flash_options.get("volume_label")
        return bool(label) and find_volume(label) is not None
    return method in TOOLS and shutil.which(TOOLS[method]) is not None


def choose_method(board: Board, tool: str | None = None) -> str:
    """The board's first flash method whose tool is installed, or `tool` (which must be one of them)."""
    methods = board.flash_methods
    if tool is not None:
        if tool not in methods:
            raise TinykdError(
                f"--with {tool}: {board.name} is flashed with {', '.join(methods)} (its board file, "
                f"{board.path.name}), not {tool}. Pick one of those."
            )
        if not tool_installed(tool, board):
            raise TinykdError(_missing_text(board, [tool]))
        return tool
    for method in methods:
        if tool_installed(method, board):
            return method
    raise TinykdError(_missing_text(board, list(methods)))


def _missing_text(board: Board, methods: list[str]) -> str:
    ways = []
    for m in methods:
        if m == "arduino-cli":
            ways.append(f"arduino-cli: {arduino_install_hint(board)}")
        elif m == "mass-storage":
            label = board.flash_options.get("volume_label", "?")
            ways.append(f"mass-storage: no drive labelled {label} is mounted; {INSTALL[m]}")
        else:
            ways.append(f"{m}: {INSTALL[m]}")
    return (
        f"Nothing installed here can flash the {board.name}. Any one of these will: "
        + "; ".join(w.rstrip(".") for w in ways)
        + "."
    )


# ------------------------------------------------------------------ serial ports


def find_ports(board: Board) -> list[str]:
    """Serial ports whose USB vendor id is the board's (board product ids first)."""
    from serial.tools import list_ports

    found = []
    for p in list_ports.comports():
        if board.usb_vid and p.vid == board.usb_vid:
            found.append((0 if p.pid in board.usb_pids else 1, p.device))
    return [dev for _, dev in sorted(found)]


def _answers_ping(url: str, baud: int) -> bool:
    """Whether tinykd firmware answers a PING on `url` right now."""
    from tinykd.device.link import DeviceLink

    try:
        with DeviceLink(url, baud=baud, open_timeout=0.5) as link:
            link.connect(timeout=1.0)
        return True
    except TinykdError:
        return False


def wait_for_port(
    board: Board,
    timeout: float,
    previous: str | None = None,
    *,
    probe: Callable[[str], bool] | None = None,
    settle: float = 2.0,
    interval: float = 0.2,
) -> str:
    """The board's serial port once it is there, after an upload reset it.

    Without `previous`: the first port with the board's USB vendor id. With `previous` (the port the
    board had before the upload reset it): that name still listed is not the board back, since the
    OS lists a port for a moment after its device left and the board comes back under the same
    name. So we wait for the ports listed at the start to go and a port to appear; a name listed
    all along counts only once the firmware answers a PING on it (`probe`, tried after `settle` s:
    the reset was over before we looked, or the board never reset).
    """
    probe = probe or (lambda url: _answers_ping(url, board.baud))
    start = time.monotonic()
    deadline = start + timeout
    stale = set(find_ports(board)) if previous else set()
    stale.discard(None)
    last_probe = start
    while True:
        ports = find_ports(board)
        stale &= set(ports)  # a port that went away and comes back is back
        fresh = [p for p in ports if p not in stale]
        if fresh:
            return previous if previous in fresh else fresh[0]
        now = time.monotonic()
        if previous in stale and now - start >= settle and now - last_probe >= 1.0:
            last_probe = now
            if probe(previous):
                return previous
        if now >= deadline:
            break
        time.sleep(interval)
    if previous in stale:
        what = f"{previous} stayed listed but no tinykd firmware answered on it"
    else:
        what = f"no serial port with its USB vendor id 0x{board.usb_vid:04x} came back"
    raise TinykdError(
        f"The {board.name} did not come back after the upload: {what} within {timeout:g} s. Unplug and replug "
        "it (Arduino boards: double-tap reset to force the bootloader, then flash again), check `tinykd doctor` "
        "for its port, and pass it with --port."
    )


# ------------------------------------------------------------------ running a tool


def _run_tool(method: str, cmd: list[str], board: Board, what_to_try: str) -> str:
    """Run one flash tool; its failure becomes one paragraph with the end of its log."""
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=TOOL_TIMEOUT)
    except subprocess.TimeoutExpired as e:
        raise TinykdError(
            f"{method} was still flashing the {board.name} after {TOOL_TIMEOUT:g} s and was stopped "
            f"(`{' '.join(cmd)}`). {what_to_try}"
        ) from e
    except OSError as e:
        raise TinykdError(f"Could not run {cmd[0]}: {e}. {INSTALL.get(method, '')}".rstrip()) from e
    log = (r.stdout + "\n" + r.stderr).strip()
    if r.returncode != 0:
        tail = "\n".join(log.splitlines()[-15:])[-1500:]
        raise TinykdError(
            f"Flashing the {board.name} with {method} failed (exit {r.returncode}; `{' '.join(cmd)}`):\n"
            f"{tail or '(no output)'}\n{what_to_try}"
        )
    return log


def _board_port(board: Board, port: str | None) -> str:
    """The serial port to pick for `flash`: the one given, else the board's by USB vendor id."""
    if port:
        return port
    ports = find_ports(board)
    if not ports:
        raise TinykdError(
            f"No {board.name} found: no serial port with USB vendor id 0x{board.usb_vid:04x}. Plug the board in "
            "(a data cable, not charge-only), or pass the port with --port (`tinykd doctor` lists ports)."
        )
    return ports[0]


def flash_arduino_cli(board: Board, fw: Firmware, port: str | None, port_timeout: float) -> str:
    """arduino-cli upload of the sketch's existing build output (never compiles). The core does
    the 1200-baud touch, which drops the board into its bootloader (the port may change name)."""
    cli = shutil.which("arduino-cli")
    port = _board_port(board, port)
    if fw.sketch_output is not None:
        cmd = [cli, "upload", "--fqbn", board.fqbn, "--port", port, "--input-dir", str(fw.sketch_output)]
        cmd.append(str(fw.project.sketch_dir))
    else:  # an ELF alone: arduino-cli uploads the .bin beside it
        cmd = [cli, "upload", "--fqbn", board.fqbn, "--port", port, "--input-file", str(_converted(fw.elf, "bin"))]
    try_ = (
        f"Check the port ({port}; it is busy while a serial monitor has it open), double-tap the board's reset "
        f"button to enter the bootloader, and try again. {arduino_install_hint(board)}"
    )
    _run_tool("arduino-cli", cmd, board, try_)
    return wait_for_port(board, port_timeout, previous=port)


def flash_openocd(board: Board, fw: Firmware, port: str | None, port_timeout: float) -> None:
    cfgs = board.flash_options.get("openocd")
    if not cfgs:
        raise TinykdError(
            f"{board.path.name} has no [flash] openocd = [...] config files; add them "
            '(e.g. ["interface/stlink.cfg", "target/stm32f4x.cfg"]) or flash --with another tool.'
        )
    cmd = [shutil.which("openocd")]
    for cfg in cfgs:
        cmd += ["-f", cfg]
    # braces: a Tcl word, so a path with spaces stays one argument
    cmd += ["-c", f"program {{{fw.elf}}} verify reset exit"]
    _run_tool(
        "openocd",
        cmd,
        board,
        "Check the USB cable and that no other debugger (an IDE, st-util, another openocd) holds the probe. "
        "`LIBUSB_ERROR_ACCESS` means the probe's udev rules are missing (Debian's openocd package installs them: "
        "replug the board); `unable to connect to the target` may need the probe's firmware updated or the "
        "board's reset held (add `-c 'reset_config srst_only connect_assert_srst'`).",
    )


def flash_st_flash(board: Board, fw: Firmware, port: str | None, port_timeout: float) -> None:
    image = _converted(fw.elf, "bin")
    cmd = [shutil.which("st-flash"), "--reset", "write", str(image), f"0x{board.flash_origin:08x}"]
    _run_tool(
        "st-flash",
        cmd,
        board,
        "`st-info --probe` should list the ST-LINK: if it does not, check the cable and the udev rules "
        "(Debian's stlink-tools installs them: replug the board); close any other debugger using it.",
    )


def flash_pyocd(board: Board, fw: Firmware, port: str | None, port_timeout: float) -> None:
    target = board.flash_options.get("pyocd_target")
    if not target:
        raise TinykdError(f"{board.path.name} has no [flash] pyocd_target; add it or flash --with another tool.")
    cmd = [shutil.which("pyocd"), "flash", "-t", target, str(fw.elf)]
    _run_tool(
        "pyocd",
        cmd,
        board,
        f"`pyocd list` should show the probe. If pyocd does not know target {target}, install its pack: "
        f"`pyocd pack install {target}`. Close any other debugger using the probe.",
    )


# ------------------------------------------------------------------ USB drives


def _unescape_mount(field: str) -> str:
    # /proc/mounts writes space, tab, newline and backslash as octal escapes
    for esc, ch in (("\\040", " "), ("\\011", "\t"), ("\\012", "\n"), ("\\134", "\\")):
        field = field.replace(esc, ch)
    return field


MOUNTS = Path("/proc/self/mounts")
BY_LABEL = Path("/dev/disk/by-label")
MAC_VOLUMES = Path("/Volumes")


def find_volume(label: str) -> Path | None:
    """The mount point of the drive labelled `label` (a DAPLink or ST-LINK drive), or None."""
    if sys.platform == "win32":
        return _windows_volume(label)
    if sys.platform == "darwin":
        p = MAC_VOLUMES / label
        return p if p.is_dir() else None
    try:
        lines = MOUNTS.read_text().splitlines()
    except OSError:
        return None
    by_label = BY_LABEL / label
    device = os.path.realpath(by_label) if by_label.exists() else None
    for line in lines:
        fields = line.split()
        if len(fields) < 2:
            continue
        dev, mount = _unescape_mount(fields[0]), Path(_unescape_mount(fields[1]))
        # udisks mounts a drive at /media/USER/LABEL (or /run/media/USER/LABEL)
        if (device and os.path.realpath(dev) == device) or mount.name == label:
            if mount.is_dir():
                return mount
    return None


def _windows_volume(label: str) -> Path | None:
    import ctypes

    kernel32 = ctypes.windll.kernel32
    mask = kernel32.GetLogicalDrives()
    for i in range(26):
        if not mask & (1 << i):
            continue
        root = f"{chr(65 + i)}:\\"
        name = ctypes.create_unicode_buffer(261)
        if kernel32.GetVolumeInformationW(root, name, 261, None, None, None, None, 0) and name.value == label:
            return Path(root)
    return None


def _wait_volume(label: str, present: bool, timeout: float, interval: float) -> bool:
    deadline = time.monotonic() + timeout
    while (find_volume(label) is not None) != present:
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)
    return True


def flash_mass_storage(
    board: Board, fw: Firmware, port: str | None, port_timeout: float, *, interval: float = 0.2
) -> None:
    """Copy the image onto the probe's USB drive and wait until the probe has programmed it.

    DAPLink and ST-LINK program the target from the data as it is written and then remount the
    drive; a FAIL.TXT on the remounted drive says why programming failed. So the image is
    written once under its final name (a temporary name and a rename would be programmed as
    soon as it is written, then seen again), flushed and fsynced; then we wait for the drive to
    go away and come back."""
    label = board.flash_options.get("volume_label")
    if not label:
        raise TinykdError(f"{board.path.name} has no [flash] volume_label (the probe drive's name); add it.")
    fmt = board.flash_options.get("image", "bin")
    if fmt not in ("bin", "hex"):
        raise TinykdError(f'{board.path.name}: [flash] image = {fmt!r}; use "bin" or "hex".')
    volume = find_volume(label)
    if volume is None:
        raise TinykdError(
            f"No drive labelled {label} is mounted: plug the {board.name} in (a data cable) and wait for its "
            "drive to appear (mount it if your desktop does not), or flash --with another tool."
        )
    image = _converted(fw.elf, fmt)
    dest = volume / f"firmware.{fmt}"
    try:
        with open(image, "rb") as src, open(dest, "wb") as out:
            shutil.copyfileobj(src, out, 1 << 20)
            out.flush()
            os.fsync(out.fileno())
    except OSError as e:
        if find_volume(label) is not None:  # (a drive that went away mid-copy is programming: go on)
            raise TinykdError(
                f"Copying {image.name} to {volume} failed: {e}. The drive may be read-only or full "
                f"(a drive that is full of old files needs a replug); copy {image} there by hand to see."
            ) from e
    # Some probes program without remounting: after 15 s without the drive going, go on.
    _wait_volume(label, False, 15.0, interval)
    back = _wait_volume(label, True, 30.0, interval)
    if not back:
        raise TinykdError(
            f"The {label} drive did not come back within 30 s after {image.name} was copied to it: the probe "
            "may still be programming, or hung. Wait, then unplug and replug the board and check that it runs."
        )
    volume = find_volume(label)
    fail = volume / "FAIL.TXT" if volume else None
    if fail is not None and fail.is_file():
        reason = fail.read_text(errors="replace").strip()
        raise TinykdError(
            f"The {board.name}'s probe could not program {image.name}: FAIL.TXT says {reason!r}. Check that the "
            f"image was built for {board.name} (flash origin 0x{board.flash_origin:08x}) and that the probe's "
            "firmware is current; copying the file again after a replug often helps."
        )


METHODS: dict[str, Callable] = {
    "arduino-cli": flash_arduino_cli,
    "openocd": flash_openocd,
    "st-flash": flash_st_flash,
    "pyocd": flash_pyocd,
    "mass-storage": flash_mass_storage,
}


def qemu_listen_port(port: str) -> int:
    """The local TCP port a QEMU board's serial should listen on, from --port: a number, or
    socket://127.0.0.1:N / socket://localhost:N (the address `tinykd evaluate --port` then takes)."""
    text = port.strip()
    for prefix in ("socket://127.0.0.1:", "socket://localhost:", "127.0.0.1:", "localhost:"):
        if text.startswith(prefix):
            text = text[len(prefix) :]
            break
    if not text.isdigit() or not 1024 <= int(text) <= 65535:
        raise TinykdError(
            f"--port {port!r} is not a port QEMU can listen on. For a QEMU board give a local TCP port: "
            "a number from 1024 to 65535 or socket://127.0.0.1:PORT (leave --port out and QEMU takes "
            "a free one; `tinykd flash` prints the address)."
        )
    return int(text)


def flash(
    board: str | Board | None,
    target,
    port: str | None = None,
    *,
    tool: str | None = None,
    time_limit: float = 3600.0,
    port_timeout: float = 20.0,
) -> Flashed:
    """Flash the existing firmware `target` (see find_firmware) onto `board` (None: the one the
    firmware folder was made for). Never compiles."""
    if board is not None:
        board = load_board(board)
        if board.is_qemu and port:
            qemu_listen_port(port)  # refuse a port QEMU cannot listen on before anything else
    fw = find_firmware(target, board)
    board = fw.board
    if board.is_qemu:
        listen = qemu_listen_port(port) if port else None
        q = QemuInstance(board, fw.elf, time_limit=time_limit, port=listen).start()
        return Flashed(board, q.url, q)
    method = choose_method(board, tool)
    if method != "arduino-cli":
        check_elf_for_board(fw.elf, board)  # an image linked for another board never reaches the chip
    url = METHODS[method](board, fw, port, port_timeout)
    if url is None:  # a probe's serial bridge: the board resets, the probe's port stays
        if port:
            url = port
        elif board.usb_vid:
            try:
                url = wait_for_port(board, port_timeout)
            except TinykdError:
                url = None
    return Flashed(board, url, method=method)
