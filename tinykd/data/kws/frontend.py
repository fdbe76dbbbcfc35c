"""The KWS feature extractor on the host: the firmware's own C frontend, compiled and called.

`firmware/frontend/tkd_frontend.c` is the one implementation of the features; the device
runs it and so does the host, through this module: it is compiled with the host C compiler
into a shared library (cached by a hash of the sources, the compiler and the flags) and
called with ctypes, a batch of clips per call, several threads in parallel (the call
releases the GIL). `float_reference` is an independent numpy float version of the same
pipeline, used only to check that the fixed point is faithful.
"""

from __future__ import annotations

import ctypes
import hashlib
import math
import os
import re
import shutil
import subprocess
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from ...errors import TinykdError
from ...fileio import atomic_path
from ...resources import firmware_dir

SOURCES = ("tkd_frontend.c",)
HEADERS = ("tkd_frontend.h", "tkd_frontend_tables.h")
CFLAGS = ("-O2", "-std=c99", "-fPIC", "-shared", "-Wall", "-Wextra", "-Werror")


def _read_params(header: Path) -> dict[str, float]:
    text = header.read_text()
    params = {}
    for name, value in re.findall(r"#define\s+TKD_FRONTEND_(\w+)\s+\(?(-?[0-9.]+)f?\)?\s", text):
        params[name] = float(value)
    return params


def _source_dir() -> Path:
    env = os.environ.get("TINYKD_FRONTEND_DIR")
    d = Path(env) if env else firmware_dir() / "frontend"
    missing = [n for n in SOURCES + HEADERS if not (d / n).is_file()]
    if missing:
        raise TinykdError(
            f"The KWS frontend sources are missing from {d} ({', '.join(missing)}). They ship with "
            "tinykd under firmware/frontend/; reinstall tinykd or point $TINYKD_FRONTEND_DIR at a "
            "copy of that folder."
        )
    return d


PARAMS = _read_params(_source_dir() / "tkd_frontend.h")
SAMPLE_RATE = int(PARAMS.get("SAMPLE_RATE", 16000))
CLIP_SAMPLES = int(PARAMS.get("CLIP_SAMPLES", 16000))
NUM_FRAMES = int(PARAMS.get("NUM_FRAMES", 49))
NUM_MFCC = int(PARAMS.get("NUM_MFCC", 10))
SCALE = float(PARAMS.get("SCALE", 1.0))
ZERO_POINT = int(PARAMS.get("ZERO_POINT", 0))
FEATURE_SHAPE = (NUM_FRAMES, NUM_MFCC)


def _cache_root() -> Path:
    root = os.environ.get("TINYKD_CACHE") or Path.home() / ".cache" / "tinykd"
    return Path(root) / "frontend"


def _compiler() -> str:
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if not cc:
        raise TinykdError(
            "No host C compiler found: the KWS features are computed by the firmware's C "
            "frontend, compiled on this machine. Install gcc or clang (e.g. apt-get install "
            "gcc) or set $CC to one."
        )
    return cc


def source_hash() -> str:
    """sha256 over the frontend sources: part of every feature cache key."""
    d = _source_dir()
    h = hashlib.sha256()
    for name in SOURCES + HEADERS:
        h.update(name.encode() + b"\0" + (d / name).read_bytes() + b"\0")
    return h.hexdigest()


_lib = None
_lib_lock = threading.Lock()


def library_path() -> Path:
    """Build (once per source/compiler/flags hash) and return the shared library."""
    d = _source_dir()
    cc = _compiler()
    try:
        version = subprocess.run([cc, "--version"], capture_output=True, text=True, timeout=30).stdout
    except OSError as e:
        raise TinykdError(f"The C compiler '{cc}' cannot be run ({e}). Install gcc or set $CC.") from None
    key = hashlib.sha256((source_hash() + "\0" + cc + "\0" + version + "\0" + " ".join(CFLAGS)).encode()).hexdigest()[
        :20
    ]
    out = _cache_root() / f"libtkd_frontend-{key}.so"
    if out.is_file():
        return out
    with atomic_path(out) as tmp:
        cmd = [cc, *CFLAGS, "-o", str(tmp), *(str(d / s) for s in SOURCES)]
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        if r.returncode != 0:
            raise TinykdError(
                f"Compiling the KWS frontend failed ({' '.join(cmd)}):\n{r.stderr.strip()}\n"
                "Check that the host compiler works (try `cc --version`) and that "
                f"{d} is intact."
            )
    return out


