"""TensorFlow's start-up lines never reach the user's terminal; everything else does."""

import subprocess
import sys

from tinykd.quiet import is_noise

NOISE = [
    b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
    b"I0000 00:00:1796010484.754929   10241 port.cc:153] oneDNN custom operations are on. You may see",
    b"I0000 00:00:1796010484.755203   10241 cudart_stub.cc:31] Could not find cuda drivers on your machine",
    b"E0000 00:00:1796010484.9   10241 cuda_executor.cc:1228] failed call to cuInit: INTERNAL: CUDA error",
    b"W0000 00:00:1796010485.1   10241 meta_optimizer.cc:966] NodeDef mentions attribute use_unbounded_threadpool",
    b"E0000 00:00:1796010485.1   10241 node_def_util.cc:682] NodeDef mentions attribute use_unbounded_threadpool",
    b"fully_quantize: 0, inference_type: 6, input_inference_type: FLOAT32, output_inference_type: FLOAT32",
    b"WARNING:tensorflow:Compiled the loaded model, but the compiled metrics have yet to be built.",
]
OURS = [
    b"error: MNIST was not found (looked in: /root/.cache/tinykd/mnist). Put the four original files ...",
    b"[train-teacher] running",
    b"E0000 00:00:1.2   10241 our_kernel.cc:12] a real error from a non-GPU source stays visible",
    b"Traceback (most recent call last):",
    b"Epoch 1/3",
]


def test_noise_lines_are_recognised_and_ours_are_not():
    assert all(is_noise(line) for line in NOISE)
    assert not any(is_noise(line) for line in OURS)


def test_filter_drops_noise_at_the_file_descriptor_and_keeps_the_rest(tmp_path):
    # A child process writes straight to fd 2 (as absl does before logging is configured) and
    # through sys.stderr, with a partial line (a progress bar) last.
    lines = NOISE + OURS
    script = f"""
import os, sys
from tinykd.quiet import silence_tensorflow_startup
silence_tensorflow_startup()
for line in {lines!r}:
    os.write(2, line + b"\\n")
print("through sys.stderr", file=sys.stderr)
os.write(2, b"bar 10%\\r" + {NOISE[-1]!r} + b"\\n")  # noise right after a progress bar's \\r
sys.stderr.write("progress 50%\\r")
"""
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=60)
    assert run.returncode == 0, run.stderr
    for line in NOISE:
        assert line not in run.stderr
    for line in OURS:
        assert line + b"\n" in run.stderr
    assert b"through sys.stderr\n" in run.stderr
    assert b"bar 10%\rprogress 50%\r" in run.stderr
    assert run.stderr.endswith(b"progress 50%\r")


def test_commands_print_no_tensorflow_lines_unless_verbose(tmp_path, mnist_dir):
    """A command that imports TensorFlow and then fails (quick), run as a user runs it."""
    bad = tmp_path / "teacher.keras"
    bad.write_bytes(b"not a keras file")
    args = ["train-teacher", "--quick", "--data-dir", str(mnist_dir), "--teacher-model", str(bad)]
    args += ["--out", str(tmp_path / "b")]
    quiet = subprocess.run([sys.executable, "-m", "tinykd.cli", *args], capture_output=True, timeout=300)
    assert quiet.returncode == 2, quiet.stderr
    assert quiet.stderr.splitlines() == [b"[train-teacher] running", quiet.stderr.splitlines()[-1]]
    assert quiet.stderr.splitlines()[-1].startswith(b"error: ")
    verbose = subprocess.run([sys.executable, "-m", "tinykd.cli", "--verbose", *args], capture_output=True, timeout=300)
    assert verbose.returncode == 2
    assert any(is_noise(line) for line in verbose.stderr.splitlines())  # what the filter hid
