"""Where trials run: Ray embedded on this machine, or an existing Ray cluster joined by address.

Without an address (no --address, no RAY_ADDRESS) Ray starts inside the command: as many CPUs
as the machine has, no dashboard, its temporary files under the output folder's .cache/ray,
its logging quiet, usage statistics off (nothing leaves the machine). With an address the
command joins the cluster that `ray start --head` began and leaves it running afterwards.

This is also the hook for work that is not a Tune trial: `ray_session` gives any command a
connected Ray (the device farm's actors, one per QEMU instance or board, start from it).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from ..errors import TinykdError

# The longest Unix socket path Linux takes, less what Ray appends to its temporary folder
# (session_<date>_<time>_<usec>_<pid>/sockets/plasma_store).
_SOCKET_PATH_MAX = 107
_RAY_SOCKET_SUFFIX = 64
_ADDRESS = re.compile(r"^(?:[A-Za-z0-9.-]+|\[[0-9A-Fa-f:]+\]):\d{1,5}$")


@dataclass(frozen=True)
class RayOptions:
    """How a command uses Ray. address None: RAY_ADDRESS if set, else Ray embedded here."""

    address: str | None = None
    cpus_per_trial: int = 1
    num_cpus: int | None = None  # embedded Ray only: CPUs it may use (default: the machine's)
    verbose: bool = False  # Ray's own logging and the trials' output on the driver

    def resolved_address(self) -> str | None:
        address = self.address or os.environ.get("RAY_ADDRESS") or None
        if address is not None and address != "auto" and not _ADDRESS.match(address):
            raise TinykdError(
                f"--address {address!r} is not HOST:PORT. Give the address `ray start --head` printed on the "
                "head node, e.g. --address 10.0.0.5:6379, or leave --address and RAY_ADDRESS unset to run "
                "on this machine alone."
            )
        return address

    def check(self) -> None:
        if self.cpus_per_trial < 1:
            raise TinykdError(
                f"--cpus-per-trial must be >= 1 (got {self.cpus_per_trial}): each trial trains with that many "
                "TensorFlow threads on as many of a node's CPUs."
            )
        if self.num_cpus is not None and self.num_cpus < 1:
            raise TinykdError(f"Ray needs at least one CPU to run trials on (got num_cpus={self.num_cpus}).")
        self.resolved_address()


EMBEDDED = RayOptions()  # the default: Ray embedded on this machine, one CPU per trial


def ray_temp_dir(out: Path) -> Path:
    """out/.cache/ray, or, when that is too long for Ray's socket paths, a short folder in the
    system's temporary folder named after out (Ray refuses socket paths over 107 bytes)."""
    preferred = Path(out).resolve() / ".cache" / "ray"
    if len(str(preferred)) + _RAY_SOCKET_SUFFIX <= _SOCKET_PATH_MAX:
        return preferred
    digest = hashlib.sha256(str(preferred).encode()).hexdigest()[:10]
    return Path(tempfile.gettempdir()) / f"tkd-ray-{os.getuid()}-{digest}"


@contextlib.contextmanager
def ray_session(options: RayOptions, out: Path) -> Iterator[dict]:
    """Ray connected for the block: embedded (started and stopped here) or a joined cluster
    (left running). Yields {"address", "embedded", "cpus", "nodes"}."""
    import ray

    options.check()
    address = options.resolved_address()
    # Ray asks a server on the internet about usage statistics unless told not to.
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    quiet = dict(
        include_dashboard=False,
        logging_level=logging.INFO if options.verbose else logging.ERROR,
        log_to_driver=options.verbose,
        configure_logging=True,
    )
    if ray.is_initialized():
        raise TinykdError(
            "Ray is already connected in this process; tinykd starts or joins Ray itself for each command. "
            "Call ray.shutdown() first."
        )
    if address is None:
        temp = ray_temp_dir(out)
        temp.mkdir(parents=True, exist_ok=True)
        cpus = options.num_cpus or os.cpu_count() or 1
        ray.init(num_cpus=cpus, _temp_dir=str(temp), **quiet)
    else:
        try:
            ray.init(address=address, **quiet)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise TinykdError(
                f"Could not join the Ray cluster at {address}: {str(exc).splitlines()[0] if str(exc) else exc}. "
                "Start it with `ray start --head --port PORT` on the head node (and `ray start --address "
                "HEAD:PORT` on the others), check that this machine reaches that port, or leave --address and "
                "RAY_ADDRESS unset to run on this machine alone."
            ) from None
    try:
        cpus = int(ray.cluster_resources().get("CPU", 0))
        if options.cpus_per_trial > cpus:
            raise TinykdError(
                f"--cpus-per-trial {options.cpus_per_trial} is more than the {cpus} CPUs "
                f"{'this machine gives Ray' if address is None else 'the cluster has'}: no trial could ever start. "
                f"Use --cpus-per-trial {max(1, cpus)} or fewer."
            )
        nodes = [n for n in ray.nodes() if n.get("Alive")]
        yield {"address": address, "embedded": address is None, "cpus": cpus, "nodes": len(nodes)}
    finally:
        ray.shutdown()
