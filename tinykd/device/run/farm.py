"""A device farm on Ray: the devices of every node of a cluster, one Ray actor each, feeding the
same streaming loop as local links.

Each `DeviceActor` owns one device on the node it runs on: a QEMU instance it starts there (for a
virtual board; the ELF travels in the actor's arguments through Ray's object store), or one board
plugged into that node, found by its USB vendor id. On the driver a `RemoteLink` stands in for a
DeviceLink: the job's per-inference code (tinykd.device.run.jobs) calls it as it calls a local
link, each inference is one actor call, and the results land in the driver's PartialResults by
input index — so the shards merge in input order, the 0-mismatch check is the one the local run
makes, and an interrupted farm run resumes per sample like any other.

    with ray_session(RayOptions(address="10.0.0.5:6379"), out):
        run = run_on_device(board, elf, x, expected_sha256=sha, farm=FarmLinks(board, elf))

`FarmLinks` has the interface of QemuLinks/PortLinks (count, open, where).
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path

from tinykd.boards import Board, load_board
from tinykd.device.link import DeviceLink, LinkCancelled
from tinykd.errors import TinykdError


class DeviceActor:
    """One device on the node this actor runs on (used as a Ray actor: see FarmLinks)."""

    def __init__(self, board_name: str, elf_bytes: bytes | None, port: str | None, timeout: float, time_limit: float):
        import ray

        from tinykd.device.qemu import QemuInstance

        board = load_board(board_name)
        self.node = ray.get_runtime_context().get_node_id()
        self.qemu = None
        self.tmp = None
        if port is None:
            self.tmp = Path(tempfile.mkdtemp(prefix="tinykd-farm-"))
            elf = self.tmp / "firmware.elf"
            elf.write_bytes(elf_bytes)
            self.qemu = QemuInstance(board, elf, time_limit=time_limit).start()
            port = self.qemu.url
        self.link = DeviceLink(port, baud=board.baud, timeout=timeout)
        self.link.open()

    def _counters(self) -> tuple[int, int, int, int]:
        return (self.link.resends, self.link.reconnects, self.link.resets, self.link.rejected)

    def where(self) -> tuple[str, str]:
        """(this node's Ray id, the device's serial address on it)."""
        return self.node, self.link.url

    def connect(self):
        return self.link.connect()

    def hello(self):
        return self.link.hello(), self._counters()

    def infer(self, data: bytes):
        return self.link.infer(data), self._counters()

    def infer_audio(self, clip):
        return self.link.infer_audio(clip), self._counters()

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.link.close()
        if self.qemu is not None:
            self.qemu.close()
        if self.tmp is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)


class RemoteLink:
    """A DeviceLink's face on the driver for a device owned by a DeviceActor."""

    def __init__(self, actor, where: str, cancel: threading.Event):
        self.actor = actor
        self.url = where
        self.cancel = cancel
        self.info = None
        self.resends = self.reconnects = self.resets = self.rejected = 0

    @property
    def trouble(self) -> int:
        return self.resends + self.reconnects + self.resets + self.rejected

    def _call(self, method, *args):
        import ray

        try:
            return ray.get(method.remote(*args))
        except (ray.exceptions.RayActorError, ray.exceptions.TaskCancelledError):
            if self.cancel.is_set():
                raise LinkCancelled() from None
            raise TinykdError(
                f"The device actor at {self.url} died (its node left the cluster, or its QEMU or board went "
                "away). The results so far are kept: run the same command again to resume."
            ) from None
        except ray.exceptions.RayTaskError as e:
            raise e.as_instanceof_cause() from None

    def _take(self, answer):
        value, (self.resends, self.reconnects, self.resets, self.rejected) = answer
        return value

    def locate(self) -> tuple[str, str]:
        """(node id, the device's serial address on it); the link's url names both from now on."""
        node_id, device = self._call(self.actor.where)
        self.url = f"{device} on node {node_id[:8]}"
        return node_id, device

    def connect(self):
        return self._call(self.actor.connect)

    def hello(self):
        self.info = self._take(self._call(self.actor.hello))
        return self.info

    def infer(self, data: bytes, *, timeout: float | None = None):
        return self._take(self._call(self.actor.infer, data))

    def infer_audio(self, clip, *, timeout: float | None = None):
        return self._take(self._call(self.actor.infer_audio, clip))


