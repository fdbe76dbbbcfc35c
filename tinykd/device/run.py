"""Run many inferences on a device, keep every verified result, and resume after a stop.

One streaming loop serves every kind of run: a `Job` says what one inference sends (int8
inputs with INFER, or raw KWS clips with INFER_AUDIO: the device computes the features and
returns them with its output) and what comes back; `stream_job` runs it over one or more
links: K QEMU instances side by side (the modelled UART moves only ~10-40 KB/s, so one
instance is the bottleneck; workers take the next input from a shared queue), or one serial
port (a board, or an emulator someone else started). Results are kept per input index in a
`PartialResults` file (written atomically every ~2 s, and on every stop): Ctrl-C stops all
workers and ends the QEMU instances within ~1 s, and the next run with the same inputs,
model and firmware streams only what is missing.

`run_inference(link, x)`, `run_inference_qemu(board, elf, x, instances=K)`, `run_audio` and
`run_audio_qemu` are the short forms for one link or QEMU instances, without a partial file.
"""

from __future__ import annotations

import collections
import contextlib
import hashlib
import io
import json
import os
import threading
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tinykd.boards import Board, load_board
from tinykd.device.link import DeviceLink, LinkCancelled
from tinykd.device.qemu import QemuInstance
from tinykd.errors import TinykdError
from tinykd.fileio import write_bytes

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


def check_model_hash(link: DeviceLink, expected_sha256_hex: str) -> None:
    """Refuse to evaluate when the device runs another model than the host's .tflite.

    The device reports the first 8 bytes of the SHA-256 of the .tflite it was built from.
    """
    try:
        expected = bytes.fromhex(expected_sha256_hex.strip())
    except ValueError as e:
        raise TinykdError(
            f"{expected_sha256_hex!r} is not a hex SHA-256 digest. Pass the "
            "sha256 of the model_int8.tflite file (64 hex digits)."
        ) from e
    if len(expected) < 8:
        raise TinykdError(
            f"The expected model hash {expected_sha256_hex!r} is shorter than "
            "8 bytes. Pass the full SHA-256 of model_int8.tflite."
        )
    info = link.info or link.hello()
    if info.model_hash != expected[:8]:
        raise TinykdError(
            f"The device at {link.url} runs model {info.model_name!r} with hash "
            f"{info.model_hash.hex()}, but the host model's hash starts with "
            f"{expected[:8].hex()}: the firmware was built from a different .tflite. Rebuild "
            "the firmware from this model (`tinykd firmware`) and flash it (`tinykd flash`)."
        )


def _as_inputs(x: np.ndarray, input_bytes: int | None) -> np.ndarray:
    x = np.asarray(x)
    if x.dtype != np.int8:
        raise TinykdError(
            f"Device inputs must be int8 (quantised with the model's input scale "
            f"and zero point); got dtype {x.dtype}. Quantise them first."
        )
    if x.ndim < 1 or x.shape[0] == 0:
        raise TinykdError("No inputs to run: pass an array of shape [N, ...] with N >= 1.")
    x = x.reshape(x.shape[0], -1)
    if input_bytes is not None and x.shape[1] != input_bytes:
        raise TinykdError(
            f"Each input has {x.shape[1]} values, but the model on the device "
            f"takes {input_bytes}. The device runs another model, or the inputs "
            "are shaped for another task."
        )
    return x


def _as_audio(audio: np.ndarray) -> np.ndarray:
    a = np.asarray(audio)
    if a.ndim == 1:
        a = a[None]
    if a.ndim != 2 or a.shape[0] == 0 or a.shape[1] != 16000:
        raise TinykdError(
            f"Audio for the device must be clips of 16000 int16 samples, shape "
            f"[N, 16000] with N >= 1; got shape {a.shape}. Pad or trim the clips "
            "(tinykd.data.kws.speech_commands.fit_length)."
        )
    if a.dtype != np.int16:
        raise TinykdError(
            f"Audio for the device must be int16 PCM; got dtype {a.dtype}. Convert "
            "float audio with np.round(x * 32768).clip(-32768, 32767).astype(np.int16)."
        )
    return a


def check_audio_support(info) -> None:
    """Refuse, with what to do, a device whose model does not take the KWS frontend's features."""
    from tinykd.data.kws import frontend

    want = frontend.NUM_FRAMES * frontend.NUM_MFCC
    if (
        info.input_bytes != want
        or abs(info.input_scale - frontend.SCALE) > 0
        or info.input_zero_point != frontend.ZERO_POINT
    ):
        raise TinykdError(
            f"The model on the device takes {info.input_bytes} int8 inputs with scale "
            f"{info.input_scale:g} and zero point {info.input_zero_point}, not the keyword-spotting "
            f"frontend's {want} features with scale {frontend.SCALE:g} and zero point "
            f"{frontend.ZERO_POINT}, so it cannot run on raw audio. Build the firmware from a KWS "
            "model (tinykd build --task kws), or send features with INFER instead."
        )


# ---------------------------------------------------------------- jobs


