"""Keep TensorFlow's start-up chatter out of the user's terminal.

TensorFlow's C++ core logs through absl, and before absl is configured (which is before any
Python code could configure it) it writes straight to file descriptor 2: the oneDNN notice,
the CUDA stub, the failed cuInit, `NodeDef mentions attribute …`. `TF_CPP_MIN_LOG_LEVEL` does not
reach those lines, and `TF_ENABLE_ONEDNN_OPTS=0` would change the numbers training produces. So
the command-line entry point replaces fd 2 with a pipe whose reader thread drops absl-formatted
lines from TensorFlow's noisy sources and passes everything else through unchanged (our messages,
Python tracebacks, QEMU's and the compiler's output, child processes' stderr alike). `--verbose`
leaves fd 2 alone.
"""

from __future__ import annotations

import atexit
import os
import re
import sys
import threading

# absl's line prefix: level letter, MMDD, time, thread id, file:line]
_ABSL_LINE = re.compile(rb"^[IWEF]\d{4} [\d:.]+\s+\d+ (?P<source>[\w./-]+):\d+\] ")
_ABSL_PREAMBLE = b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR"
# Informational and warning lines are never ours; error lines only from the GPU probing that a
# CPU-only machine always fails, and the graph-version notice tf.data prints.
_NOISY_ERROR_SOURCES = re.compile(rb"cuda|gpu|stream_executor|dso_loader|node_def_util", re.I)
# TensorFlow's Python logger at warning level (e.g. "Compiled the loaded model, but the compiled
# metrics have yet to be built"): about Keras internals, never about the user's input.
_TF_PYTHON_WARNING = b"WARNING:tensorflow:"
# The TFLite converter's own settings dump (printed by its C++ on every conversion).
_CONVERTER_SETTINGS = b"fully_quantize: "


def is_noise(line: bytes) -> bool:
    """Whether one line of stderr is TensorFlow start-up noise."""
    if line.startswith((_ABSL_PREAMBLE, _TF_PYTHON_WARNING, _CONVERTER_SETTINGS)):
        return True
    match = _ABSL_LINE.match(line)
    if match is None:
        return False
    return line[:1] in (b"I", b"W") or bool(_NOISY_ERROR_SOURCES.search(match["source"]))


class _StderrFilter:
    def __init__(self) -> None:
        sys.stderr.flush()
        self.original = os.dup(2)
        read_end, write_end = os.pipe()
        os.dup2(write_end, 2)
        os.close(write_end)
        self.reader = os.fdopen(read_end, "rb", buffering=0)
        self.thread = threading.Thread(target=self._pump, name="tinykd-stderr-filter", daemon=True)
        self.thread.start()

    def _pump(self) -> None:
        pending = b""
        while True:
            chunk = self.reader.read(65536)
            if not chunk:
                break
            pending += chunk
            # Progress bars redraw with \r and no newline, and a library's line may follow one in
            # the same chunk: judge every \r- or \n-ended piece on its own, and pass an unfinished
            # piece on at once unless it could still turn out to be noise.
            pieces = _PIECE.findall(pending)
            pending = pieces.pop() if pieces and not pieces[-1].endswith((b"\n", b"\r")) else b""
            out = b"".join(piece for piece in pieces if not is_noise(piece.rstrip(b"\r\n")))
            if pending and not _could_be_noise(pending):
                out, pending = out + pending, b""
            if out:
                os.write(self.original, out)
        if pending and not is_noise(pending):
            os.write(self.original, pending)

    def close(self) -> None:
        """Put the real stderr back and let the reader drain what is left in the pipe."""
        sys.stderr.flush()
        os.dup2(self.original, 2)
        self.thread.join(timeout=1.0)


def _could_be_noise(partial: bytes) -> bool:
    """Whether an unfinished line may still become a noise line (then it waits for its newline)."""
    if len(partial) > 512:
        return False
    if _ABSL_PREAMBLE.startswith(partial[: len(_ABSL_PREAMBLE)]):
        return True
    return partial in (b"I", b"W", b"E", b"F") or re.match(rb"^[IWEF]\d", partial) is not None


_PIECE = re.compile(rb"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+")
_active: _StderrFilter | None = None


def _stderr_is_fd2() -> bool:
    try:
        return sys.stderr.fileno() == 2
    except (AttributeError, OSError, ValueError):
        return False


def silence_tensorflow_startup() -> None:
    """Filter TensorFlow's start-up lines from fd 2 for the rest of the process (idempotent).

    Does nothing when sys.stderr is not fd 2 (click's CliRunner, a notebook): the caller then
    collects stderr itself."""
    global _active
    if _active is None and _stderr_is_fd2():
        _active = _StderrFilter()
        atexit.register(restore_stderr)


def restore_stderr() -> None:
    global _active
    if _active is not None:
        _active.close()
        _active = None
