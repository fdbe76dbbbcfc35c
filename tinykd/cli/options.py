"""The CLI's options, each written once, and the small named groups commands take them in.

A command takes only the options it uses: `build` and the stage commands the whole build
configuration (`build_options`), `data` only what picks the data (`data_options`), `sweep`
and `fit` the task, the teacher and the training lengths (`experiment_options`), and so on.
`--task` and `--method` accept the registries' names (`RegistryChoice`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import click

from ..boards import DEFAULT_BOARD
from ..config import SHIP_CHOICES


def compose(*decorators: Callable) -> Callable:
    """One decorator that applies several, the first one outermost (as if stacked in order)."""

    def apply(func):
        for decorator in reversed(decorators):
            func = decorator(func)
        return func

    return apply


class RegistryChoice(click.Choice):
    """A click.Choice over a registry's names, read only when a value is checked or the help
    shown (the method registry imports TensorFlow; `tinykd boards` should not wait for it)."""

    def __init__(self, what: str, names: Callable[[], Iterable[str]]):
        self._what = what
        self._names = names
        self._loaded: tuple[str, ...] | None = None
        super().__init__(())

    @property
    def choices(self) -> tuple[str, ...]:
        if self._loaded is None:
            self._loaded = tuple(self._names())
        return self._loaded

    @choices.setter
    def choices(self, value) -> None:  # click.Choice.__init__ sets it; the registry decides
        pass

    def convert(self, value, param, ctx):
        if value not in self.choices:
            self.fail(f"Unknown {self._what} '{value}'. Choose one of: {', '.join(self.choices)}.", param, ctx)
        return value


def _task_names() -> Iterable[str]:
    from ..data import TASKS

    return TASKS


def _method_names() -> Iterable[str]:
    from ..distill.methods import METHODS

    return METHODS


# ------------------------------------------------------------------ one option each

task_option = click.option(
    "--task", type=RegistryChoice("task", _task_names), default=None, help="The task (default mnist)."
)
board_option = click.option(
    "--board",
    type=str,
    default=None,
    help=f"Target board, whose flash and RAM budgets apply (see `tinykd boards`); default {DEFAULT_BOARD}.",
)
config_option = click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False),
    default=None,
    help="TOML file with settings (see README).",
)
force_option = click.option("--force", is_flag=True, help="Redo stages even if their results are up to date.")
port_option = click.option(
    "--port", type=str, default=None, help="Serial port of a hardware board (default: found by USB id)."
)


class WritableFolder(click.Path):
    """A folder that exists and is writable, or can be made: refused before any work starts."""

    def __init__(self):
        super().__init__(file_okay=False)

    def convert(self, value, param, ctx):
        import tempfile
        from pathlib import Path

        folder = Path(super().convert(value, param, ctx))
        try:  # the command writes there anyway; trying is the only test that holds for root too
            folder.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=folder):
                pass
        except OSError as exc:
            self.fail(
                f"{folder} cannot be written ({exc.strerror or exc}). Choose an output folder you can write to.",
                param,
                ctx,
            )
        return str(folder)


def out_option(help: str, default: str | None = None):
    return click.option("--out", type=WritableFolder(), default=default, show_default=default is not None, help=help)


def seed_option(help: str = "Random seed: same seed, same bytes.", default: int | None = None):
    from ..config import MAX_SEED

    return click.option(
        "--seed",
        type=click.IntRange(0, MAX_SEED),
        default=default,
        show_default=default is not None,
        help=help,
    )


def data_dir_option(help: str = "Folder with the dataset files (for --task image also one .npz file)."):
    return click.option("--data-dir", type=click.Path(exists=True), default=None, help=help)


class KeywordList(click.ParamType):
    """Comma-separated keywords (marvin,sheila): plain lowercase words, each once."""

    name = "WORD,WORD,..."

    def convert(self, value, param, ctx):
        if isinstance(value, list):
            return value
        words = [w.strip() for w in str(value).split(",")]
        bad = [w for w in words if not (w.isascii() and w.isalpha() and w.islower())]
        if bad:
            self.fail(
                f"'{value}': keywords are plain lowercase words of letters a-z separated by commas "
                "(e.g. marvin,sheila), one folder each.",
                param,
                ctx,
            )
        if len(set(words)) != len(words):
            self.fail(f"'{value}' names a keyword twice.", param, ctx)
        return words


def keywords_option(help: str = "Keywords to spot (kws), e.g. marvin,sheila: recorded in --data-dir or synthesised."):
    return click.option("--keywords", type=KeywordList(), default=None, help=help)


def quick_option(help: str = "Tiny data and few epochs: a smoke run in about a minute."):
    return click.option("--quick", is_flag=True, help=help)


def model_option(help: str):
    return click.option("--model", "model_file", type=click.Path(dir_okay=False), default=None, help=help)


# ------------------------------------------------------------------ the groups commands take

# What picks the data: `tinykd data`, and the start of every training command.
data_options = compose(task_option, config_option, data_dir_option(), keywords_option(), seed_option(), quick_option())

teacher_options = compose(
    click.option("--teacher", type=str, default=None, help="Teacher architecture to train (e.g. cnn, hinton-1200)."),
    click.option("--teacher-epochs", type=int, default=None, help="Epochs for the teacher."),
    click.option(
        "--teacher-model",
        type=click.Path(dir_okay=False),
        default=None,
        help="A saved teacher (.keras) used instead of training one (e.g. shared by several builds).",
    ),
)

# How long students train: every command that trains students.
student_epochs_options = compose(
    click.option("--epochs", type=int, default=None, help="Epochs for each student (KD and baseline)."),
    click.option("--qat-epochs", type=int, default=None, help="Epochs of quantisation-aware fine-tuning."),
)


class AutoOrNumber(click.ParamType):
    """A number, or "auto": left to the build's search on the validation split."""

    name = "NUMBER|auto"

    def convert(self, value, param, ctx):
        if isinstance(value, float) or value == "auto":
            return value
        text = str(value).strip().lower()
        if text == "auto":
            return "auto"
        try:
            return float(text)
        except ValueError:
            self.fail(f"'{value}' is neither a number nor 'auto' (chosen on the validation split).", param, ctx)


# How a student is distilled: `build` and the stage commands, `fit`.
distill_options = compose(
    click.option(
        "--temperature",
        "-T",
        type=AutoOrNumber(),
        default=None,
        help="Distillation temperature T (> 0), or auto (default): chosen on the validation split.",
    ),
    click.option(
        "--alpha",
        type=AutoOrNumber(),
        default=None,
        help="Weight of the soft (teacher) loss, in [0, 1], or auto (default): chosen on the validation split.",
    ),
    click.option(
        "--method",
        type=RegistryChoice("distillation method", _method_names),
        default=None,
        help="Distillation method (default hinton).",
    ),
)
# Only a build ships a model.
ship_option = click.option(
    "--ship",
    type=click.Choice(SHIP_CHOICES),
    default=None,
    help="Model carried into QAT, int8 and the firmware: better (default: the KD student or the no-KD "
    "baseline, whichever has fewer validation errors), or always kd or baseline.",
)

# The commands that train teachers and students for many students at once: `sweep`, `fit`.
experiment_options = compose(data_options, board_option, teacher_options, student_epochs_options)

# The whole build configuration: `build`, the stage commands, and `evaluate`, `firmware` and
# `flash` on a build (they run the stages they need first).
build_options = compose(
    experiment_options,
    distill_options,
    ship_option,
    click.option("--student", type=str, default=None, help="Student architecture (e.g. mlp-300-300)."),
    out_option("Build directory (default build/<task>-<board>)."),
    force_option,
)
