"""The streaming loop: every row of a Job not yet in the partial results, over the links (one
worker thread each, taking the next row from a shared queue); checkpoints every SAVE_EVERY s,
and a stop (Ctrl-C, a worker's error) that ends the workers within STOP_WITHIN s.
"""

from __future__ import annotations

import collections
import threading
import time
from dataclasses import dataclass, field

import numpy as np

from tinykd.device.link import LinkCancelled
from tinykd.device.qemu import QemuInstance
from tinykd.device.run.jobs import Job, check_model_hash
from tinykd.device.run.links import LinkStats
from tinykd.device.run.partial import PartialResults
from tinykd.errors import TinykdError

try:
    from tqdm import tqdm
except ImportError:  # pragma: no cover - tqdm is a declared dependency
    tqdm = None


SAVE_EVERY = 2.0  # seconds between checkpoints of the partial results
STOP_WITHIN = 1.0  # seconds the workers get to stop after Ctrl-C


class DeviceRunInterrupted(KeyboardInterrupt):
    """Ctrl-C during a device run: the verified results are kept; `message` says where."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


@dataclass
class Streamed:
    columns: dict[str, np.ndarray]
    stats: LinkStats
    resumed: int  # results taken from the partial file
    streamed: int  # results streamed by this run
    where: str
    seconds: float
    extra: dict = field(default_factory=dict)


def stream_job(
    job: Job,
    links,
    *,
    expected_sha256_hex: str | None = None,
    partial: PartialResults | None = None,
    progress: bool = True,
    desc: str = "device",
    stats: LinkStats | None = None,
) -> Streamed:
    """Run every row of `job` not yet in `partial` over the links of `links` (QemuLinks or
    PortLinks), each link in its own thread taking the next row from a shared queue; keep the
    results in `partial` (saved every SAVE_EVERY s and at every stop). Ctrl-C: the workers stop
    and the QEMU instances end within STOP_WITHIN s, the results are saved, and
    DeviceRunInterrupted is raised. A worker's error stops the others the same way. `stats`:
    add the links' counts to this LinkStats (kept across a stop and its resumption)."""
    started_at = time.perf_counter()
    n = len(job.rows)
    partial = partial if partial is not None else PartialResults(None, {})
    todo = collections.deque(i for i in range(n) if i not in partial)
    k = min(links.count(n), max(1, len(todo)))
    stats = stats if stats is not None else LinkStats()
    lock = threading.Lock()
    stop = threading.Event()
    errors: list[BaseException] = []
    qemus: list[QemuInstance] = []
    bar = None
    if progress and tqdm is not None and todo:
        bar = tqdm(total=n, initial=n - len(todo), desc=desc, unit=job.unit, leave=False)

    def worker() -> None:
        link = None
        try:
            with links.open(stop, qemus) as link:
                link.connect()
                link.hello()
                if expected_sha256_hex:
                    check_model_hash(link, expected_sha256_hex)
                job.check(link.info)
                while not stop.is_set():
                    with lock:
                        if not todo:
                            return
                        i = todo.popleft()
                    before = link.trouble
                    values = job.infer(link, job.rows[i])
                    with lock:
                        partial.put(i, values)
                        stats.inferences_retried += link.trouble != before
                        if bar is not None:
                            bar.update(1)
        except LinkCancelled:
            pass
        except BaseException as e:  # noqa: BLE001 - handed to the main thread
            errors.append(e)
            stop.set()
        finally:
            if link is not None:
                with lock:
                    stats.add(link)

    threads = [threading.Thread(target=worker, name=f"tinykd-device-{j}", daemon=True) for j in range(k if todo else 0)]
    try:
        for t in threads:
            t.start()
        last_save = time.monotonic()
        while alive := [t for t in threads if t.is_alive()]:
            alive[0].join(0.1)
            if time.monotonic() - last_save >= SAVE_EVERY:
                partial.save()
                last_save = time.monotonic()
    except KeyboardInterrupt:
        _stop_workers(stop, qemus, threads)
        partial.save()
        raise DeviceRunInterrupted(_interrupted_text(partial, n)) from None
    finally:
        if bar is not None:
            bar.close()
    if errors:
        _stop_workers(stop, qemus, threads)
    partial.save()
    if errors:
        raise next((e for e in errors if isinstance(e, TinykdError)), errors[0])
    return Streamed(
        partial.columns(job),
        stats,
        partial.resumed,
        n - partial.resumed,
        links.where(n),
        round(time.perf_counter() - started_at, 2),
    )


def _stop_workers(stop: threading.Event, qemus: list, threads: list) -> None:
    stop.set()  # every wait in the links returns within ~50 ms
    for q in list(qemus):
        q.stop()  # the process group: reads and writes of the workers fail at once
    deadline = time.monotonic() + STOP_WITHIN
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))


def _interrupted_text(partial: PartialResults, n: int) -> str:
    if partial.path is None or not len(partial):
        return "interrupted: no device result was finished; run the same command again to start over."
    return (
        f"interrupted: the {len(partial)} of {n} results already verified on the device are kept "
        f"in {partial.path}; run the same command again to resume (it streams only the "
        f"{n - len(partial)} left)."
    )
