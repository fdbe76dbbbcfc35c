"""DeviceLink: the session with a tinykd device (PING, HELLO, the same model after a reset) and
the messages run in it (INFER, PROFILE, INFER_AUDIO, EXIT), each result checked against the
session and the host's input. Opening is in `port`, request/reply with retries in `exchange`.
"""

from __future__ import annotations

import secrets
import threading
import time
import zlib

import serial

from tinykd.device import protocol as P
from tinykd.device.link.exchange import _SKIP, _Exchange
from tinykd.errors import TinykdError


class _DeviceWasReset(Exception):
    """A result with session 0: the device lost its state since our HELLO."""


class DeviceLink(_Exchange):
    """A link to one device (see tinykd.device.link for what it checks and retries)."""

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

    # ---------------------------------------------------------------- session

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
        return self._run_input(P.INFER, P.RESULT, P.Result, x, timeout)

    def profile(self, x: bytes, *, timeout: float | None = None) -> P.ProfileResult:
        """Run the model once on the device through its per-layer profile entry: the counter
        after every layer that runs code (PROFILE_RESULT); `x` as for infer."""
        return self._run_input(P.PROFILE, P.PROFILE_RESULT, P.ProfileResult, x, timeout)

    def _run_input(self, msg_type: int, expect: int, result_cls, x: bytes, timeout: float | None):
        """INFER or PROFILE on input `x`: sent with the request when it fits one payload, else
        uploaded with LOAD first; the answer of type `expect` is decoded by `result_cls`."""
        x = bytes(x)
        decode = self._result_decoder(result_cls)

        def attempt():
            if len(x) <= self.max_payload:
                return self.request(msg_type, x, expect=expect, timeout=timeout, decode=decode)
            self._upload(P.LOAD, x, self.max_payload - 4, "input")
            return self.request(msg_type, b"", expect=expect, timeout=timeout, decode=decode)

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
