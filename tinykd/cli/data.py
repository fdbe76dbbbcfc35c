"""`tinykd data` (find, verify and summarise the task's data), `tinykd data synth-kws` (speak a
keyword set) and `tinykd data transfer` (score a KWS model on recordings it never saw).

`transfer` lives here rather than in `tinykd evaluate`: evaluate measures a build on its own test
split, on the device; transfer asks what a folder of other data makes of a finished model, on
the host, with no board and no build stage run or changed."""

from __future__ import annotations

from pathlib import Path

import click

from .common import friendly_errors, resolve_config
from .options import WritableFolder, data_options, keywords_option, seed_option


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
    "--clips",
    type=int,
    default=200,
    show_default=True,
    help="Clips per keyword (other words get a quarter).",
)
@keywords_option("Keywords to speak (default the ten Speech Commands keywords); other words become _unknown_.")
@click.option(
    "--recipe",
    type=click.Choice(["mixed", "espeak"]),
    default="mixed",
    show_default=True,
    help="mixed: espeak-ng, flite and festival speakers, rooms, microphones; espeak: espeak-ng alone.",
)
@click.option(
    "--backgrounds",
    type=click.Path(exists=True, file_okay=False),
    default=None,
    help="A folder of long noise recordings (Speech Commands' _background_noise_) mixed in too.",
)
@seed_option("Same seed, same audio.", default=0)
@friendly_errors
def synth_kws(out, clips, keywords, recipe, backgrounds, seed):
    """Speak a keyword-spotting dataset, in the Speech Commands layout."""
    from ..data.kws.synth import synthesize_kws

    manifest = synthesize_kws(
        out, clips_per_word=clips, seed=seed, keywords=keywords, recipe=recipe, backgrounds_dir=backgrounds
    )
    engines = ", ".join(f"{name} {count}" for name, count in manifest.get("engines", {}).items())
    click.echo(
        f"{out}: {manifest['clips']} clips by {manifest['speakers']} speakers ({engines}; "
        f"{manifest['validation']} validation, {manifest['testing']} test); "
        f"use it with --task kws --data-dir {out}" + (f" --keywords {','.join(keywords)}" if keywords else "")
    )


@data.command("transfer")
@click.option(
    "--model",
    "model",
    type=click.Path(exists=True),
    required=True,
    help="A KWS build folder (its model_int8.tflite and keywords) or an int8 .tflite.",
)
@click.option(
    "--real-clips",
    "clips",
    type=str,
    required=True,
    help="Word folders of WAV clips (Speech Commands layout; any rate, channels, format), never trained on.",
)
@keywords_option("The model's keywords in class order (default: the build's, else the ten Speech Commands ones).")
@click.option(
    "--out",
    type=WritableFolder(),
    default=None,
    help="Where transfer.json and the plot go (default: the model's folder).",
)
@friendly_errors
def transfer(model, clips, keywords, out):
    """Score a KWS model on recorded clips: keywords recognised, other words rejected."""
    from ..data.kws.transfer import evaluate_clips
    from ..errors import TinykdError

    if not Path(clips).is_dir():
        raise TinykdError(f"--real-clips {clips} does not exist or is not a folder; pass a folder of word folders.")
    folder = Path(out) if out else (Path(model) if Path(model).is_dir() else Path(model).parent)
    result = evaluate_clips(model, clips, keywords=keywords, out=folder)
    click.echo(result.summary())
    click.echo(f"Details: {folder / 'transfer.json'}, confusion matrix: {folder / 'transfer_confusion.png'}")


COMMANDS = [data]
