"""The commands about the machine and the runtime: `tinykd boards`, `tinykd doctor`, `tinykd bench`."""

from __future__ import annotations

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
@friendly_errors
def bench(out):
    """Benchmark our int8 runtime on QEMU: instructions per MAC, arena and code size vs TFLite Micro."""
    import json

    from ..bench import run_runtime_bench

    results = run_runtime_bench(out)
    click.echo(json.dumps(results, indent=2, sort_keys=True)[:4000])


COMMANDS = [boards, doctor, bench]