@dataclass(frozen=True)
class Job:
    """What one inference sends and returns. `infer(link, row)` gives one value per column."""

    kind: str  # "features" (INFER) or "audio" (INFER_AUDIO)
    rows: np.ndarray
    columns: tuple[tuple[str, type], ...]
    infer: Callable
    check: Callable  # check(info): refuse a device whose model does not fit the rows
    unit: str


def _infer_features(link: DeviceLink, row: np.ndarray) -> tuple:
    info = link.info
    res = link.infer(row.tobytes())
    if len(res.output) != info.output_bytes:
        raise TinykdError(
            f"The device returned {len(res.output)} output values, its "
            f"INFO said {info.output_bytes}. Re-flash the firmware."
        )
    return np.frombuffer(res.output, dtype=np.int8), res.count


def _infer_audio(link: DeviceLink, clip: np.ndarray) -> tuple:
    info = link.info
    res = link.infer_audio(clip)
    if len(res.output) != info.output_bytes or len(res.features) != info.input_bytes:
        raise TinykdError(
            f"The device returned {len(res.output)} output values and "
            f"{len(res.features)} features; its INFO said {info.output_bytes} "
            f"and {info.input_bytes}. Re-flash the firmware."
        )
    output, features = np.frombuffer(res.output, dtype=np.int8), np.frombuffer(res.features, dtype=np.int8)
    return output, features, res.model_count, res.frontend_count


def features_job(x_int8: np.ndarray) -> Job:
    """int8 model inputs [N, ...] sent with INFER: columns outputs, counts."""
    x = _as_inputs(x_int8, None)
    return Job(
        "features",
        x,
        (("outputs", np.int8), ("counts", np.int64)),
        _infer_features,
        lambda info: _as_inputs(x[:1], info.input_bytes),
        "inf",
    )


def audio_job(audio: np.ndarray) -> Job:
    """Raw int16 clips [N, 16000] sent with INFER_AUDIO: columns outputs, features, counts
    (the model's) and frontend_counts."""
    a = _as_audio(audio)
    columns = (("outputs", np.int8), ("features", np.int8), ("counts", np.int64), ("frontend_counts", np.int64))
    return Job("audio", a, columns, _infer_audio, check_audio_support, "clip")


# ---------------------------------------------------------------- partial results


def inputs_digest(rows: np.ndarray) -> str:
    h = hashlib.sha256(f"{rows.dtype.str}{rows.shape}".encode())
    h.update(np.ascontiguousarray(rows).tobytes())
    return h.hexdigest()


def file_digest(path: str | os.PathLike | None) -> str | None:
    if path is None or not Path(path).is_file():
        return None
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


class PartialResults:
    """The verified results of one run, per input index, kept in an .npz file.

    The file holds `key` (what the results depend on: the kind of run, the board, the model's
    SHA-256, the firmware image's, and the inputs' digest), `index` and one array per column.
    A file with another key is from another run: it is ignored (and replaced at the first
    save). Saves go through tinykd.fileio (a temporary file renamed over the old one), so an
    interruption at any moment leaves the previous checkpoint or the new one, never half."""

    def __init__(self, path: str | os.PathLike | None, key: dict):
        self.path = Path(path) if path is not None else None
        self.key = key
        self.rows: dict[int, tuple] = {}
        self.dirty = False
        self._lock = threading.Lock()  # workers put while the main thread saves
        if self.path is not None and self.path.is_file():
            self._load()
        self.resumed = len(self.rows)

    def _load(self) -> None:
        try:
            with np.load(self.path, allow_pickle=False) as z:
                if json.loads(str(z["key"])) != self.key:
                    return
                index = z["index"]
                cols = [z[f"c{j}"] for j in range(int(z["columns"]))]
        except (OSError, ValueError, KeyError, zipfile.BadZipFile):
            return  # unreadable: start over (the next save replaces it)
        for k, i in enumerate(index):
            self.rows[int(i)] = tuple(c[k] for c in cols)

    def __contains__(self, i: int) -> bool:
        return i in self.rows

    def __len__(self) -> int:
        return len(self.rows)

    def put(self, i: int, values: tuple) -> None:
        with self._lock:
            self.rows[i] = values
            self.dirty = True

    def save(self) -> None:
        with self._lock:
            if self.path is None or not self.dirty or not self.rows:
                return
            rows = dict(self.rows)
            self.dirty = False
        index = np.array(sorted(rows), dtype=np.int64)
        ncols = len(rows[int(index[0])])
        arrays = {f"c{j}": np.array([rows[int(i)][j] for i in index]) for j in range(ncols)}
        buf = io.BytesIO()
        np.savez(buf, key=np.array(json.dumps(self.key, sort_keys=True)), index=index, columns=ncols, **arrays)
        try:
            write_bytes(self.path, buf.getvalue())
        except BaseException:
            self.dirty = True  # not written: the next save tries again
            raise

    def remove(self) -> None:
        """The final results are written: the partial file is no longer needed."""
        if self.path is not None:
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()

    def columns(self, job: Job) -> dict[str, np.ndarray]:
        n = len(job.rows)
        return {
            name: np.array([self.rows[i][j] for i in range(n)], dtype=dtype)
            for j, (name, dtype) in enumerate(job.columns)
        }


