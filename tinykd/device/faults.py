"""Serial faults on purpose: a relay that damages the bytes between the host and a device.

    with QemuInstance(board, elf) as q, FaultProxy(q.url, rate=1e-3, seed=1) as proxy:
        run_on_device(board, None, x, expected_sha256=sha, port=proxy.url)

`FaultProxy` listens on a local TCP port (`proxy.url`, a `socket://` address any DeviceLink
opens) and forwards to the device's socket (a QEMU serial port). Each byte it forwards, in
either direction, is damaged with probability `rate`: dropped, flipped (one bit), sent twice,
or held back `delay` seconds (the link stalls), the kind drawn at random. `close_link()` hangs
up on the host (as an unplugged USB serial adapter does); `switch(url)` connects the host's
side to another device socket without the host noticing (a device reset: the state behind
the link is new, the link is not).

`soak(...)` is the measurement: a QEMU board behind the proxy, the link closed and the device
reset (QEMU restarted) at set intervals, the run resumed from its partial results whenever it
stops, every result compared with a fault-free reference. `python -m tinykd.device.faults
--help` runs it for an int8 .tflite model (benchmarks/reliability.md).
"""

from __future__ import annotations

import argparse
import contextlib
import random
import select
import socket
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from tinykd.errors import TinykdError

KINDS = ("drop", "flip", "duplicate", "delay")


def _address(url: str) -> tuple[str, int]:
    rest = url.removeprefix("socket://")
    host, _, port = rest.rpartition(":")
    if not host or not port.isdigit():
        raise TinykdError(f"{url!r} is not a socket://HOST:PORT address.")
    return host, int(port)


class FaultProxy:
    """A TCP relay from `self.url` to `upstream` that damages bytes at `rate` per byte."""

    def __init__(
        self, upstream: str, *, rate: float, seed: int = 0, kinds: tuple[str, ...] = KINDS, delay: float = 0.05
    ):
        if not 0.0 <= rate < 1.0 or not kinds or set(kinds) - set(KINDS):
            raise TinykdError(f"FaultProxy needs 0 <= rate < 1 and kinds from {KINDS}; got {rate}, {kinds}.")
        self.upstream = upstream
        self.rate = rate
        self.kinds = tuple(kinds)
        self.delay = delay
        self.faults = {f"{way} {kind}": 0 for way in ("to device", "to host") for kind in self.kinds}
        self.forwarded = 0
        self._rng = {"to device": random.Random(seed), "to host": random.Random(seed + 1)}
        self._listen = socket.socket()
        self._listen.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listen.bind(("127.0.0.1", 0))
        self._listen.listen(4)
        self.port = self._listen.getsockname()[1]
        self._client: socket.socket | None = None
        self._up: socket.socket | None = None
        self._commands: list[tuple[str, str | None]] = []
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tinykd-fault-proxy", daemon=True)

    @property
    def url(self) -> str:
        return f"socket://127.0.0.1:{self.port}"

    def start(self) -> FaultProxy:
        self._thread.start()
        return self

    def close_link(self) -> None:
        """Hang up on the host (it sees the port close); the next connection is served again."""
        with self._lock:
            self._commands.append(("close", None))

    def switch(self, upstream: str) -> None:
        """Forward to another device socket from now on, keeping the host's connection."""
        with self._lock:
            self._commands.append(("switch", upstream))

    def close(self) -> None:
        self._closed.set()
        self._thread.join(2)
        for s in (self._client, self._up, self._listen):
            if s is not None:
                with contextlib.suppress(OSError):
                    s.close()

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    # ---------------------------------------------------------------- the relay

    def _connect_up(self) -> socket.socket | None:
        deadline = time.monotonic() + 5.0
        while not self._closed.is_set():
            try:
                s = socket.create_connection(_address(self.upstream), timeout=1.0)
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                return s
            except OSError:
                if time.monotonic() > deadline:
                    return None
                time.sleep(0.05)
        return None

    def _drop(self, which: str) -> None:
        s = self._client if which == "client" else self._up
        if s is not None:
            with contextlib.suppress(OSError):
                s.close()
        if which == "client":
            self._client = None
        else:
            self._up = None

    def _damage(self, data: bytes, way: str) -> tuple[bytes, bool]:
        """The bytes to forward, and whether to hold them back `delay` s first."""
        if not self.rate:
            return data, False
        rng = self._rng[way]
        out = bytearray()
        stall = False
        for b in data:
            if rng.random() >= self.rate:
                out.append(b)
                continue
            kind = rng.choice(self.kinds)
            self.faults[f"{way} {kind}"] += 1
            if kind == "flip":
                out.append(b ^ (1 << rng.randrange(8)))
            elif kind == "duplicate":
                out += bytes([b, b])
            elif kind == "delay":
                out.append(b)
                stall = True
            # drop: nothing
        return bytes(out), stall

    def _forward(self, data: bytes, way: str, dest: socket.socket) -> None:
        out, stall = self._damage(data, way)
        if stall:
            time.sleep(self.delay)
        self.forwarded += len(data)
        dest.sendall(out)

    def _run(self) -> None:
        self._listen.settimeout(0.05)
        while not self._closed.is_set():
            with self._lock:
                commands, self._commands = self._commands, []
            for cmd, arg in commands:
                if cmd == "close":
                    self._drop("client")
                    self._drop("up")
                elif cmd == "switch":
                    self.upstream = arg
                    self._drop("up")
            if self._client is None:
                try:
                    self._client, _ = self._listen.accept()
                    self._client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                except (TimeoutError, OSError):
                    continue
            if self._up is None:
                self._up = self._connect_up()
                if self._up is None:
                    self._drop("client")  # no device behind us: the host sees the port close
                    continue
            try:
                ready, _, _ = select.select([self._client, self._up], [], [], 0.05)
            except (OSError, ValueError):
                self._drop("client")
                self._drop("up")
                continue
            for s in ready:
                try:
                    data = s.recv(4096)
                except OSError:
                    data = b""
                if s is self._client:
                    if not data:  # the host hung up: so does the device side
                        self._drop("client")
                        self._drop("up")
                        break
                    try:
                        self._forward(data, "to device", self._up)
                    except OSError:
                        self._drop("up")
                else:
                    if not data:  # the device went away (killed for a reset): reconnect later
                        self._drop("up")
                        continue
                    try:
                        self._forward(data, "to host", self._client)
                    except OSError:
                        self._drop("client")
                        self._drop("up")


