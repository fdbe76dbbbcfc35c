"""Ctrl-C during an on-device run stops it within ~2 s, ends the QEMU instances, keeps the
results already verified (device_partial.npz, written atomically) and the next run with the
same inputs and firmware streams only the rest; `--port` for a QEMU board connects to an
emulator that is already running, and is used, never replaced."""

import _thread
import hashlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from test_device_faults import N_IN, SHA, _inputs, small_fw  # noqa: F401  (small_fw: a fixture)
from test_device_qemu import fixture_model

from tinykd.device import qemu as qemu_mod
from tinykd.device.evaluate import run_on_device
from tinykd.device.flash import flash
from tinykd.device.qemu import free_tcp_port
from tinykd.device.run import DeviceRunInterrupted


def _qemus_running(elf: Path) -> list[int]:
    """Pids of processes whose command line names this ELF (QEMU and its timeout wrapper)."""
    pids = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                if str(elf).encode() in (d / "cmdline").read_bytes():
                    pids.append(int(d.name))
            except OSError:
                pass
    return pids


def _saved(partial: Path) -> int:
    with np.load(partial) as z:
        return len(z["index"])


def _interrupt_when(path: Path, after: float = 0.3) -> threading.Thread:
    def watch():
        while not path.exists():
            time.sleep(0.05)
        time.sleep(after)
        _thread.interrupt_main()  # what Ctrl-C does: KeyboardInterrupt in the main thread

    t = threading.Thread(target=watch, daemon=True)
    t.start()
    return t


def test_interrupted_run_keeps_its_results_and_resumes(small_fw, tmp_path):  # noqa: F811
    x = _inputs(3000, seed=11)
    partial = tmp_path / "device_partial.npz"
    _interrupt_when(partial)
    t0 = time.monotonic()
    with pytest.raises(DeviceRunInterrupted) as e:
        run_on_device("mps2-an386", small_fw, x, expected_sha256=SHA, instances=2, progress=False, partial=partial)
    stopped = time.monotonic()
    kept = _saved(partial)
    assert 0 < kept < len(x)
    assert f"the {kept} of {len(x)} results" in e.value.message and "run the same command again" in e.value.message
    assert not list(qemu_mod._live) and not _qemus_running(small_fw)
    assert stopped - t0 < 60

    # another input set does not take these results
    other = run_on_device(
        "mps2-an386", small_fw, x[:5], expected_sha256=SHA, instances=1, progress=False, partial=tmp_path / "o.npz"
    )
    assert other.link["resumed"] == 0

    run = run_on_device("mps2-an386", small_fw, x, expected_sha256=SHA, instances=2, progress=False, partial=partial)
    assert run.link["resumed"] == kept and run.link["streamed"] == len(x) - kept
    np.testing.assert_array_equal(run.outputs, fixture_model(x))  # what an uninterrupted run gives
    assert run.counts.shape == (len(x),) and np.all(run.counts > 0)


def test_port_of_a_running_emulator_is_used_for_a_qemu_board(small_fw):  # noqa: F811
    x = _inputs(5, seed=12)
    with flash("mps2-an386", small_fw, port=f"socket://127.0.0.1:{free_tcp_port()}", time_limit=60) as dev:
        run = run_on_device("mps2-an386", None, x, expected_sha256=SHA, port=dev.url, progress=False)
        assert run.where == dev.url and run.link["resumed"] == 0
        np.testing.assert_array_equal(run.outputs, fixture_model(x))
        with pytest.raises(Exception, match="hash"):
            run_on_device("mps2-an386", None, x, expected_sha256="00" * 32, port=dev.url, progress=False)


def test_port_of_a_qemu_board_is_refused_when_nothing_listens_there(tmp_path):
    port = free_tcp_port()
    with pytest.raises(Exception, match=f"socket://127.0.0.1:{port}.*Nothing is listening"):
        run_on_device(
            "mps2-an386", None, _inputs(1), expected_sha256=SHA, port=f"socket://127.0.0.1:{port}", progress=False
        )
    with pytest.raises(Exception, match="not a port QEMU can listen on"):
        flash("mps2-an386", tmp_path / "missing.elf", port="/dev/ttyACM0")


# ------------------------------------------------------------------ the command, Ctrl-C for real


