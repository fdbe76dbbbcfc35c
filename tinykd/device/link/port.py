"""The port half of DeviceLink: opening the serial transport (and why it would not open),
writing frames, reading them back, and `cancel`.

The methods work on the attributes DeviceLink.__init__ sets (tinykd.device.link.session).
"""

from __future__ import annotations

import errno
import socket
import time
from typing import Self

import serial

from tinykd.device import protocol as P
from tinykd.errors import TinykdError

# A USB serial port that is re-enumerating (after an upload or a reset) is missing for a moment
# (ENOENT, ENODEV, ENXIO), fails with EIO while it goes, and right after it appears belongs to root
# until udev applies its rule (EACCES). Only so long for EACCES: a user who may not use the port
# at all should hear so soon.
_GONE = (errno.ENOENT, errno.ENODEV, errno.ENXIO, errno.EIO)
_ACCESS_GRACE = 2.0


def _worth_waiting(e: Exception, is_socket: bool, waited: float) -> float:
    """Seconds to wait before opening again, or 0: the error will not go away by itself."""
    if is_socket:  # not listening yet (a QEMU still starting)
        return 0.05 if "refused" in str(e).lower() else 0.0
    code = getattr(e, "errno", None)
    if code is None:  # pyserial puts the OS error's number in args[0] and the text in the message
        code = e.args[0] if e.args and isinstance(e.args[0], int) else None
    text = str(e)
    if code in _GONE or any(f"[Errno {c}]" in text for c in _GONE):
        return 0.2
    if (code == errno.EACCES or f"[Errno {errno.EACCES}]" in text) and waited < _ACCESS_GRACE:
        return 0.2
    return 0.0


class LinkCancelled(Exception):
    """The link's cancel event was set (Ctrl-C, or another worker failed): not an error to report."""


class _Disconnected(TinykdError):
    """Reading or writing failed: the device or the link went away."""


class _Port:
    """Opening and closing the port, sending a frame, reading frames (a part of DeviceLink)."""

    # ---------------------------------------------------------------- opening

    def open(self) -> Self:
        if self.ser is not None:
            return self
        started = time.monotonic()
        deadline = started + self.open_timeout
        is_socket = self.url.startswith("socket://")
        while True:
            self._check_cancel()
            try:
                extra = {} if "://" in self.url else {"exclusive": True}  # busy = locked
                self.ser = serial.serial_for_url(
                    self.url, baudrate=self.baud, timeout=0.05, write_timeout=self.timeout * 5, **extra
                )
                break
            except (serial.SerialException, OSError, ValueError) as e:
                wait = _worth_waiting(e, is_socket, time.monotonic() - started)
                if wait and time.monotonic() + wait <= deadline:
                    time.sleep(wait)
                    continue
                raise TinykdError(self._open_error(e)) from e
        sock = getattr(self.ser, "_socket", None)
        if sock is not None:
            # Without TCP_NODELAY each small frame waits for Nagle: ~45 ms instead of ~1 ms.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return self

    def _open_error(self, e: Exception) -> str:
        msg = str(e)
        if self.url.startswith("socket://"):
            return (
                f"Cannot connect to {self.url}: {msg}. Nothing is listening there: check "
                "that QEMU (or the serial bridge) is running and the port number is right."
            )
        busy = any(w in msg.lower() for w in ("busy", "lock", "permission", "denied", "resource"))
        what = (
            "The port exists but is busy or not permitted: close any serial monitor "
            "(Arduino IDE, screen, minicom) that holds it, and make sure your user may "
            "use it (on Linux: add yourself to the `dialout` group)."
            if busy
            else f"It did not appear within {self.open_timeout:g} s. Check the port name: `tinykd doctor` lists "
            "the serial ports it finds; "
            "the board may also have re-enumerated under another name after a reset."
        )
        return f"Cannot open serial port {self.url}: {msg}. {what}"

    def close(self) -> None:
        if self.ser is not None:
            try:
                self.ser.close()
            finally:
                self.ser = None

    def __enter__(self) -> Self:
        return self.open()

    def __exit__(self, *exc) -> None:
        self.close()

    # ---------------------------------------------------------------- low level

    def _check_cancel(self) -> None:
        if self.cancel is not None and self.cancel.is_set():
            raise LinkCancelled()

    def _lost(self, doing: str, e: Exception) -> _Disconnected:
        return _Disconnected(
            f"{doing} {self.url} failed: {e}. The device disconnected (reset, unplugged, or "
            "QEMU stopped) and did not come back; reconnect it and run the same command again."
        )

    def _send(self, msg_type: int, seq: int, payload: bytes = b"") -> None:
        if self.ser is None:
            raise self._lost("Writing to", OSError("the port is closed"))
        try:
            self.ser.write(P.encode_frame(msg_type, seq, payload))
            self.ser.flush()
        except (serial.SerialException, OSError) as e:
            raise self._lost("Writing to", e) from e

    def _read_frames(self, deadline: float) -> list[P.Frame]:
        """Frames that arrive before `deadline` (returns as soon as at least one arrives, or a
        damaged frame arrives: then it returns [] early with `self._damaged` set)."""
        self._damaged = False
        while True:
            self._check_cancel()
            if self.ser is None:
                raise self._lost("Reading from", OSError("the port is closed"))
            try:
                n = self.ser.in_waiting
                data = self.ser.read(max(1, min(n, 65536)))
            except (serial.SerialException, OSError) as e:
                raise self._lost("Reading from", e) from e
            if data:
                self.bytes_received += len(data)
                before = self.decoder.bad_frames
                frames = self.decoder.feed(data)
                damaged = self.decoder.bad_frames - before
                self.bad_frames += damaged
                if frames:
                    return frames
                if damaged and self.info is not None:
                    self._damaged = True  # perhaps our answer: ask again now, not after the timeout
                    return []
            if time.monotonic() >= deadline:
                return []

    def drain(self) -> None:
        """Drop whatever is waiting (stale replies, banners)."""
        try:
            while self.ser.in_waiting:
                self.bytes_received += len(self.ser.read(self.ser.in_waiting))
        except (serial.SerialException, OSError) as e:
            raise self._lost("Reading from", e) from e
        self.decoder = P.FrameDecoder()
