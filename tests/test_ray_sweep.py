"""`tinykd sweep` on embedded Ray: stopped midway (Ctrl-C) and run again, it trains only the
missing points, and its table equals the plain loop's (the same points one by one in this
process, no Ray): same errors, same int8 bytes."""

import hashlib
import json
import os
import signal
import subprocess
import sys
import time

from _cli import quick_config, quick_experiment

from tinykd.experiments.sweep import parse_grid, run_sweep

GRID = ["--epochs", "1", "--students", "mlp-16", "--temperatures", "1,4", "--alphas", "0.5,0.9", "--no-baselines"]
KEYS = sorted(f"mlp-16__hinton__T{t}__a{a}" for t in (1, 4) for a in (0.5, 0.9))


def _table_rows(out):
    return [line for line in (out / "sweep.md").read_text().splitlines() if line.startswith("| mlp-16 |")]


def _digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_stopped_sweep_resumes_missing_points_and_equals_the_plain_loop(tmp_path, mnist_dir):
    out = tmp_path / "ray"
    # 1. `tinykd sweep` in its own process on embedded Ray (2 CPUs, 1 per trial): Ctrl-C once a point is kept.
    args = ["--quick", "--data-dir", str(mnist_dir), "--out", str(out), "--teacher", "mlp-64", "--teacher-epochs", "1"]
    command = [sys.executable, "-c", "from tinykd.cli import main; main()", "sweep", *args, *GRID]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=os.environ.copy())
    deadline = time.monotonic() + 400
    while not list((out / "points").glob("*.json")) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    output = proc.communicate(timeout=120)[0].decode()
    kept = {p.stem: p.stat().st_mtime_ns for p in (out / "points").glob("*.json")}
    assert proc.returncode == 130 and "interrupted" in output, output
    assert 1 <= len(kept) < 4, output

    # 2. The same command again (in this process): only the missing points train.
    code, output = quick_experiment("sweep", out, mnist_dir, *GRID)
    assert code == 0, output
    assert f"{4 - len(kept)} points trained, {len(kept)} finished earlier" in output
    for key, mtime in kept.items():
        assert f"{key}: finished earlier, kept" in output
        assert (out / "points" / f"{key}.json").stat().st_mtime_ns == mtime
    points = {p["key"]: p for p in json.loads((out / "sweep.json").read_text())["points"]}
    assert sorted(points) == KEYS
    for key in KEYS:
        ran_on = json.loads((out / "points" / f"{key}.json").read_text())["ran_on"]
        assert ran_on["tf_threads"] == 1  # TensorFlow's pools sized to the trial's one CPU

    # 3. The plain loop: the same points one by one in this process, no Ray.
    config = quick_config(mnist_dir)
    grid = parse_grid("1,4", "0.5,0.9", "mlp-16", "hinton")
    plain = run_sweep(config, tmp_path / "plain", grid, baselines=False, ray=None, log=lambda m: None)
    assert plain.trained == 4
    assert _table_rows(out) == _table_rows(tmp_path / "plain") and len(_table_rows(out)) == 4
    for p in plain.points:
        q = points[p["key"]]
        assert (q["val_errors"], q["test_errors"]) == (p["val_errors"], p["test_errors"])
        assert q["int8"]["test_errors"] == p["int8"]["test_errors"]
        assert q["int8"]["flash_used"] == p["int8"]["flash_used"]
        assert _digest(out / q["int8"]["tflite"]) == _digest(tmp_path / "plain" / p["int8"]["tflite"])
