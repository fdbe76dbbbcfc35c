"""A conversation with a tinykd device over any serial transport pyserial can open.

    link = DeviceLink("socket://127.0.0.1:4444")    # QEMU; or "/dev/ttyACM0", a pty, ...
    link.connect()                                 # PING until the device answers
    info = link.hello()                            # DeviceInfo; starts a session
    res = link.infer(x_bytes)                      # Result(count, output, ...)
    prof = link.profile(x_bytes)                   # ProfileResult(mark_cost, output_crc, marks)

Boot banners and line noise are skipped (the frame decoder resynchronises on the next zero
byte). A request is sent again when its answer does not come in time, when the device says
the request arrived damaged, or when the answer arrives damaged; a device error is believed
only when the same request gets it twice. A result is taken only when its trailer checks out:
its own CRC-32, the session this link set with HELLO (a device that reset answers with
session 0: the link re-handshakes, checks the device still runs the same model, and runs the
input again) and the CRC-32 of the input the device ran on (it must be the host's). A link
that closes (QEMU socket, USB serial that re-enumerates) is reopened and re-handshaken.
Sequence numbers start at a random value and carry on across reconnections, so no reply
from an earlier connection can pass for a current one. Every failure the user can act on is
a TinykdError; `cancel` (a threading.Event) stops any wait within ~50 ms (LinkCancelled).
"""

from __future__ import annotations

import secrets
import socket
import threading
import time
import zlib

import serial

from tinykd.device import protocol as P
from tinykd.errors import TinykdError


class LinkCancelled(Exception):
    """The link's cancel event was set (Ctrl-C, or another worker failed): not an error to report."""


class _Disconnected(TinykdError):
    """Reading or writing failed: the device or the link went away."""


class _Resend(Exception):
    """The answer arrived, but damaged: send the request again at once."""


class _DeviceWasReset(Exception):
    """A result with session 0: the device lost its state since our HELLO."""


_SKIP = object()  # a valid answer, but to an earlier session: keep waiting