# ---------------------------------------------------------------- the soak measurement


@dataclass
class SoakResult:
    rate: float
    inferences: int
    wrong_results: int  # results differing from the fault-free reference: must be 0
    inferences_retried: int
    resends: int
    reconnects: int
    resets_detected: int
    rejected_results: int
    link_closes: int  # injected
    device_resets: int  # injected
    stops: list[str] = field(default_factory=list)  # each stop's message; the run resumed after it
    completed: bool = False
    seconds: float = 0.0
    faults: dict = field(default_factory=dict)


def soak(
    board,
    elf: str | Path,
    x_int8: np.ndarray,
    reference: np.ndarray,
    *,
    expected_sha256: str,
    rate: float,
    partial: str | Path,
    seed: int = 0,
    close_every: float = 0.0,
    reset_every: float = 0.0,
    timeout: float = 0.5,
    max_stops: int = 20,
    progress: bool = False,
) -> SoakResult:
    """Stream x_int8 to a QEMU `board` running `elf` through a FaultProxy at `rate`, hanging up
    every `close_every` s and restarting QEMU every `reset_every` s (0: never); resume from
    `partial` after every stop. Counts the results that differ from `reference`."""
    from tinykd.boards import load_board
    from tinykd.device.qemu import QemuInstance
    from tinykd.device.run import LinkStats, PartialResults, PortLinks, features_job, inputs_digest, stream_job

    board = load_board(board)
    Path(partial).unlink(missing_ok=True)
    job = features_job(x_int8)
    key = {"soak": 1, "rate": rate, "seed": seed, "inputs_sha256": inputs_digest(job.rows)}
    result = SoakResult(rate, len(x_int8), 0, 0, 0, 0, 0, 0, 0, 0)
    devices = [QemuInstance(board, elf, time_limit=7200).start()]
    proxy = FaultProxy(devices[0].url, rate=rate, seed=seed).start()
    done = threading.Event()
    stats = LinkStats()  # over every attempt, the stopped ones too

    def chaos() -> None:
        next_close = time.monotonic() + close_every if close_every else float("inf")
        next_reset = time.monotonic() + reset_every if reset_every else float("inf")
        while not done.wait(0.05):
            now = time.monotonic()
            if now >= next_close:
                proxy.close_link()
                result.link_closes += 1
                next_close = now + close_every
            if now >= next_reset:
                fresh = QemuInstance(board, elf, time_limit=7200).start()
                proxy.switch(fresh.url)
                devices[-1].close()  # the old device is gone: a reset loses all its state
                devices.append(fresh)
                result.device_resets += 1
                next_reset = now + reset_every

    thread = threading.Thread(target=chaos, name="tinykd-soak-chaos", daemon=True)
    started = time.perf_counter()
    thread.start()
    try:
        while True:
            links = PortLinks(proxy.url, timeout=timeout)
            try:
                streamed = stream_job(
                    job,
                    links,
                    expected_sha256_hex=expected_sha256,
                    partial=PartialResults(partial, key),
                    progress=progress,
                    desc=f"rate {rate:g}",
                    stats=stats,
                )
            except TinykdError as e:
                result.stops.append(str(e))
                if len(result.stops) > max_stops:
                    break
                continue
            result.completed = True
            outputs = streamed.columns["outputs"]
            result.wrong_results = int(np.any(outputs != reference.reshape(outputs.shape), axis=1).sum())
            break
    finally:
        done.set()
        thread.join(5)
        proxy.close()
        for d in devices:
            d.close()
        result.seconds = round(time.perf_counter() - started, 1)
        result.faults = dict(proxy.faults)
        _add_stats(result, stats)
    Path(partial).unlink(missing_ok=True)
    return result


