"""A conversation with a tinykd device over any serial transport pyserial can open.

    link = DeviceLink("socket://127.0.0.1:4444")    # QEMU; or "/dev/ttyACM0", a pty, ...
    link.connect()                                 # PING until the device answers
    info = link.hello()                            # DeviceInfo
    res = link.infer(x_bytes)                      # Result(count, output)

Boot banners and line noise are skipped (the frame decoder resynchronises on the next zero
byte); a request that gets no valid answer in time, or whose frame the device reports as
damaged, is sent again; every failure the user can act on is a TinykdError.
"""

from __future__ import annotations

import socket
import time

import serial

from tinykd.device import protocol as P
from tinykd.errors import TinykdError


class DeviceLink:
    def __init__(
        self, url: str, *, baud: int = 115200, timeout: float = 2.0, retries: int = 3, open_timeout: float = 10.0
    ):
        self.url = url
        self.baud = baud
        self.timeout = timeout
        self.retries = retries
        self.open_timeout = open_timeout
        self.ser: serial.SerialBase | None = None
        self.decoder = P.FrameDecoder()
        self.bytes_received = 0
        self.resends = 0
        self.max_payload = P.MAX_PAYLOAD
        self.info: P.DeviceInfo | None = None
        self._seq = 0

    # ---------------------------------------------------------------- opening

    def open(self) -> DeviceLink:
        if self.ser is not None:
            return self
        deadline = time.monotonic() + self.open_timeout
        is_socket = self.url.startswith("socket://")
        while True:
            try:
                extra = {} if "://" in self.url else {"exclusive": True}  # busy = locked
                self.ser = serial.serial_for_url(
                    self.url, baudrate=self.baud, timeout=0.05, write_timeout=self.timeout * 5, **extra
                )
                break
            except (serial.SerialException, OSError, ValueError) as e:
                # A socket may not be listening yet (a QEMU still starting): keep trying.
                if is_socket and time.monotonic() < deadline and "refused" in str(e).lower():
                    time.sleep(0.05)
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
            else "Check the port name: `tinykd doctor` lists the serial ports it finds; "
            "the board may also have re-enumerated under another name after a reset."
        )
        return f"Cannot open serial port {self.url}: {msg}. {what}"

    def close(self) -> None:
        if self.ser is not None:
            try:
                self.ser.close()
            finally:
                self.ser = None

    def __enter__(self) -> DeviceLink:
        return self.open()

    def __exit__(self, *exc) -> None:
        self.close()

    # ---------------------------------------------------------------- low level

    def _next_seq(self) -> int:
        self._seq = (self._seq + 1) & 0xFFFF or 1  # 0 is kept for the device's BAD_FRAME
        return self._seq

    def _send(self, msg_type: int, seq: int, payload: bytes = b"") -> None:
        try:
            self.ser.write(P.encode_frame(msg_type, seq, payload))
            self.ser.flush()
        except (serial.SerialException, OSError) as e:
            raise TinykdError(
                f"Writing to {self.url} failed: {e}. The device disconnected "
                "(reset, unplugged, or QEMU stopped); reconnect and retry."
            ) from e

    def _read_frames(self, deadline: float) -> list[P.Frame]:
        """Frames that arrive before `deadline` (returns as soon as at least one arrives)."""
        while True:
            try:
                n = self.ser.in_waiting
                data = self.ser.read(max(1, min(n, 65536)))
            except (serial.SerialException, OSError) as e:
                raise TinykdError(
                    f"Reading from {self.url} failed: {e}. The device disconnected (reset, unplugged, or QEMU stopped)."
                ) from e
            if data:
                self.bytes_received += len(data)
                frames = self.decoder.feed(data)
                if frames:
                    return frames
            if time.monotonic() >= deadline:
                return []

    def drain(self) -> None:
        """Drop whatever is waiting (stale replies, banners)."""
        try:
            while self.ser.in_waiting:
                self.bytes_received += len(self.ser.read(self.ser.in_waiting))
        except (serial.SerialException, OSError) as e:
            raise TinykdError(
                f"Reading from {self.url} failed: {e}. The device disconnected (reset, unplugged, or QEMU stopped)."
            ) from e
        self.decoder = P.FrameDecoder()

    # ---------------------------------------------------------------- requests

    def request(
        self,
        msg_type: int,
        payload: bytes = b"",
        expect: int | None = None,
        *,
        timeout: float | None = None,
        retries: int | None = None,
    ) -> P.Frame:
        """Send one request and return the matching reply frame (same seq, type `expect`).

        Resends on timeout or when the device reports a damaged frame, up to `retries` times.
        A device ERROR about the request itself raises TinykdError.
        """
        if self.ser is None:
            self.open()
        timeout = self.timeout if timeout is None else timeout
        retries = self.retries if retries is None else retries
        seq = self._next_seq()
        for attempt in range(retries + 1):
            if attempt:
                self.resends += 1
            self._send(msg_type, seq, payload)
            deadline = time.monotonic() + timeout
            resend = False
            while not resend:
                frames = self._read_frames(deadline)
                if not frames:
                    break  # timed out: resend
                for fr in frames:
                    if fr.type == P.ERROR and fr.seq == 0:
                        err = P.DeviceErrorMsg.decode(fr.payload)
                        if err.code in (P.ERR_BAD_FRAME, P.ERR_TOO_LONG):
                            resend = True  # our frame arrived damaged
                        continue
                    if fr.seq != seq:
                        continue  # a stale reply to an earlier attempt
                    if fr.type == P.ERROR:
                        err = P.DeviceErrorMsg.decode(fr.payload)
                        raise TinykdError(self._device_error_text(msg_type, err))
                    if expect is None or fr.type == expect:
                        return fr
        raise TinykdError(self._no_answer_text(msg_type, timeout, retries))

    def _device_error_text(self, msg_type: int, err: P.DeviceErrorMsg) -> str:
        hint = {
            P.ERR_BAD_LENGTH: "The host and the firmware disagree about the model's tensor "
            "sizes: the board runs a different model. Rebuild and flash "
            "the firmware for this model.",
            P.ERR_MODEL_FAILED: "The model call on the device failed; rebuild the firmware "
            "from the current model and check its arena size.",
            P.ERR_UNSUPPORTED: "The firmware on the device does not support this; rebuild "
            "and flash the current firmware.",
            P.ERR_UNKNOWN_TYPE: "The firmware on the device is older or newer than this host; rebuild and flash it.",
        }.get(err.code, "Rebuild and flash the firmware, then try again.")
        name = P.TYPE_NAMES.get(msg_type, hex(msg_type))
        return f"The device at {self.url} answered {name} with an error: {err.text}. {hint}"

    def _no_answer_text(self, msg_type: int, timeout: float, retries: int) -> str:
        name = P.TYPE_NAMES.get(msg_type, hex(msg_type))
        if self.bytes_received and self.decoder.bad_frames and self.info is None:
            return self._garbage_text()
        return (
            f"The device at {self.url} did not answer {name} within {timeout:g} s "
            f"({retries + 1} tries). It may have reset, crashed or been unplugged; "
            "reconnect, re-flash the firmware and try again."
        )

    def _garbage_text(self) -> str:
        return (
            f"The device at {self.url} sends data ({self.bytes_received} bytes), but "
            "not in the tinykd protocol: this is the wrong port, the board runs other "
            "firmware, or the baud rate is wrong. Check --port, then flash the tinykd "
            "firmware (`tinykd flash`)."
        )

    # ---------------------------------------------------------------- messages

    def connect(self, timeout: float = 15.0, interval: float = 0.25) -> P.Pong:
        """Open the port and PING until the device answers (output sent before the host
        connected is lost on QEMU, and a long-booted board is silent: the host speaks first)."""
        self.open()
        deadline = time.monotonic() + timeout
        seq = self._next_seq()
        while True:
            self._send(P.PING, seq)
            step = min(time.monotonic() + interval, deadline)
            while True:
                frames = self._read_frames(step)
                if not frames:
                    break
                for fr in frames:
                    if fr.type == P.PONG and fr.seq == seq:
                        pong = P.Pong.decode(fr.payload)
                        if pong.version != P.PROTOCOL_VERSION:
                            raise TinykdError(
                                f"The device at {self.url} speaks tinykd protocol version "
                                f"{pong.version}, this host version {P.PROTOCOL_VERSION}. "
                                "Rebuild and flash the firmware with this tinykd."
                            )
                        self.max_payload = min(pong.max_payload, P.MAX_PAYLOAD)
                        return pong
            if time.monotonic() >= deadline:
                if self.bytes_received:
                    raise TinykdError(self._garbage_text())
                raise TinykdError(
                    f"No answer from a device at {self.url} within {timeout:g} s. The port "
                    "may be the wrong one, the board may not run the tinykd firmware (flash it "
                    "with `tinykd flash`), or it may be stuck: press reset and try again."
                )

    def hello(self) -> P.DeviceInfo:
        fr = self.request(P.HELLO, expect=P.INFO)
        try:
            self.info = P.DeviceInfo.decode(fr.payload)
        except P.ProtocolError as e:
            raise TinykdError(
                f"The device at {self.url} sent a malformed INFO ({e}). Rebuild "
                "and flash the firmware with this tinykd."
            ) from e
        return self.info

    def _upload(self, msg_type: int, data: bytes, chunk: int, what: str) -> None:
        """Send `data` in chunks of (offset, bytes) payloads, each acknowledged with LOADED."""
        for off in range(0, len(data), chunk):
            part = data[off : off + chunk]
            got = P.Loaded.decode(self.request(msg_type, P.load_payload(off, part), expect=P.LOADED).payload)
            if (got.offset, got.length) != (off, len(part)):
                raise TinykdError(
                    f"The device at {self.url} acknowledged the wrong {what} chunk; "
                    "the link is unreliable. Reconnect and retry."
                )

    def infer(self, x: bytes, *, timeout: float | None = None) -> P.Result:
        """Run the model once on the device; `x` are the input's int8 values as bytes."""
        x = bytes(x)
        if len(x) <= self.max_payload:
            fr = self.request(P.INFER, x, expect=P.RESULT, timeout=timeout)
        else:
            self._upload(P.LOAD, x, self.max_payload - 4, "input")
            fr = self.request(P.INFER, b"", expect=P.RESULT, timeout=timeout)
        return P.Result.decode(fr.payload)

    def infer_audio(self, audio, *, timeout: float | None = None) -> P.AudioResult:
        """Send one clip of int16 audio (16000 samples) in chunks and run the device's
        feature extractor and model on it."""
        import numpy as np

        a = np.asarray(audio)
        if (
            a.shape != (16000,)
            or not np.issubdtype(a.dtype, np.integer)
            or (a.size and (a.min() < -32768 or a.max() > 32767))
        ):
            raise TinykdError(
                f"INFER_AUDIO takes one clip of 16000 int16 samples (1 s at 16 kHz); "
                f"got shape {a.shape}, dtype {a.dtype}. Pad or trim it first "
                "(tinykd.data.kws.speech_commands.fit_length)."
            )
        data = a.astype("<i2").tobytes()
        # Whole samples per chunk: the device stores the clip as int16.
        self._upload(P.INFER_AUDIO, data, (self.max_payload - 4) // 2 * 2, "audio")
        fr = self.request(P.INFER_AUDIO, b"", expect=P.AUDIO_RESULT, timeout=timeout)
        try:
            return P.AudioResult.decode(fr.payload)
        except P.ProtocolError as e:
            raise TinykdError(
                f"The device at {self.url} sent a malformed AUDIO_RESULT ({e}). "
                "Rebuild and flash the firmware with this tinykd."
            ) from e

    def send_exit(self, code: int = 0) -> None:
        """Ask the firmware to exit (QEMU ends with `code`). No reply is expected."""
        self._send(P.EXIT, self._next_seq(), bytes([code & 0xFF]))
