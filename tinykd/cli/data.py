"""`tinykd data` (find, verify and summarise the task's data) and `tinykd data synth-kws`."""

from __future__ import annotations

import click

from .common import friendly_errors, resolve_config
from .options import WritableFolder, data_options, seed_option


@click.group(invoke_without_command=True)
@data_options
@click.pass_context
@friendly_errors
def data(ctx, **opts):
    """Find (or download) the task's data, verify it, and print what it holds."""
    if ctx.invoked_subcommand is not None:
        return
    from ..data import load_dataset

    for key, value in load_dataset(resolve_config(opts)).summary().items():
        click.echo(f"{key:>12}: {value}")


@data.command("synth-kws")
@click.option("--out", type=WritableFolder(), required=True, help="Folder to write the dataset into.")
@click.option(
    "--clips", type=int, default=200, show_default=True, help="Clips per keyword (other words get a quarter)."
)
@seed_option("Same seed, same audio.", default=0)
@friendly_errors
def synth_kws(out, clips, seed):
    """Speak a keyword-spotting dataset with espeak-ng, in the Speech Commands layout."""
    from ..data.kws.synth import synthesize_kws

    manifest = synthesize_kws(out, clips_per_word=clips, seed=seed)
    click.echo(
        f"{out}: {manifest['clips']} clips by {manifest['speakers']} speakers "
        f"({manifest['validation']} validation, {manifest['testing']} test); "
        f"use it with --task kws --data-dir {out}"
    )


COMMANDS = [data]