def _add_stats(result: SoakResult, stats) -> None:
    result.inferences_retried = stats.inferences_retried
    result.resends = stats.resends
    result.reconnects = stats.reconnects
    result.resets_detected = stats.resets
    result.rejected_results = stats.rejected_results


def main(argv: list[str] | None = None) -> int:
    """Measure a model's run over a faulty link at several rates; print a Markdown table."""
    ap = argparse.ArgumentParser(prog="python -m tinykd.device.faults", description=main.__doc__)
    ap.add_argument("--model", required=True, help="an int8 .tflite model (small: faults grow with frame size)")
    ap.add_argument("--board", default="mps2-an386")
    ap.add_argument("--n", type=int, default=2000, help="inferences per rate")
    ap.add_argument("--rates", default="1e-4,1e-3,1e-2")
    ap.add_argument("--close-every", type=float, default=20.0, help="seconds between hang-ups (0: none)")
    ap.add_argument("--reset-every", type=float, default=30.0, help="seconds between device resets (0: none)")
    ap.add_argument("--out", default="build/reliability")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    import json
    import math

    from tinykd.device.evaluate import random_inputs, run_on_device
    from tinykd.evaluate import int8_outputs_tflm
    from tinykd.fileio import write_json
    from tinykd.firmware.build import build_firmware

    out = Path(args.out)
    fw = build_firmware(args.model, args.board, out / "firmware")
    shape = fw.sources.input_shape
    x = random_inputs(args.n, math.prod(shape), args.seed)
    host = int8_outputs_tflm(args.model, x.reshape(args.n, *shape[1:])).reshape(args.n, -1)
    t0 = time.perf_counter()
    clean = run_on_device(args.board, fw.build.elf, x, expected_sha256=fw.sources.sha256, instances=1, progress=False)
    clean_seconds = time.perf_counter() - t0
    mismatches = int(np.any(clean.outputs != host, axis=1).sum())
    rows = [
        {"rate": 0.0, "wrong_results": mismatches, "seconds": round(clean_seconds, 1), "note": "fault-free vs host"}
    ]
    print(f"fault-free: {args.n} inferences, {mismatches} differ from TFLite Micro, {clean_seconds:.1f} s", flush=True)
    for rate in (float(r) for r in args.rates.split(",")):
        r = soak(
            args.board,
            fw.build.elf,
            x,
            clean.outputs,
            expected_sha256=fw.sources.sha256,
            rate=rate,
            partial=out / f"partial-{rate:g}.npz",
            seed=args.seed,
            close_every=args.close_every,
            reset_every=args.reset_every,
        )
        rows.append(asdict(r))
        print(json.dumps(asdict(r)), flush=True)
        write_json(
            out / "reliability.json",
            {"model": args.model, "board": args.board, "frame_inputs": x.shape[1], "rows": rows},
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
