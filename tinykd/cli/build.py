"""`tinykd build` and the stage commands (train-teacher, distill, qat, convert, export, report)."""

from __future__ import annotations

import click

from .common import friendly_errors, open_build
from .options import build_options


@click.command()
@build_options
@friendly_errors
def build(**opts):
    """Run every stage: data, teacher, distillation, QAT, int8, C arrays, evaluation, report."""
    b = open_build(opts)
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


def _stage_command(stage: str, doc: str) -> click.Command:
    """A command that runs one stage (and the ones it needs first) of the build the options describe."""

    @build_options
    @friendly_errors
    def command(**opts):
        b = open_build(opts)
        record = b.run(stage)
        click.echo(f"{stage}: {', '.join(str(b.out / a) for a in record.artifacts)}")

    command.__doc__ = doc
    return click.command(name=stage)(command)


COMMANDS = [
    build,
    _stage_command("train-teacher", "Train the teacher (teacher.keras)."),
    _stage_command("distill", "Distil the student from the teacher, and train its no-KD baseline."),
    _stage_command("qat", "Quantisation-aware fine-tuning of the student, still distilling."),
    _stage_command("convert", "Convert the QAT student to a fully int8 .tflite."),
    _stage_command("export", "Write the TFLite Micro C array (model_data.cc/.h)."),
    _stage_command("report", "Write report.json, report.md and plots/."),
]
