"""`tinykd` command line: parses options and calls the library; nothing else lives here.

One module per group of commands: `build` (build and the stage commands), `device`
(firmware, flash, evaluate), `data`, `experiments` (sweep, fit, reproduce) and `tools`
(boards, doctor, bench); `options` writes each option once, `common` what they share.
"""

from __future__ import annotations

import click

from . import build, data, device, experiments, tools


@click.group()
@click.version_option(package_name="tinykd")
@click.option(
    "--verbose", "-v", is_flag=True, help="Show TensorFlow's own start-up and warning lines (hidden by default)."
)
def main(verbose: bool):
    """tinykd: distil a model into a tiny int8 student and prove it on a Cortex-M board."""
    if not verbose:
        from ..quiet import silence_tensorflow_startup

        silence_tensorflow_startup()


for _module in (build, device, data, experiments, tools):
    for _command in _module.COMMANDS:
        main.add_command(_command)

__all__ = ["main"]
