"""The experiments: `tinykd sweep`, `tinykd fit` and `tinykd reproduce`."""

from __future__ import annotations

import click

from .common import friendly_errors, log, out_dir, resolve_config
from .options import (
    compose,
    data_dir_option,
    distill_options,
    experiment_options,
    out_option,
    quick_option,
    seed_option,
)

# Where the trials run: Ray embedded on this machine unless an address (or RAY_ADDRESS) names a
# cluster. `tinykd evaluate`'s device farm can take the same options.
ray_options = compose(
    click.option(
        "--address",
        type=str,
        default=None,
        help="Join the Ray cluster at HOST:PORT (from `ray start --head`; default: $RAY_ADDRESS, else run "
        "on this machine with Ray embedded).",
    ),
    click.option(
        "--cpus-per-trial",
        type=int,
        default=1,
        show_default=True,
        help="CPUs each trial declares to Ray, and TensorFlow threads it trains with.",
    ),
)


def ray_settings(opts: dict):
    """RayOptions from --address and --cpus-per-trial, verbose with the group's --verbose."""
    from ..trials import RayOptions

    root = click.get_current_context().find_root()
    return RayOptions(
        address=opts.pop("address"),
        cpus_per_trial=opts.pop("cpus_per_trial"),
        verbose=bool(root.params.get("verbose")),
    )


@click.command()
@experiment_options
@out_option("Output folder (default build/sweep-<task>-<board>).")
@click.option("--temperatures", default="1,2,4,8,20", show_default=True, help="Comma-separated temperatures.")
@click.option("--alphas", default=None, help="Comma-separated alphas (default: the configured alpha, 0.9).")
@click.option(
    "--students", default="mlp-30-30,mlp-300-300", show_default=True, help="Comma-separated student architectures."
)
@click.option(
    "--methods",
    default=None,
    help="Comma-separated distillation methods: those over the teacher, and ensemble/specialists with their own "
    "models trained once (default: hinton); a wrong name lists them.",
)
@click.option(
    "--seeds",
    default=None,
    help="Comma-separated student seeds: every point trained once per seed (the teacher is --seed's), and the "
    "summary gives each point's mean ± sd and whether it beats the no-KD baseline beyond the seeds' spread.",
)
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
@ray_options
@friendly_errors
def sweep(temperatures, alphas, students, methods, seeds, int8, baselines, **opts):
    """Distil students over temperatures, alphas, sizes and methods; resumable; table and plots."""
    from ..experiments.sweep import default_sweep_dir, parse_grid, run_sweep

    ray = ray_settings(opts)
    ray.check()
    config = resolve_config(opts)
    alpha = config.distill.numbers()[1]  # "auto" (no search in a sweep): the fallback alpha
    grid = parse_grid(temperatures, alphas or f"{alpha:g}", students, methods or config.distill.method, seeds)
    out = out_dir(opts["out"], default_sweep_dir(config))
    result = run_sweep(config, out, grid, int8=int8, baselines=baselines, ray=ray, log=log)
    click.echo(
        f"sweep: {result.trained} points trained, {result.skipped} finished earlier; "
        f"table: {out / 'sweep.md'}, plots: {out / 'plots'}"
    )


@click.command()
@experiment_options
@distill_options
@out_option("Output folder (default build/fit-<task>-<board>).")
@click.option(
    "--widths",
    default=None,
    help="Comma-separated widths: units per hidden layer (MNIST MLPs; default 16,32,64,128,256,512) or "
    "channels (KWS DS-CNNs; default 16,32,48,64).",
)
@click.option(
    "--depths",
    default=None,
    help="Comma-separated depths: hidden layers (MLPs; default 1,2,3) or depthwise-separable blocks "
    "(DS-CNNs; default 2,3,4).",
)
@click.option("--max-latency", type=float, default=None, help="Latency limit in ms (estimated from MACs).")
@click.option(
    "--budget-usd",
    type=float,
    default=None,
    help="Instead of --board: search over every board with a unit price up to this (see `tinykd boards`); "
    "the most accurate student wins, on the cheapest board it fits.",
)
@click.option(
    "--min-epochs",
    type=int,
    default=1,
    show_default=True,
    help="Epochs before ASHA's first rung (then doubling, up to the student epochs).",
)
@ray_options
@friendly_errors
def fit(widths, depths, max_latency, budget_usd, min_epochs, **opts):
    """Find the most accurate int8 MLP student that fits the board (flash, RAM, latency), or the
    boards within a price (--budget-usd)."""
    from ..errors import TinykdError
    from ..experiments.fit import FAMILIES, default_fit_dir, parse_sizes, run_fit

    if budget_usd is not None and opts.get("board"):
        raise TinykdError("--budget-usd searches over every board within that price: leave out --board.")
    if budget_usd is not None and not budget_usd > 0:
        raise TinykdError(f"--budget-usd must be a price above 0 (got {budget_usd:g}).")
    ray = ray_settings(opts)
    ray.check()
    config = resolve_config(opts)
    family = FAMILIES.get(config.task)
    width_list, depth_list = (
        parse_sizes(widths or family.widths, depths or family.depths, family) if family else (None, None)
    )
    out = out_dir(opts["out"], default_fit_dir(config, budget_usd))
    result = run_fit(
        config,
        out,
        width_list,
        depth_list,
        max_latency_ms=max_latency,
        budget_usd=budget_usd,
        min_epochs=min_epochs,
        ray=ray,
        log=log,
    )
    chosen = result.chosen
    click.echo(
        f"chosen: {chosen['arch']} on {chosen['firmware']['board']} ({chosen['test_errors_int8']} int8 test "
        f"errors of {chosen['test_total']}, "
        f"flash {chosen['firmware']['flash_used']:,} B, RAM {chosen['firmware']['ram_used']:,} B); "
        f"report: {out / 'fit.md'}"
    )
    click.echo(f"next: {result.next_command}")


@click.command()
@click.argument("experiment", type=click.Choice(["hinton-mnist"]))
@quick_option("Tiny data and 1-2 epochs: a smoke run in about a minute.")
@out_option(
    "Folder for the per-row results, results.json, the table and the plot.", default="build/reproduce-hinton-mnist"
)
@data_dir_option("Folder with the MNIST files.")
@seed_option("Same seed, same numbers.", default=0)
@friendly_errors
def reproduce(experiment, quick, out, data_dir, seed):
    """Reproduce a paper's experiments; rerunning resumes and skips the rows already done."""
    from ..experiments.hinton_mnist import reproduce_hinton_mnist

    result = reproduce_hinton_mnist(out, data_dir=data_dir, seed=seed, quick=quick, log=log)
    click.echo(f"Table: {result.table} (results: {result.results}, plot: {result.plot})")


COMMANDS = [sweep, fit, reproduce]
