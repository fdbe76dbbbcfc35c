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

`port` opens the transport and moves frames, `exchange` sends a request until its reply
comes (resends, reconnects), `session` is DeviceLink itself: the handshake and the messages.
"""

from tinykd.device.link.port import LinkCancelled
from tinykd.device.link.session import DeviceLink

__all__ = ["DeviceLink", "LinkCancelled"]