class DeviceLink:
    def __init__(
        self,
        url: str,
        *,
        baud: int = 115200,
        timeout: float = 2.0,
        retries: int = 3,
        open_timeout: float = 10.0,
        noisy_retries: int = 30,
        reconnects: int = 3,
        reconnect_timeout: float = 5.0,
        cancel: threading.Event | None = None,
    ):
        self.url = url
        self.baud = baud
        self.timeout = timeout
        self.retries = retries  # resends after a silent timeout
        self.noisy_retries = noisy_retries  # resends because something arrived damaged
        self.max_reconnects = reconnects  # per request
        self.reconnect_timeout = reconnect_timeout
        self.open_timeout = open_timeout
        self.cancel = cancel
        self.ser: serial.SerialBase | None = None
        self.decoder = P.FrameDecoder()
        self.bytes_received = 0
        self.bad_frames = 0
        self.resends = 0  # requests sent again
        self.reconnects = 0  # link reopened after it closed
        self.resets = 0  # device resets detected (result with session 0)
        self.rejected = 0  # results refused: not computed from the host's input
        self.max_payload = P.MAX_PAYLOAD
        self.info: P.DeviceInfo | None = None
        self.session: int | None = None
        self._first_info: P.DeviceInfo | None = None
        self._recovering = False
        # a random start: replies to an earlier connection (of this run or another) do not
        # carry the sequence numbers this one expects
        self._seq = secrets.randbelow(0xFFFF) + 1

    @property
    def trouble(self) -> int:
        """How often this link had to do something again (resends, reconnects, resets, rejects)."""
        return self.resends + self.reconnects + self.resets + self.rejected

    # ---------------------------------------------------------------- opening

    def open(self) -> DeviceLink:
        if self.ser is not None:
            return self
        deadline = time.monotonic() + self.open_timeout
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

    def _check_cancel(self) -> None:
        if self.cancel is not None and self.cancel.is_set():
            raise LinkCancelled()

    def _next_seq(self) -> int:
        self._seq = (self._seq + 1) & 0xFFFF or 1  # 0 is kept for the device's BAD_FRAME
        return self._seq

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

    # ---------------------------------------------------------------- requests

    def request(
        self,
        msg_type: int,
        payload: bytes = b"",
        expect: int | None = None,
        *,
        timeout: float | None = None,
        retries: int | None = None,
        decode=None,
    ):
        """Send one request and return the matching reply frame (same seq, type `expect`), or
        `decode(payload)` of it when `decode` is given (a ProtocolError from it means the reply
        arrived damaged: the request is sent again).

        Resends on timeout (up to `retries` times), at once when the device reports a damaged
        frame or a damaged frame arrives (up to `noisy_retries` times), and reopens a link
        that closed (up to `reconnects` times). A device ERROR about the request raises
        TinykdError when a resend of the request gets it again.
        """
        if self.ser is None:
            self.open()
        timeout = self.timeout if timeout is None else timeout
        retries = self.retries if retries is None else retries
        seq = self._next_seq()
        silent = noisy = reconnected = 0
        device_error: P.DeviceErrorMsg | None = None
        while True:
            try:
                reply = self._exchange(msg_type, seq, payload, expect, timeout, decode)
            except _Disconnected as lost:
                if self._recovering:
                    raise
                error = lost
                while True:  # reopen and handshake again, a few times
                    if reconnected >= self.max_reconnects:
                        raise error from None
                    reconnected += 1
                    try:
                        self._reconnect(error)
                        break
                    except _Disconnected as again:
                        if again is error:
                            raise error from None  # the port did not come back
                        error = again
                seq = self._next_seq()
                continue
            except _Resend:
                noisy += 1
                if noisy > self.noisy_retries:
                    raise TinykdError(self._too_noisy_text(msg_type)) from None
                self.resends += 1
                continue
            if isinstance(reply, P.DeviceErrorMsg):
                if device_error == reply:
                    raise TinykdError(self._device_error_text(msg_type, reply))
                device_error = reply  # believed when a resend gets it again (not line noise)
                self.resends += 1
                continue
            if reply is None:
                silent += 1
                if silent > retries:
                    raise TinykdError(self._no_answer_text(msg_type, timeout, retries))
                self.resends += 1
                continue
            return reply

    def _exchange(self, msg_type, seq, payload, expect, timeout, decode):
        """Send once and wait: the reply (decoded if asked), a DeviceErrorMsg, or None on
        timeout; raises _Resend when something came back damaged."""
        self._send(msg_type, seq, payload)
        deadline = time.monotonic() + timeout
        while True:
            frames = self._read_frames(deadline)
            if not frames:
                if self._damaged:
                    raise _Resend()
                return None
            for fr in frames:
                if fr.type == P.ERROR and fr.seq == 0:
                    try:
                        err = P.DeviceErrorMsg.decode(fr.payload)
                    except P.ProtocolError:
                        continue
                    if err.code in (P.ERR_BAD_FRAME, P.ERR_TOO_LONG):
                        raise _Resend()  # our frame arrived damaged
                    continue
                if fr.seq != seq:
                    continue  # a stale reply to an earlier request
                if fr.type == P.ERROR:
                    try:
                        return P.DeviceErrorMsg.decode(fr.payload)
                    except P.ProtocolError:
                        raise _Resend() from None
                if expect is not None and fr.type != expect:
                    continue
                if decode is None:
                    return fr
                try:
                    value = decode(fr.payload)
                except P.ProtocolError:
                    raise _Resend() from None
                if value is not _SKIP:
                    return value

    def _too_noisy_text(self, msg_type: int) -> str:
        name = P.TYPE_NAMES.get(msg_type, hex(msg_type))
        return (
            f"The link to {self.url} is too noisy: {name} was sent {self.noisy_retries + 1} times "
            "and every answer (or the request) arrived damaged. Check the cable, the baud rate "
            "and the USB hub, then run the same command again (finished results are kept)."
        )

    # ---------------------------------------------------------------- recovering

    def _reconnect(self, lost: _Disconnected) -> None:
        """The link closed: reopen it (for up to `reconnect_timeout` s) and handshake again.
        If the port does not come back, `lost` is the error."""
        self.reconnects += 1
        self.close()
        time.sleep(0.05)
        self._recovering = True
        saved, self.open_timeout = self.open_timeout, min(self.open_timeout, self.reconnect_timeout)
        try:
            try:
                self.open()
            except TinykdError:
                raise lost from None
            self._rehandshake()
        finally:
            self._recovering = False
            self.open_timeout = saved

    def _rehandshake(self) -> None:
        """PING and HELLO again (a new session), and make sure it is still the same device
        running the same model as at the first HELLO."""
        was_recovering, self._recovering = self._recovering, True
        try:
            self.drain()
            self.connect()
            before = self._first_info
            info = self.hello()
            if before is not None and info != before:
                raise TinykdError(
                    f"The device at {self.url} reset or reconnected and now runs other firmware "
                    f"(model {info.model_name!r}, hash {info.model_hash.hex()}; before: "
                    f"{before.model_name!r}, hash {before.model_hash.hex()}). Results from two "
                    "different firmwares are not mixed: flash the firmware for this model and "
                    "run the same command again."
                )
        finally:
            self._recovering = was_recovering

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
        if self.bytes_received and self.bad_frames and self.info is None:
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
        """Ask for the device's INFO and start a new session: results carry its number, and a
        device that resets forgets it (answers with session 0)."""
        session = secrets.randbits(32) or 1
        fr = self.request(P.HELLO, session.to_bytes(4, "little"), expect=P.INFO)
        try:
            info = P.DeviceInfo.decode(fr.payload)
        except P.ProtocolError as e:
            raise TinykdError(
                f"The device at {self.url} sent a malformed INFO ({e}). Rebuild "
                "and flash the firmware with this tinykd."
            ) from e
        self.info, self.session = info, session
        if self._first_info is None:
            self._first_info = info
        return info

    def _result_decoder(self, cls):
        """decode= for RESULT/AUDIO_RESULT: checks the trailer's CRC (ProtocolError) and session."""

        def decode(payload: bytes):
            res = cls.decode(payload)
            if res.session == 0:
                raise _DeviceWasReset()
            if res.session != self.session:
                return _SKIP  # computed for an earlier session: not ours
            return res

        return decode

    def _run_checked(self, what: str, crc: int, attempt):
        """Run `attempt()` (one upload and run) until a result computed from the host's input
        comes back; re-handshake after a device reset."""
        if self.session is None:
            self.hello()
        resets = rejected = 0
        while True:
            try:
                res = attempt()
            except _DeviceWasReset:
                resets += 1
                self.resets += 1
                if resets > self.max_reconnects:
                    raise TinykdError(
                        f"The device at {self.url} reset {resets} times while running one {what}: "
                        "it may crash on this input or lose power. Check the board's supply and "
                        "the firmware's arena size, then run the same command again."
                    ) from None
                self._rehandshake()
                continue
            if res.input_crc == crc:
                return res
            rejected += 1
            self.rejected += 1  # the device ran on something else: damaged on the way in
            if rejected > self.noisy_retries:
                raise TinykdError(self._too_noisy_text(P.INFER))

    def _upload(self, msg_type: int, data: bytes, chunk: int, what: str) -> None:
        """Send `data` in chunks of (offset, bytes) payloads, each acknowledged with LOADED."""
        for off in range(0, len(data), chunk):
            part = data[off : off + chunk]

            want = (off, len(part))

            def acknowledged(payload: bytes, want=want) -> P.Loaded:
                got = P.Loaded.decode(payload)
                if (got.offset, got.length) != want:
                    raise P.ProtocolError(f"LOADED for the wrong {what} chunk")
                return got

            self.request(msg_type, P.load_payload(off, part), expect=P.LOADED, decode=acknowledged)

    def infer(self, x: bytes, *, timeout: float | None = None) -> P.Result:
        """Run the model once on the device; `x` are the input's int8 values as bytes."""
        x = bytes(x)
        decode = self._result_decoder(P.Result)

        def attempt() -> P.Result:
            if len(x) <= self.max_payload:
                return self.request(P.INFER, x, expect=P.RESULT, timeout=timeout, decode=decode)
            self._upload(P.LOAD, x, self.max_payload - 4, "input")
            return self.request(P.INFER, b"", expect=P.RESULT, timeout=timeout, decode=decode)

        return self._run_checked("input", zlib.crc32(x), attempt)

    def profile(self, x: bytes, *, timeout: float | None = None) -> P.ProfileResult:
        """Run the model once on the device through its per-layer profile entry: the counter
        after every layer that runs code (PROFILE_RESULT); `x` as for infer."""
        x = bytes(x)
        decode = self._result_decoder(P.ProfileResult)

        def attempt() -> P.ProfileResult:
            if len(x) <= self.max_payload:
                return self.request(P.PROFILE, x, expect=P.PROFILE_RESULT, timeout=timeout, decode=decode)
            self._upload(P.LOAD, x, self.max_payload - 4, "input")
            return self.request(P.PROFILE, b"", expect=P.PROFILE_RESULT, timeout=timeout, decode=decode)

        return self._run_checked("input", zlib.crc32(x), attempt)

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
        decode = self._result_decoder(P.AudioResult)

        def attempt() -> P.AudioResult:
            # Whole samples per chunk: the device stores the clip as int16.
            self._upload(P.INFER_AUDIO, data, (self.max_payload - 4) // 2 * 2, "audio")
            return self.request(P.INFER_AUDIO, b"", expect=P.AUDIO_RESULT, timeout=timeout, decode=decode)

        return self._run_checked("clip", zlib.crc32(data), attempt)

    def send_exit(self, code: int = 0) -> None:
        """Ask the firmware to exit (QEMU ends with `code`). No reply is expected."""
        self._send(P.EXIT, self._next_seq(), bytes([code & 0xFF]))
