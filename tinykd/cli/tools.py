"""The commands about the machine and the runtime: `tinykd boards`, `tinykd doctor`, `tinykd bench`."""

from __future__ import annotations

from pathlib import Path

import click

from .common import friendly_errors
from .options import data_dir_option, out_option


@click.command()
@friendly_errors
def boards():
    """List the boards tinykd can build for."""
    from ..boards import list_boards

    for b in list_boards():
        click.echo(
            f"{b.name:<12} {b.cpu:<14} flash {b.flash_bytes // 1024:>5} KB  RAM {b.ram_bytes // 1024:>4} KB  "
            f"{b.description}"
        )


@click.command()
@data_dir_option()
@friendly_errors
def doctor(data_dir):
    """What tools, data and serial ports tinykd finds on this machine."""
    from ..doctor import run_checks

    for check in run_checks(data_dir):
        click.echo(f"{'ok ' if check.ok else '-- '} {check.name:<18} {check.detail}")


@click.command()
@out_option("Where the benchmark's models, firmware and results go.", default="build/runtime-bench")
@click.option(
    "--fuzz",
    "fuzz_models",
    type=click.IntRange(min=1),
    default=None,
    help="Instead: N random int8 models, our generated C against TFLite Micro on every output byte.",
)
@click.option(
    "--hostile",
    "hostile_cases",
    type=click.IntRange(min=1),
    default=None,
    help="Instead: N damaged .tflite files (mutated valid models) through the reader and code generator: "
    "each must end in a clear error or in sanitizer-clean C that matches TFLite Micro.",
)
@click.option(
    "--seed", type=click.IntRange(min=0), default=0, show_default=True, help="With --fuzz or --hostile: the first seed."
)
@friendly_errors
def bench(out, fuzz_models, hostile_cases, seed):
    """Benchmark our int8 runtime on QEMU: instructions per MAC, arena and code size vs TFLite Micro."""
    import json
    import sys

    if fuzz_models is not None and hostile_cases is not None:
        raise click.UsageError("--fuzz and --hostile are two different runs: give one of them.")
    if hostile_cases is not None:
        from ..fileio import write_json
        from ..fuzz.hostile import run_hostile

        report = run_hostile(hostile_cases, seed=seed, out_dir=out)
        write_json(Path(out) / "hostile.json", report.to_json())
        click.echo(report.summary())
        if report.findings:
            sys.exit(1)
        return
    if fuzz_models is not None:
        from dataclasses import asdict

        from ..fileio import write_json
        from ..fuzz import run_fuzz

        report = run_fuzz(fuzz_models, seed=seed, out_dir=out)
        write_json(Path(out) / "fuzz.json", {**asdict(report), "failures": [asdict(f) for f in report.failures]})
        click.echo(report.summary())
        if report.mismatching_bytes or report.failing_models:
            sys.exit(1)
        return
    from ..bench import run_runtime_bench

    results = run_runtime_bench(out)
    click.echo(json.dumps(results, indent=2, sort_keys=True)[:4000])


COMMANDS = [boards, doctor, bench]
