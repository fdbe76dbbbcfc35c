"""The commands about the machine and the runtime: `tinykd boards`, `tinykd doctor`, `tinykd bench`."""

from __future__ import annotations

from pathlib import Path

import click

from .common import friendly_errors
from .options import data_dir_option, out_option


@click.command()
@click.option(
    "--select",
    is_flag=True,
    help="Rank the boards where --model fits by unit price, with its flash, RAM and latency on each.",
)
@click.option(
    "--model",
    "model_file",
    type=click.Path(),
    default=None,
    help="With --select: an int8 .tflite, or a build folder (its model_int8.tflite).",
)
@click.option("--max-latency-ms", type=float, default=None, help="With --select: drop boards slower than this.")
@click.option(
    "--board",
    "board_names",
    multiple=True,
    help="With --select: consider only these boards (repeat the option); default every board with a price.",
)
@out_option("With --select: where select.json, select.md and select.png go.", default="runs/select")
@friendly_errors
def boards(select, model_file, max_latency_ms, board_names, out):
    """List the boards tinykd can build for; with --select, the cheapest that run a model."""
    from ..boards import list_boards
    from ..errors import TinykdError

    if not select:
        if model_file or max_latency_ms is not None or board_names:
            raise TinykdError("--model, --max-latency-ms and --board go with --select: add --select.")
        click.echo(boards_table(list_boards()))
        return
    if not model_file:
        raise TinykdError(
            "--select needs the model to place: --model MODEL.tflite (or --model BUILD_FOLDER after `tinykd build`)."
        )
    from ..experiments.board_select import select_boards

    selection = select_boards(
        model_file, out, max_latency_ms=max_latency_ms, boards=list(board_names) or None, log=click.echo
    )
    click.echo((Path(out) / "select.md").read_text())
    click.echo(f"Written: {Path(out) / 'select.json'}, select.md, select.png")
    if not selection.chosen:
        raise SystemExit(1)


def boards_table(boards) -> str:
    """One line per board: core, clock, what the application may use of flash and RAM (after an
    OS core's own share), unit price and how an image gets there."""
    rows = [("board", "core", "MHz", "flash KB", "RAM KB", "USD", "flashed with", "")]
    for b in boards:
        flash, ram = b.app_flash_bytes // 1024, b.app_ram_bytes // 1024
        price = f"{b.price_usd:.2f}" if b.price_usd is not None else "virtual"
        rows.append(
            (
                b.name,
                b.core,
                f"{b.clock_hz / 1e6:g}",
                str(flash),
                str(ram),
                price,
                "/".join(b.flash_methods),
                b.description,
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(r[:-1], widths, strict=True)) + "  " + r[-1] for r in rows]
    return "\n".join(line.rstrip() for line in lines)


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