def _load_library():
    global _lib
    with _lib_lock:
        if _lib is None:
            lib = ctypes.CDLL(str(library_path()))
            lib.tkd_frontend_run_batch.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_uint32, ctypes.c_void_p]
            lib.tkd_frontend_run_batch.restype = None
            lib.tkd_frontend_frame.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p]
            lib.tkd_frontend_frame.restype = None
            lib.tkd_frontend_stream_init.argtypes = [ctypes.c_void_p]
            lib.tkd_frontend_stream_init.restype = None
            lib.tkd_frontend_stream_push.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p]
            lib.tkd_frontend_stream_push.restype = ctypes.c_int
            _lib = lib
        return _lib


# sizeof(tkd_frontend_scratch) and sizeof(tkd_frontend_stream), from the header's parameters.
SCRATCH_BYTES = int(PARAMS.get("FFT_SIZE", 1024)) * 4 + int(PARAMS.get("FFT_SIZE", 1024)) // 4 * 8
STREAM_BYTES = int(PARAMS.get("WINDOW", 640)) * 2 + 4


def _check_audio(audio) -> np.ndarray:
    a = np.asarray(audio)
    if a.ndim == 1:
        a = a[None, :]
    if a.ndim != 2 or a.shape[1] != CLIP_SAMPLES:
        raise TinykdError(
            f"KWS features need clips of exactly {CLIP_SAMPLES} samples (1 s at {SAMPLE_RATE} Hz) "
            f"as an array [N, {CLIP_SAMPLES}]; got shape {a.shape}. Pad or trim the audio first "
            "(tinykd.data.kws.speech_commands.fit_length does that)."
        )
    if a.dtype != np.int16:
        if not np.issubdtype(a.dtype, np.integer) or a.size and (a.min() < -32768 or a.max() > 32767):
            raise TinykdError(
                f"KWS features need int16 PCM samples; got dtype {a.dtype}. Convert float audio "
                "in [-1, 1) with np.round(x * 32768).clip(-32768, 32767).astype(np.int16)."
            )
        a = a.astype(np.int16)
    return np.ascontiguousarray(a)


def features(audio, threads: int | None = None, batch: int = 64, progress=None) -> np.ndarray:
    """int8 features [N, 49, 10] for int16 audio [N, 16000] (or one clip [16000])."""
    a = _check_audio(audio)
    lib = _load_library()
    n = a.shape[0]
    out = np.empty((n, NUM_FRAMES, NUM_MFCC), dtype=np.int8)
    if n == 0:
        return out
    threads = max(1, min(threads or os.cpu_count() or 1, math.ceil(n / batch)))
    chunks = [(i, min(i + batch, n)) for i in range(0, n, batch)]
    local = threading.local()

    def work(chunk):
        lo, hi = chunk
        if not hasattr(local, "scratch"):
            local.scratch = ctypes.create_string_buffer(SCRATCH_BYTES)
        lib.tkd_frontend_run_batch(
            a[lo:hi].ctypes.data, out[lo:hi].ctypes.data, hi - lo, ctypes.addressof(local.scratch)
        )
        return hi - lo

    if threads == 1:
        for c in chunks:
            done = work(c)
            if progress is not None:
                progress.update(done)
    else:
        with ThreadPoolExecutor(threads) as pool:
            for done in pool.map(work, chunks):
                if progress is not None:
                    progress.update(done)
    return out


def frame_features(window) -> np.ndarray:
    """One frame: 640 int16 samples -> 10 int8 (the streaming path on the device)."""
    w = np.ascontiguousarray(np.asarray(window, dtype=np.int16))
    if w.shape != (int(PARAMS.get("WINDOW", 640)),):
        raise TinykdError(f"A frontend frame is {int(PARAMS.get('WINDOW', 640))} samples; got shape {w.shape}.")
    out = np.empty(NUM_MFCC, dtype=np.int8)
    _load_library().tkd_frontend_frame(w.ctypes.data, out.ctypes.data, None)
    return out


