"""Bad input: each a clear one-paragraph message and exit status 2, never a traceback."""

import pytest
from _cli import assert_refused, run

from tinykd.config import resolve
from tinykd.errors import TinykdError


@pytest.mark.parametrize(
    "command,args,message",
    [
        ("build", ["--temperature", "0"], "Temperature must be > 0"),
        ("build", ["--temperature", "-3"], "Temperature must be > 0"),
        ("build", ["--alpha", "1.5"], "alpha must be between 0 and 1"),
        ("build", ["--alpha", "-0.1"], "alpha must be between 0 and 1"),
        ("build", ["--student", "resnet-9000"], "Unknown model 'resnet-9000'"),
        ("build", ["--teacher", "nope"], "Unknown model 'nope'"),
        ("build", ["--board", "esp32"], "esp32"),
        ("build", ["--task", "cifar"], "Unknown task 'cifar'"),
        ("fit", ["--widths", "0,16"], "--widths: '0' is not a whole number >= 1"),
        ("fit", ["--widths", "16,wide"], "--widths: 'wide' is not a whole number"),
        ("fit", ["--depths", "1,9"], "--depths: '9' is not a whole number between 1 and 4"),
        ("fit", ["--task", "image"], "has no searchable family yet"),
        ("fit", ["--method", "online"], "trains peers or generations with the student"),
        ("fit", ["--max-latency", "0"], "--max-latency must be > 0"),
        ("sweep", ["--temperatures", "0,4"], "every temperature must be > 0 (got 0)"),
        ("sweep", ["--temperatures", "1,abc"], "'abc' is not a number"),
        ("sweep", ["--temperatures", "1,,2"], "has an empty entry"),
        ("sweep", ["--alphas", "0.5,1.5"], "must be in [0, 1] (got 1.5)"),
        ("sweep", ["--students", "mlp-30-30,resnet-9000"], "--students: Unknown model 'resnet-9000'"),
        ("sweep", ["--methods", "hinton,online"], "--methods: online cannot be swept"),
    ],
)
def test_bad_options_exit_2_with_a_message(command, args, message, tmp_path):
    assert_refused(command, tmp_path / "out", args, message)
    # --out is checked up front (made if missing), but nothing is trained or written in it
    assert not any((tmp_path / "out").glob("*"))


def test_unknown_config_key_is_named(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text("[distill]\ntemprature = 4\n")
    code, output = run("build", "--config", str(cfg), "--out", str(tmp_path / "b"))
    assert code == 2 and "unknown setting 'distill.temprature'" in output and "temperature" in output


def test_ship_from_a_config_file_is_checked(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text('[distill]\nship = "student"\n')
    with pytest.raises(TinykdError, match="ship must be one of better, kd, baseline \\(got 'student'\\)"):
        resolve(config_file=cfg)
    cfg.write_text('[distill]\nship = "kd"\n')
    assert resolve(config_file=cfg).distill.ship == "kd"


def test_config_file_wrong_type_and_bad_toml(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text('[student]\nepochs = "many"\n')
    with pytest.raises(TinykdError, match="'student.epochs' must be a int"):
        resolve(config_file=cfg)
    cfg.write_text("[student\n")
    with pytest.raises(TinykdError, match="not valid TOML"):
        resolve(config_file=cfg)
    with pytest.raises(TinykdError, match="does not exist"):
        resolve(config_file=tmp_path / "missing.toml")


def test_layers_apply_in_order(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text('seed = 7\n[distill]\ntemperature = 4\nalpha = 0.5\n[student]\narch = "mlp-30-30"\n')
    c = resolve(config_file=cfg, quick=True, overrides={"distill": {"alpha": 0.25}})
    assert (c.seed, c.distill.temperature, c.distill.alpha, c.student.arch) == (7, 4.0, 0.25, "mlp-30-30")
    assert c.data.train_limit == 3000  # from --quick
    assert resolve().distill.temperature == "auto" and resolve().student.arch == "mlp-300-300"


def test_unwritable_out_is_a_clear_error(tmp_path, mnist_dir):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    code, output = run("build", "--quick", "--data-dir", str(mnist_dir), "--out", str(blocker / "sub"))
    assert code == 2 and "cannot be written" in output and "--out" in output


def test_missing_data_through_the_cli(tmp_path):
    code, output = run("data", "--data-dir", str(tmp_path))  # a folder without the files
    assert code == 2 and "MNIST files not found" in output and "Traceback" not in output


def test_boards_lists_the_default_board():
    code, output = run("boards")
    assert code == 0 and "mps2-an386" in output and "nano33" in output


def test_doctor_reports_tools_and_data(mnist_dir):
    code, output = run("doctor", "--data-dir", str(mnist_dir))
    assert code == 0
    # CI installs these; a machine without them shows "--" and what to install.
    for tool in ("arm-none-eabi-gcc", "qemu-system-arm", "espeak-ng"):
        assert f"ok  {tool}" in output, output
    assert "MNIST data" in output and str(mnist_dir) in output