@pytest.fixture(scope="module")
def mlp(tmp_path_factory):
    from _tflite_models import ModelFactory

    return ModelFactory(tmp_path_factory.mktemp("models")).get(
        ((256,), [("dense", 16, "relu"), ("dense", 10, None)]), seed=5, name="mlp256"
    )


def _evaluate(model: Path, out: Path, n: int) -> subprocess.Popen:
    cmd = [sys.executable, "-c", "from tinykd.cli import main; main()", "evaluate", "--model", str(model)]
    cmd += ["--board", "mps2-an386", "--random", str(n), "--out", str(out)]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=os.environ.copy())


@pytest.mark.slow
def test_ctrl_c_on_evaluate_model_stops_in_2_s_and_the_same_command_resumes(mlp, tmp_path):
    out, n = tmp_path / "out", 4000
    partial = out / "device_partial.npz"
    proc = _evaluate(mlp, out, n)
    deadline = time.monotonic() + 240
    while not partial.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.05)
    time.sleep(0.5)
    t0 = time.monotonic()
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=10)
    took = time.monotonic() - t0
    assert proc.returncode == 130, err
    assert took < 2.0, f"took {took:.2f} s to stop"
    assert "Traceback" not in err and "run the same command again to resume" in err
    elf = out / "firmware" / "build" / "firmware.elf"
    assert not _qemus_running(elf)
    kept = _saved(partial)
    assert 0 < kept < n and f"the {kept} of {n} results" in err

    again = _evaluate(mlp, out, n)
    stdout, err = again.communicate(timeout=600)
    assert again.returncode == 0, err
    assert f"{n} random inputs on mps2-an386: 0 outputs differ" in stdout
    result = json.loads((out / "device_check.json").read_text())
    assert result["link"]["resumed"] == kept and result["link"]["streamed"] == n - kept
    assert result["host_vs_device"]["mismatches"] == 0  # the outputs of an uninterrupted run
    assert not partial.exists() and not _qemus_running(elf)
    assert hashlib.sha256(elf.read_bytes()).hexdigest()  # the same firmware, rebuilt: resumed


@pytest.mark.slow
def test_build_device_stage_keeps_and_resumes_its_results(mlp, tmp_path):
    """The build's [device] stage: interrupted, it keeps device_partial.npz in the build
    folder; run again, it streams only the rest and device.json is an uninterrupted run's."""
    from types import SimpleNamespace

    from tinykd.boards import load_board
    from tinykd.config import DeviceConfig
    from tinykd.evaluate import int8_outputs_tflm
    from tinykd.export import tflite_io_quantization
    from tinykd.export.convert import quantize_input
    from tinykd.fileio import write_bytes
    from tinykd.firmware.build import build_firmware
    from tinykd.pipeline import measure_stages

    out, n = tmp_path / "build", 1500
    write_bytes(out / "model_int8.tflite", mlp.read_bytes())
    build_firmware(mlp, "mps2-an386", out / "firmware")
    rng = np.random.default_rng(3)
    x = rng.normal(0, 1, (n, 256)).astype(np.float32)
    x_int8 = quantize_input(x, tflite_io_quantization(mlp).input)
    np.save(out / "host_int8_outputs.npy", int8_outputs_tflm(mlp, x_int8).reshape(n, -1))
    build = SimpleNamespace(
        out=out,
        board=load_board("mps2-an386"),
        dataset=SimpleNamespace(x_test=x, y_test=rng.integers(0, 10, n), num_classes=10),
        config=SimpleNamespace(device=DeviceConfig()),
        task=SimpleNamespace(device_frontend=None),
        log=lambda message: None,
    )
    partial = out / "device_partial.npz"
    _interrupt_when(partial)
    with pytest.raises(DeviceRunInterrupted):
        measure_stages.device(build)
    kept = _saved(partial)
    assert 0 < kept < n and not (out / "device.json").exists()
    assert not _qemus_running(out / "firmware" / "build" / "firmware.elf")
    measure_stages.device(build)
    report = json.loads((out / "device.json").read_text())
    assert report["link"]["resumed"] == kept and report["link"]["streamed"] == n - kept
    assert report["host_vs_device"]["mismatches"] == 0 and report["examples"] == n
    assert not partial.exists()
