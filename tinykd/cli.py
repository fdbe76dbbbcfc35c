"""`tinykd` command line: parses options and calls the library; nothing else lives here."""

from __future__ import annotations

import functools
import sys
from pathlib import Path

import click

from .errors import TinykdError


def _common_options(func):
    options = [
        click.option("--task", type=str, default=None, help="mnist (default) or kws."),
        click.option("--board", type=str, default=None, help="Target board (see `tinykd boards`); default mps2-an386."),
        click.option(
            "--config",
            "config_file",
            type=click.Path(dir_okay=False),
            default=None,
            help="TOML file with settings (see README).",
        ),
        click.option(
            "--out",
            type=click.Path(file_okay=False),
            default=None,
            help="Build directory (default build/<task>-<board>).",
        ),
        click.option("--seed", type=int, default=None, help="Random seed: same seed, same bytes."),
        click.option("--data-dir", type=click.Path(), default=None, help="Folder with the dataset files."),
        click.option("--epochs", type=int, default=None, help="Epochs for the student (KD and baseline)."),
        click.option("--teacher-epochs", type=int, default=None, help="Epochs for the teacher."),
        click.option("--qat-epochs", type=int, default=None, help="Epochs of quantisation-aware fine-tuning."),
        click.option("--temperature", "-T", type=float, default=None, help="Distillation temperature T (> 0)."),
        click.option("--alpha", type=float, default=None, help="Weight of the soft (teacher) loss, in [0, 1]."),
        click.option(
            "--method",
            type=str,
            default=None,
            help="Distillation method: hinton (default), ensemble, specialists, fitnets, rkd, online, self.",
        ),
        click.option("--teacher", type=str, default=None, help="Teacher architecture (e.g. cnn, hinton-1200)."),
        click.option(
            "--teacher-model",
            type=click.Path(dir_okay=False),
            default=None,
            help="A saved teacher (.keras) used instead of training one (e.g. shared by several builds).",
        ),
        click.option("--student", type=str, default=None, help="Student architecture (e.g. mlp-300-300)."),
        click.option("--quick", is_flag=True, help="Tiny data and few epochs: a smoke run in about a minute."),
        click.option("--force", is_flag=True, help="Redo stages even if their results are up to date."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _overrides(opts: dict) -> dict:
    """Map CLI options onto the nested configuration; None means 'not given'."""
    mapping = {
        "board": ("board",),
        "seed": ("seed",),
        "data_dir": ("data", "dir"),
        "epochs": ("student", "epochs"),
        "teacher_epochs": ("teacher", "epochs"),
        "qat_epochs": ("qat", "epochs"),
        "temperature": ("distill", "temperature"),
        "alpha": ("distill", "alpha"),
        "method": ("distill", "method"),
        "teacher": ("teacher", "arch"),
        "student": ("student", "arch"),
        "teacher_model": ("teacher", "model"),
    }
    result: dict = {}
    for key, path in mapping.items():
        value = opts.get(key)
        if value is None:
            continue
        target = result
        for part in path[:-1]:
            target = target.setdefault(part, {})
        target[path[-1]] = str(value) if key in ("data_dir", "teacher_model") else value
    return result


def _open_build(opts: dict, device: dict | None = None):
    from .config import resolve
    from .pipeline import Build, default_out_dir

    overrides = _overrides(opts)
    if device:
        overrides["device"] = device
    config = resolve(task=opts["task"], config_file=opts["config_file"], quick=opts["quick"], overrides=overrides)
    out = Path(opts["out"]) if opts["out"] else default_out_dir(config)
    return Build(config, out, force=opts["force"], log=lambda msg: click.echo(msg, err=True))


def _friendly_errors(func):
    """Turn TinykdError into its message and exit status 2; never show a traceback for those."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except TinykdError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(exc.exit_code)
        except KeyboardInterrupt:
            click.echo(
                "interrupted: finished stages and the last epoch checkpoint are kept; "
                "run the same command again to resume.",
                err=True,
            )
            sys.exit(130)

    return wrapper


@click.group()
@click.version_option(package_name="tinykd")
def main():
    """tinykd: distil a model into a tiny int8 student and prove it on a Cortex-M board."""


@main.command()
@_common_options
@_friendly_errors
def build(**opts):
    """Run every stage: data, teacher, distillation, QAT, int8, C arrays, evaluation, report."""
    b = _open_build(opts)
    b.run_all()
    click.echo(f"Report: {b.out / 'report.md'}")
    device = b.out / "device.json"
    if device.exists() and b.is_done("device"):
        import json

        d = json.loads(device.read_text())
        click.echo(
            f"On {d['board']}: {d['device']['errors']} errors in {d['examples']} test examples "
            f"({100 * d['device']['accuracy']:.2f} %), {d['host_vs_device']['mismatches']} outputs "
            "differing from the host's int8 model."
        )


def _stage_command(stage: str, doc: str):
    @_common_options
    @_friendly_errors
    def command(**opts):
        b = _open_build(opts)
        record = b.run(stage)
        click.echo(f"{stage}: {', '.join(str(b.out / a) for a in record.artifacts)}")

    command.__doc__ = doc
    return main.command(name=stage)(command)


_stage_command("train-teacher", "Train the teacher (teacher.keras).")
_stage_command("distill", "Distil the student from the teacher, and train its no-KD baseline.")
_stage_command("qat", "Quantisation-aware fine-tuning of the student, still distilling.")
_stage_command("convert", "Convert the QAT student to a fully int8 .tflite.")
_stage_command("export", "Write the TFLite Micro C array (model_data.cc/.h).")
_stage_command("report", "Write report.json, report.md and plots/.")


@main.command()
@_common_options
@click.option("--host", is_flag=True, help="Only evaluate on the host (LiteRT and TFLite Micro).")
@click.option("--port", type=str, default=None, help="Serial port of a hardware board (default: found by USB id).")
@click.option("--limit", type=int, default=None, help="Stream only the first N test examples to the device.")
@click.option(
    "--model",
    "model_file",
    type=click.Path(dir_okay=False),
    default=None,
    help="Any int8 .tflite: build firmware for it and check it on the device against TFLite Micro.",
)
@click.option("--random", "random_n", type=int, default=None, help="With --model: number of random inputs.")
@_friendly_errors
def evaluate(host, port, limit, model_file, random_n, **opts):
    """Measure accuracy on the device (QEMU boards are started for you) beside the host's."""
    if model_file:
        from .device.check import check_model_on_device

        board = opts["board"] or "mps2-an386"
        out = Path(opts["out"] or Path("build") / f"{Path(model_file).stem}-{board}")
        result = check_model_on_device(model_file, board, out, n=random_n or 100, port=port, seed=opts["seed"] or 0)
        click.echo(
            f"{result['examples']} random inputs on {result['board']}: "
            f"{result['host_vs_device']['mismatches']} outputs differ from TFLite Micro on the host "
            f"({out / 'device_check.json'})."
        )
        if result["host_vs_device"]["mismatches"]:
            sys.exit(1)
        return
    overrides = {}
    if port:
        overrides["port"] = port
    if limit is not None:
        overrides["limit"] = limit
    b = _open_build(opts, device=overrides)
    b.run("evaluate" if host else "device")
    if not host:
        b.run("report")
    click.echo(f"evaluation: {b.out / ('evaluation.json' if host else 'device.json')}, report: {b.out / 'report.md'}")


@main.command()
@_common_options
@click.option(
    "--model",
    "model_file",
    type=click.Path(dir_okay=False),
    default=None,
    help="Build firmware for this int8 .tflite instead of the build's model.",
)
@_friendly_errors
def firmware(model_file, **opts):
    """Generate model.c/.h and the board's firmware project, compile it, check it fits."""
    if model_file:
        from .firmware.build import build_firmware

        board = opts["board"] or "mps2-an386"
        out = Path(opts["out"] or Path("build") / f"{Path(model_file).stem}-{board}") / "firmware"
        fw = build_firmware(model_file, board, out)
        summary = fw.summary()
    else:
        b = _open_build(opts)
        summary = b.run("firmware").info
        out = b.out / "firmware"
    click.echo(
        f"{summary['board']}: flash {summary['flash_used']:,} / {summary['flash_budget']:,} B, "
        f"RAM {summary['ram_used']:,} / {summary['ram_budget']:,} B (arena {summary['arena_bytes']:,} B)"
    )
    click.echo(f"project: {out}")


@main.command()
@_common_options
@click.option("--port", type=str, default=None, help="Serial port of the board (default: found by USB id).")
@click.option("--seconds", type=float, default=3600.0, help="QEMU boards: stop the emulator after this long.")
@_friendly_errors
def flash(port, seconds, **opts):
    """Put the built firmware on the board. QEMU boards: start it and print its serial address."""
    from .device.flash import flash as flash_board

    b = _open_build(opts)
    b.run("firmware")
    flashed = flash_board(b.board, b.out / "firmware", port=port, time_limit=seconds)
    click.echo(f"{b.board.name} is running the firmware; serial: {flashed.url}")
    if flashed.qemu is not None:
        click.echo("QEMU runs until Ctrl-C (or --seconds). Connect with pyserial's serial_for_url.")
        try:
            flashed.qemu.wait(seconds)
        except KeyboardInterrupt:
            pass
        finally:
            flashed.close()


@main.group(invoke_without_command=True)
@_common_options
@click.pass_context
@_friendly_errors
def data(ctx, **opts):
    """Find (or download) the task's data, verify it, and print what it holds."""
    if ctx.invoked_subcommand is not None:
        return
    from .config import resolve
    from .data import load_dataset

    config = resolve(
        task=opts["task"], config_file=opts["config_file"], quick=opts["quick"], overrides=_overrides(opts)
    )
    for key, value in load_dataset(config).summary().items():
        click.echo(f"{key:>12}: {value}")


@data.command("synth-kws")
@click.option("--out", type=click.Path(file_okay=False), required=True, help="Folder to write the dataset into.")
@click.option(
    "--clips", type=int, default=200, show_default=True, help="Clips per keyword (other words get a quarter)."
)
@click.option("--seed", type=int, default=0, show_default=True, help="Same seed, same audio.")
@_friendly_errors
def synth_kws(out, clips, seed):
    """Speak a keyword-spotting dataset with espeak-ng, in the Speech Commands layout."""
    from .data.kws.synth import synthesize_kws

    manifest = synthesize_kws(out, clips_per_word=clips, seed=seed)
    click.echo(
        f"{out}: {manifest['clips']} clips by {manifest['speakers']} speakers "
        f"({manifest['validation']} validation, {manifest['testing']} test); "
        f"use it with --task kws --data-dir {out}"
    )


@main.command()
@_friendly_errors
def boards():
    """List the boards tinykd can build for."""
    from .boards import list_boards

    for b in list_boards():
        click.echo(
            f"{b.name:<12} {b.cpu:<14} flash {b.flash_bytes // 1024:>5} KB  RAM {b.ram_bytes // 1024:>4} KB  "
            f"{b.description}"
        )


@main.command()
@click.option(
    "--out",
    type=click.Path(file_okay=False),
    default="build/runtime-bench",
    show_default=True,
    help="Where the benchmark's models, firmware and results go.",
)
@_friendly_errors
def bench(out):
    """Benchmark our int8 runtime on QEMU: instructions per MAC, arena and code size vs TFLite Micro."""
    import json

    from .bench import run_runtime_bench

    results = run_runtime_bench(out)
    click.echo(json.dumps(results, indent=2, sort_keys=True)[:4000])


@main.command()
@click.option("--data-dir", type=click.Path(), default=None, help="Folder with the dataset files.")
@_friendly_errors
def doctor(data_dir):
    """What tools, data and serial ports tinykd finds on this machine."""
    from .doctor import run_checks

    for check in run_checks(data_dir):
        click.echo(f"{'ok ' if check.ok else '-- '} {check.name:<18} {check.detail}")


@main.command()
@click.argument("experiment", type=click.Choice(["hinton-mnist"]))
@click.option("--quick", is_flag=True, help="Tiny data and 1-2 epochs: a smoke run in about a minute.")
@click.option(
    "--out",
    type=click.Path(file_okay=False),
    default="build/reproduce-hinton-mnist",
    show_default=True,
    help="Folder for the per-row results, results.json, the table and the plot.",
)
@click.option("--data-dir", type=click.Path(), default=None, help="Folder with the MNIST files.")
@click.option("--seed", type=int, default=0, show_default=True, help="Same seed, same numbers.")
@_friendly_errors
def reproduce(experiment, quick, out, data_dir, seed):
    """Reproduce a paper's experiments; rerunning resumes and skips the rows already done."""
    from .experiments.hinton_mnist import reproduce_hinton_mnist

    result = reproduce_hinton_mnist(
        out, data_dir=data_dir, seed=seed, quick=quick, log=lambda msg: click.echo(msg, err=True)
    )
    click.echo(f"Table: {result.table} (results: {result.results}, plot: {result.plot})")


def _experiment_options(func):
    """Options of the experiments (sweep, fit): the task, data and teacher, not one student's settings."""
    options = [
        click.option("--task", type=str, default=None, help="mnist (default) or kws."),
        click.option("--board", type=str, default=None, help="Board whose budgets apply (default mps2-an386)."),
        click.option(
            "--config",
            "config_file",
            type=click.Path(dir_okay=False),
            default=None,
            help="TOML file with settings (see README).",
        ),
        click.option("--out", type=click.Path(file_okay=False), default=None, help="Output folder."),
        click.option("--seed", type=int, default=None, help="Random seed: same seed, same results."),
        click.option("--data-dir", type=click.Path(), default=None, help="Folder with the dataset files."),
        click.option("--epochs", type=int, default=None, help="Epochs for each student."),
        click.option("--teacher-epochs", type=int, default=None, help="Epochs for the teacher."),
        click.option("--qat-epochs", type=int, default=None, help="Epochs of quantisation-aware fine-tuning."),
        click.option("--teacher", type=str, default=None, help="Teacher architecture to train (e.g. cnn)."),
        click.option(
            "--teacher-model",
            type=click.Path(dir_okay=False),
            default=None,
            help="A saved teacher (.keras) used instead of training one.",
        ),
        click.option("--quick", is_flag=True, help="Tiny data and few epochs: a smoke run."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _experiment_config(opts: dict):
    from .config import resolve

    return resolve(task=opts["task"], config_file=opts["config_file"], quick=opts["quick"], overrides=_overrides(opts))


@main.command()
@_experiment_options
@click.option("--temperatures", default="1,2,4,8,20", show_default=True, help="Comma-separated temperatures.")
@click.option("--alphas", default=None, help="Comma-separated alphas (default: the configured alpha, 0.9).")
@click.option(
    "--students", default="mlp-30-30,mlp-300-300", show_default=True, help="Comma-separated student architectures."
)
@click.option("--methods", default=None, help="Comma-separated methods: hinton, fitnets, rkd (default: hinton).")
@click.option(
    "--int8/--no-int8",
    default=True,
    show_default=True,
    help="Also QAT, convert to int8, count int8 errors in TFLite Micro and size the firmware.",
)
@click.option(
    "--baselines/--no-baselines",
    default=True,
    show_default=True,
    help="Also train each student without a teacher, for comparison.",
)
@_friendly_errors
def sweep(temperatures, alphas, students, methods, int8, baselines, **opts):
    """Distil students over temperatures, alphas, sizes and methods; resumable; table and plots."""
    from .experiments.sweep import default_sweep_dir, parse_grid, run_sweep

    config = _experiment_config(opts)
    grid = parse_grid(temperatures, alphas or f"{config.distill.alpha:g}", students, methods or config.distill.method)
    out = Path(opts["out"]) if opts["out"] else default_sweep_dir(config)
    result = run_sweep(config, out, grid, int8=int8, baselines=baselines, log=lambda msg: click.echo(msg, err=True))
    click.echo(
        f"sweep: {result.trained} points trained, {result.skipped} finished earlier; "
        f"table: {out / 'sweep.md'}, plots: {out / 'plots'}"
    )


@main.command()
@_experiment_options
@click.option("--widths", default="16,32,64,128,256,512", show_default=True, help="Comma-separated layer widths.")
@click.option("--depths", default="1,2,3", show_default=True, help="Comma-separated numbers of hidden layers.")
@click.option("--max-latency", type=float, default=None, help="Latency limit in ms (estimated from MACs).")
@click.option(
    "--min-epochs",
    type=int,
    default=1,
    show_default=True,
    help="Epochs of the first successive-halving round (doubling each round).",
)
@click.option("--temperature", "-T", type=float, default=None, help="Distillation temperature T (> 0).")
@click.option("--alpha", type=float, default=None, help="Weight of the soft (teacher) loss, in [0, 1].")
@click.option("--method", type=str, default=None, help="Distillation method: hinton (default), fitnets, rkd.")
@_friendly_errors
def fit(widths, depths, max_latency, min_epochs, **opts):
    """Find the most accurate int8 MLP student that fits the board (flash, RAM, latency)."""
    from .experiments.fit import default_fit_dir, parse_sizes, run_fit

    config = _experiment_config(opts)
    width_list, depth_list = parse_sizes(widths, depths)
    out = Path(opts["out"]) if opts["out"] else default_fit_dir(config)
    result = run_fit(
        config,
        out,
        width_list,
        depth_list,
        max_latency_ms=max_latency,
        min_epochs=min_epochs,
        log=lambda msg: click.echo(msg, err=True),
    )
    chosen = result.chosen
    click.echo(
        f"chosen: {chosen['arch']} ({chosen['test_errors_int8']} int8 test errors of {chosen['test_total']}, "
        f"flash {chosen['firmware']['flash_used']:,} B, RAM {chosen['firmware']['ram_used']:,} B); "
        f"report: {out / 'fit.md'}"
    )
    click.echo(f"next: {result.next_command}")


if __name__ == "__main__":
    main()