def stream_features(audio) -> np.ndarray:
    """Run int16 audio of any length through the C streaming API, one 320-sample hop per
    call (as a device does with its microphone): int8 [frames, 10]."""
    a = np.ascontiguousarray(np.asarray(audio, dtype=np.int16))
    hop = int(PARAMS.get("STRIDE", 320))
    if a.ndim != 1 or len(a) % hop:
        raise TinykdError(f"Streaming takes 1-D audio in whole hops of {hop} samples; got shape {a.shape}.")
    lib = _load_library()
    state = ctypes.create_string_buffer(STREAM_BYTES + 16)
    scratch = ctypes.create_string_buffer(SCRATCH_BYTES)
    lib.tkd_frontend_stream_init(ctypes.addressof(state))
    frame = np.empty(NUM_MFCC, dtype=np.int8)
    frames = []
    for i in range(0, len(a), hop):
        if lib.tkd_frontend_stream_push(
            ctypes.addressof(state), a[i : i + hop].ctypes.data, frame.ctypes.data, ctypes.addressof(scratch)
        ):
            frames.append(frame.copy())
    return np.array(frames, dtype=np.int8).reshape(-1, NUM_MFCC)


def dequantize(q: np.ndarray) -> np.ndarray:
    return (q.astype(np.float32) - ZERO_POINT) * SCALE


# ---------------------------------------------------------------------------------------
# Float reference (numpy, float64): the same definition, written independently of the C.


def _hz_to_mel(f):
    return 1127.0 * np.log1p(np.asarray(f, dtype=np.float64) / 700.0)


def mel_matrix() -> np.ndarray:
    """[FFT_SIZE/2 + 1, NUM_MEL] triangular filters on the HTK mel scale, peak 1."""
    n_fft = int(PARAMS["FFT_SIZE"])
    n_mel = int(PARAMS["NUM_MEL"])
    edges = np.linspace(_hz_to_mel(PARAMS["MEL_LOW_HZ"]), _hz_to_mel(PARAMS["MEL_HIGH_HZ"]), n_mel + 2)
    mel = _hz_to_mel(np.arange(n_fft // 2 + 1) * SAMPLE_RATE / n_fft)
    left, centre, right = edges[:-2], edges[1:-1], edges[2:]
    up = (mel[:, None] - left) / (centre - left)
    down = (right - mel[:, None]) / (right - centre)
    w = np.clip(np.minimum(up, down), 0.0, None)
    w[(mel < edges[0]) | (mel >= edges[-1])] = 0.0
    return w


def float_reference(audio, quantize: bool = False) -> np.ndarray:
    """MFCC in float64 [N, 49, 10] in the output's real units (or int8 when quantize)."""
    a = np.asarray(audio, dtype=np.float64)
    if a.ndim == 1:
        a = a[None]
    win, hop, n_fft = int(PARAMS["WINDOW"]), int(PARAMS["STRIDE"]), int(PARAMS["FFT_SIZE"])
    n_mel = int(PARAMS["NUM_MEL"])
    idx = np.arange(NUM_FRAMES)[:, None] * hop + np.arange(win)[None, :]
    frames = a[:, idx]  # [N, F, 640] int16 units
    mean = frames.mean(axis=-1, keepdims=True)
    frames = frames - np.sign(mean) * np.floor(np.abs(mean) + 0.5)  # halves away from zero, as the C
    hann = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(win) / win)
    spec = np.fft.rfft(frames * hann / 32768.0, n=n_fft, axis=-1)
    power = spec.real**2 + spec.imag**2
    mel = power @ mel_matrix()
    logmel = np.log(np.maximum(mel, 2.0 ** -PARAMS["LOG2_FLOOR"]))
    n = np.arange(n_mel)
    k = np.arange(NUM_MFCC)[:, None]
    dct = np.cos(np.pi * k * (n + 0.5) / n_mel) * np.sqrt(2.0 / n_mel)
    dct[0] *= np.sqrt(0.5)
    mfcc = logmel @ dct.T
    if quantize:
        return np.clip(np.floor(mfcc / SCALE + 0.5) + ZERO_POINT, -128, 127).astype(np.int8)
    return mfcc
