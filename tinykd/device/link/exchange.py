"""The request half of DeviceLink: one request and its reply, sent again on silence, on damage
and on a device error seen once, with the link reopened (and re-handshaken) when it closed.

The methods work on the attributes DeviceLink.__init__ sets; `_rehandshake` is DeviceLink's
(tinykd.device.link.session).
"""

from __future__ import annotations

import time

from tinykd.device import protocol as P
from tinykd.device.link.port import _Disconnected, _Port
from tinykd.errors import TinykdError


class _Resend(Exception):
    """The answer arrived, but damaged: send the request again at once."""


_SKIP = object()  # a valid answer, but to an earlier session: keep waiting


class _Exchange(_Port):
    """Sequence numbers, request/reply with resends and reconnects, and the texts of its
    failures (a part of DeviceLink)."""

    def _next_seq(self) -> int:
        self._seq = (self._seq + 1) & 0xFFFF or 1  # 0 is kept for the device's BAD_FRAME
        return self._seq

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