class _ActorStopper:
    """What the streaming loop stops on Ctrl-C (it calls .stop() as on a QemuInstance)."""

    def __init__(self, actor):
        self.actor = actor

    def stop(self) -> None:
        import ray

        # close() runs beside a blocked inference (the actor takes two calls at once) and ends
        # QEMU at once; killing the actor alone would leave its QEMU to its own time limit.
        with contextlib.suppress(Exception):
            ray.wait([self.actor.close.remote()], timeout=0.8)
        with contextlib.suppress(Exception):
            ray.kill(self.actor)


def _ports_on_this_node(board_name: str) -> list[str]:
    from tinykd.device.flash import find_ports

    return find_ports(load_board(board_name))


@dataclass
class FarmLinks:
    """The devices of a Ray cluster (Ray must be connected: tinykd.trials.ray_session).

    Virtual boards: `instances` QEMU actors, spread over the nodes, one CPU each. Real boards:
    one actor per board of this kind found by USB vendor id on each node."""

    board: Board
    elf: Path | None
    instances: int = 2
    timeout: float = 5.0
    time_limit: float = 3600.0
    _places: list | None = field(default=None, repr=False)  # (node id or None, port or None) per device
    _next: int = field(default=0, repr=False)
    opened: list = field(default_factory=list)  # (node id, device) of every actor that streamed
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def _devices(self) -> list:
        if self._places is not None:
            return self._places
        import ray

        if not ray.is_initialized():
            raise TinykdError("The device farm needs Ray connected: run it inside tinykd.trials.ray_session.")
        if self.board.is_qemu:
            if self.elf is None or not Path(self.elf).is_file():
                raise TinykdError(
                    f"No firmware ELF for {self.board.name} at {self.elf}. Build it first (`tinykd firmware`)."
                )
            # One CPU per QEMU actor: more actors than the cluster's CPUs would wait forever.
            cpus = int(ray.cluster_resources().get("CPU", 1))
            self._places = [(None, None)] * max(1, min(int(self.instances), cpus))
            return self._places
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        probe = ray.remote(num_cpus=0)(_ports_on_this_node)
        nodes = [n["NodeID"] for n in ray.nodes() if n.get("Alive")]
        found = ray.get(
            [
                probe.options(scheduling_strategy=NodeAffinitySchedulingStrategy(node, soft=False)).remote(
                    self.board.name
                )
                for node in nodes
            ]
        )
        self._places = [(node, port) for node, ports in zip(nodes, found, strict=True) for port in ports]
        if not self._places:
            raise TinykdError(
                f"No {self.board.name} is plugged into any of the cluster's {len(nodes)} nodes (no serial port "
                f"with USB vendor id 0x{self.board.usb_vid:04x}). Plug the boards in and flash them, or run "
                "without --address to use the boards of this machine."
            )
        return self._places

    def count(self, n: int) -> int:
        return max(1, min(len(self._devices()), n))

    def _actor(self, node: str | None, port: str | None):
        import ray
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        if node is None:  # a QEMU instance: anywhere, spread over the nodes, a CPU of its own
            options = {"num_cpus": 1, "scheduling_strategy": "SPREAD"}
            elf = Path(self.elf).read_bytes()
        else:  # the board on that node's port: pinned there, no CPU reserved
            options = {"num_cpus": 0, "scheduling_strategy": NodeAffinitySchedulingStrategy(node, soft=False)}
            elf = None
        cls = ray.remote(max_restarts=0, max_concurrency=2)(DeviceActor)
        return cls.options(**options).remote(self.board.name, elf, port, self.timeout, self.time_limit)

    @contextlib.contextmanager
    def open(self, cancel: threading.Event, started: list):
        import ray

        with self._lock:
            node, port = self._devices()[self._next % len(self._devices())]
            self._next += 1
        actor = self._actor(node, port)
        started.append(_ActorStopper(actor))
        link = RemoteLink(actor, "device actor", cancel)
        try:
            place = link.locate()
            with self._lock:
                self.opened.append(place)
            yield link
        finally:
            with contextlib.suppress(Exception):
                ray.get(actor.close.remote(), timeout=10)
            with contextlib.suppress(Exception):
                ray.kill(actor)

    def where(self, n: int) -> str:
        kind = f"QEMU {self.board.qemu_machine}" if self.board.is_qemu else self.board.name
        nodes = len({node for node, _ in self.opened})
        return f"Ray device farm: {kind} x{self.count(n)}" + (f" on {nodes} node(s)" if nodes else "")