# ---------------------------------------------------------------- where the links come from


@dataclass
class QemuLinks:
    """`instances` QEMU instances running `elf` on `board`, one link each."""

    board: Board
    elf: Path
    instances: int = 2
    timeout: float = 5.0
    time_limit: float = 3600.0

    def count(self, n: int) -> int:
        return max(1, min(int(self.instances), n))

    @contextlib.contextmanager
    def open(self, cancel: threading.Event, started: list):
        with QemuInstance(self.board, self.elf, time_limit=self.time_limit, cancel=cancel) as q:
            started.append(q)
            with DeviceLink(q.url, timeout=self.timeout, cancel=cancel) as link:
                yield link

    def where(self, n: int) -> str:
        return f"QEMU {self.board.qemu_machine} x{self.count(n)}"


@dataclass
class PortLinks:
    """One serial port: a board, a pty, or the socket of an emulator started elsewhere."""

    url: str
    baud: int = 115200
    timeout: float = 5.0

    def count(self, n: int) -> int:
        return 1

    @contextlib.contextmanager
    def open(self, cancel: threading.Event, started: list):
        with DeviceLink(self.url, baud=self.baud, timeout=self.timeout, cancel=cancel) as link:
            yield link

    def where(self, n: int) -> str:
        return self.url


@dataclass
class LinkStats:
    """What the links had to do again over a run (see DeviceLink)."""

    inferences_retried: int = 0  # inferences that needed any of the below
    resends: int = 0
    reconnects: int = 0
    resets: int = 0
    rejected_results: int = 0

    def add(self, link: DeviceLink) -> None:
        self.resends += link.resends
        self.reconnects += link.reconnects
        self.resets += link.resets
        self.rejected_results += link.rejected


@dataclass
class Streamed:
    columns: dict[str, np.ndarray]
    stats: LinkStats
    resumed: int  # results taken from the partial file
    streamed: int  # results streamed by this run
    where: str
    seconds: float
    extra: dict = field(default_factory=dict)


# ---------------------------------------------------------------- the streaming loop


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


# ---------------------------------------------------------------- short forms


def _on_link(job: Job, link: DeviceLink, progress: bool, desc: str) -> tuple[np.ndarray, ...]:
    """One job over a link the caller opened, in the caller's thread."""
    if link.ser is None:
        link.open()
        link.connect()
    if link.info is None:
        link.hello()
    job.check(link.info)
    bar = tqdm(total=len(job.rows), desc=desc, unit=job.unit, leave=False) if progress and tqdm else None
    rows = []
    try:
        for row in job.rows:
            rows.append(job.infer(link, row))
            if bar is not None:
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    return tuple(np.array([r[j] for r in rows], dtype=dtype) for j, (_, dtype) in enumerate(job.columns))


def _on_qemu(job: Job, board, elf, instances, expected_sha256_hex, progress, timeout, time_limit):
    board = load_board(board)
    links = QemuLinks(board, Path(elf), instances, timeout, time_limit)
    done = stream_job(
        job,
        links,
        expected_sha256_hex=expected_sha256_hex,
        progress=progress,
        desc=f"{board.name} x{links.count(len(job.rows))}",
    )
    return tuple(done.columns[name] for name, _ in job.columns)


def run_inference(link: DeviceLink, x_int8: np.ndarray, *, progress: bool = True, desc: str = "device"):
    """Run each of the N inputs on the device. Returns (outputs int8 [N, out], counts int64 [N]);
    counts are instructions (QEMU) or cycles (hardware): see link.info.counter_name."""
    return _on_link(features_job(x_int8), link, progress, desc)


def run_audio(link: DeviceLink, audio: np.ndarray, *, progress: bool = True, desc: str = "device"):
    """Run each of N raw clips (int16 [N, 16000]) through the device's frontend and model.
    Returns (outputs int8 [N, out], features int8 [N, 490], model counts [N], frontend counts [N])."""
    return _on_link(audio_job(audio), link, progress, desc)


def _qemu_runner(make_job: Callable, doc: str) -> Callable:
    def run(
        board: str | Board,
        elf: str | os.PathLike,
        rows: np.ndarray,
        *,
        instances: int = 2,
        expected_sha256_hex: str | None = None,
        progress: bool = True,
        timeout: float = 5.0,
        time_limit: float = 3600.0,
    ):
        return _on_qemu(make_job(rows), board, elf, instances, expected_sha256_hex, progress, timeout, time_limit)

    run.__doc__ = doc
    return run


run_inference_qemu = _qemu_runner(
    features_job,
    """run_inference_qemu(board, elf, x_int8, *, instances=2, expected_sha256_hex=None, ...):
    spread N inputs over `instances` QEMU instances running `elf`; (outputs, counts) in input order.""",
)
run_audio_qemu = _qemu_runner(
    audio_job,
    """run_audio_qemu(board, elf, audio, *, instances=2, expected_sha256_hex=None, ...): spread N
    raw clips over `instances` QEMU instances; results in input order (see run_audio).""",
)
