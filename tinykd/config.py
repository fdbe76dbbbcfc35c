"""The build configuration: per-task defaults < TOML file < --quick < command-line options.

The resolved configuration is written to the build directory as config.toml, so any build
can be reproduced with `tinykd build --config build/<task>-<board>/config.toml`.
"""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomli_w

from .errors import TinykdError


@dataclass
class DataConfig:
    dir: str = ""  # folder with the dataset files; "" = $TINYKD_DATA, then the cache
    val_size: int = 5000  # validation examples carved from train (fixed by the seed; image: at most 1/5 of it)
    train_limit: int = 0  # use only this many training examples (0 = all)
    test_limit: int = 0  # evaluate on only this many test examples (0 = all)
    jitter: int = 2  # random shift in pixels during training (Hinton used up to 2)
    # kws: time-shifted, noise-mixed copies of the training clips added to the training set
    augment: int = 0
    # kws without Speech Commands: keyword clips per word in the synthetic set (0 = 200, or
    # fewer when train_limit asks for less)
    synth_clips: int = 0
    # kws: the keywords, the classes besides _silence_ and _unknown_ ([] = Speech Commands' ten:
    # yes, no, up, down, left, right, on, off, stop, go); recorded in dir, or synthesised
    keywords: list[str] = field(default_factory=list)
    # image (tinykd/data/images.py): dir names idx files, a .npz or a folder of class folders
    format: str = "auto"  # auto | idx | npz | folder
    image_size: list[int] = field(default_factory=list)  # [height, width] to resize to ([] = as stored)
    channels: int = 0  # 1 = grey, 3 = RGB (0 = as stored)
    class_names: list[str] = field(default_factory=list)  # the classes' names ([] = from the data)
    test_split: float = 0.0  # a folder without test/: the fraction of each class held out for testing
    # mnist, image: md5 or sha256 of data files, by name relative to the data folder
    # (e.g. {"train-images-idx3-ubyte.gz" = "..."}); downloads are checked against MNIST's own
    checksums: dict[str, str] = field(default_factory=dict)


@dataclass
class TeacherConfig:
    arch: str = "cnn"
    epochs: int = 6
    batch_size: int = 128
    learning_rate: float = 2e-3
    # A saved Keras teacher (.keras/.h5) used instead of training one ("" = train it), so that
    # several builds can share one teacher; builds fingerprint its sha256, not its path.
    model: str = ""


@dataclass
class StudentConfig:
    arch: str = "mlp-300-300"
    epochs: int = 15  # the same for the KD student and its no-KD baseline
    batch_size: int = 128
    learning_rate: float = 2e-3


AUTO = "auto"
# Where no search runs ("auto" with a method that trains peers or generations with the student,
# `tinykd sweep` and `tinykd fit`), "auto" means Hinton et al.'s choice for MNIST: T=20 (every T above 8
# about as good for students of 300 units and more) and alpha=0.9, most weight on the soft
# targets ("considerably lower weight on the second objective").
FALLBACK_TEMPERATURE = 20.0
FALLBACK_ALPHA = 0.9
SHIP_CHOICES = ("better", "kd", "baseline")


@dataclass
class DistillConfig:
    # "auto" (or a number that fixes it): chosen by the build's search on the validation split,
    # over search_temperatures x search_alphas (tinykd.experiments.kd_search.grid_search); what
    # is best depends on the data, the teacher and the student (MNIST's T=20, alpha=0.9 made
    # the student worse on harder digits), so it is measured rather than assumed.
    temperature: float | str = AUTO
    alpha: float | str = AUTO
    # The grid. Hinton's paper found T=2.5-4 best for small students and everything above 8 alike
    # for large ones, so the temperatures double from 1 to 8, then 20; alpha 0.5 (labels and teacher
    # alike) against 0.9 (mostly the teacher). Each point is distilled for search_epochs from the
    # same initial weights on the same batches (only T and alpha differ), on search_train training
    # examples (0 = all): a few epochs rank the points as the full run would, for a fraction of it.
    search_temperatures: list[float] = field(default_factory=lambda: [1.0, 2.0, 4.0, 8.0, 20.0])
    search_alphas: list[float] = field(default_factory=lambda: [0.5, 0.9])
    search_epochs: int = 3
    search_train: int = 20000
    # The KD student and its no-KD baseline stop after this many epochs without fewer validation
    # errors, and keep their best epoch's weights; [student] epochs is the most they train (0 = no
    # early stopping: all epochs, the last epoch's weights).
    patience: int = 3
    # Which student goes on to QAT, int8 and the firmware: "better" (the KD student or the no-KD
    # baseline, whichever has fewer validation errors; the baseline on a tie), or always "kd" or
    # "baseline" (to measure a method's int8 model even where it loses, or to ship labels only).
    ship: str = "better"
    # a name registered in tinykd.distill.methods (hinton, ensemble, specialists, fitnets, rkd,
    # online, self); each method's file says which of the keys below it reads
    method: str = "hinton"
    # ensemble: teachers averaged, the build's teacher included; the others are trained with
    # the [teacher] settings and their own seeds, as ensemble_arch ("" = teacher arch)
    teachers: int = 2
    ensemble_arch: str = ""
    mean: str = "arithmetic"  # arithmetic (of probabilities) | geometric
    # specialists: groups of confused classes, each with its own specialist teacher
    specialists: int = 2
    specialist_classes: int = 3  # at most this many classes per group
    specialist_epochs: int = 2  # fine-tuning from the generalist's weights
    # online: architecture of the peer learning with the student ("" = the student's)
    peer: str = ""
    # self: born-again generations after generation 0 (the no-KD baseline)
    generations: int = 1

    @property
    def searched(self) -> bool:
        """Whether temperature or alpha is left to the build's search."""
        return AUTO in (self.temperature, self.alpha)

    def numbers(self) -> tuple[float, float]:
        """(T, alpha) where no search runs: a fixed value as given, "auto" as the fallback."""
        t = FALLBACK_TEMPERATURE if self.temperature == AUTO else float(self.temperature)
        return t, FALLBACK_ALPHA if self.alpha == AUTO else float(self.alpha)


@dataclass
class QatConfig:
    epochs: int = 2
    batch_size: int = 128
    learning_rate: float = 1e-4
    calibration_samples: int = 500  # representative examples for the int8 converter


@dataclass
class DeviceConfig:
    limit: int = 0  # test examples streamed to the device (0 = the whole test set)
    instances: int = 2  # QEMU boards: instances side by side (its UART is slow)
    port: str = ""  # hardware boards: serial port ("" = find by USB vendor id)
    # The device farm: stream over Ray actors, one per QEMU instance or board (tinykd.device.run.farm),
    # on Ray embedded here (farm) or on the cluster at `address` (HOST:PORT; implies farm).
    farm: bool = False
    address: str = ""


@dataclass
class BuildConfig:
    task: str = "mnist"
    board: str = "mps2-an386"
    seed: int = 0
    # The data's own seed: the validation split (kws: also the synthetic set and its mixing);
    # -1 = the build's seed. Fixed, it lets seeds vary the training alone over one split.
    data_seed: int = -1
    data: DataConfig = field(default_factory=DataConfig)
    teacher: TeacherConfig = field(default_factory=TeacherConfig)
    student: StudentConfig = field(default_factory=StudentConfig)
    distill: DistillConfig = field(default_factory=DistillConfig)
    qat: QatConfig = field(default_factory=QatConfig)
    device: DeviceConfig = field(default_factory=DeviceConfig)

    @property
    def split_seed(self) -> int:
        """The seed the data is split (and, for kws, made) with: data_seed, or the build's seed."""
        return self.seed if self.data_seed < 0 else self.data_seed

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_toml(self) -> str:
        return tomli_w.dumps(self.to_dict())


# Stage seeds are seed * 100 + offset (and + 1000 per ensemble member): all must fit numpy's 32 bits.
MAX_SEED = 10_000_000

# What --quick changes: tiny data and few epochs, for smoke runs and tests.
QUICK: dict[str, Any] = {
    "data": {"val_size": 500, "train_limit": 3000, "test_limit": 500},
    "teacher": {"arch": "mlp-256-256", "epochs": 2},
    "student": {"epochs": 2},
    "qat": {"epochs": 1, "calibration_samples": 100},
    "device": {"limit": 0},
    # The T/alpha search of a smoke run: 2 x 2 points for one epoch, trained together in one graph
    # (a few seconds): it shows the table and the decision, not a tuned T.
    "distill": {"search_temperatures": [2.0, 8.0], "search_alphas": [0.5, 0.9], "search_epochs": 1, "search_train": 0},
}

TASK_DEFAULTS: dict[str, dict[str, Any]] = {
    "mnist": {},
    # Your own images: MNIST's schedule; no jitter unless asked for ([data] jitter), since not
    # every dataset is shift-invariant.
    "image": {},
    # Keyword spotting (Hello Edge DS-CNN). Speech Commands has its own validation list, so
    # val_size is unused; no pixel jitter. The full synthetic set is 10 x 200 keyword clips.
    "kws": {
        "data": {"jitter": 0},
        "teacher": {"epochs": 20, "batch_size": 100, "learning_rate": 2e-3},
        "student": {"epochs": 30, "batch_size": 100, "learning_rate": 2e-3},
        # Hello Edge's students are small: T from 2 to 8 (KWS had T=4, alpha=0.5 fixed before the search).
        "distill": {"search_temperatures": [2.0, 4.0, 8.0], "search_alphas": [0.5, 0.9], "search_train": 0},
        "qat": {"epochs": 3, "batch_size": 100, "learning_rate": 1e-4, "calibration_samples": 500},
        "device": {"limit": 0},
    },
}

# What --quick changes on top of QUICK for a task (applied right after it).
TASK_QUICK: dict[str, dict[str, Any]] = {
    # About 16 synthetic clips per keyword (a few seconds of espeak-ng), small models.
    "kws": {
        "data": {"train_limit": 150, "test_limit": 100},
        "teacher": {"arch": "ds-cnn-s", "epochs": 2},
        "student": {"epochs": 2},
        "qat": {"epochs": 1, "calibration_samples": 50},
        "device": {"limit": 24},
    },
}


def merge(config: BuildConfig, overrides: dict[str, Any], source: str) -> BuildConfig:
    """Apply nested overrides to a config; unknown keys are an error that names the source."""
    values = config.to_dict()
    _merge_into(values, overrides, source, path="")
    return _from_dict(values)


# Settings whose value is a table of the user's own keys (not sections of known settings).
FREE_TABLES = {"data.checksums"}


def _merge_into(values: dict, overrides: dict, source: str, path: str) -> None:
    for key, value in overrides.items():
        where = f"{path}{key}"
        if where in FREE_TABLES and key in values:
            if not isinstance(value, dict) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in value.items()
            ):
                raise TinykdError(
                    f"{source}: '{where}' must be a table of file names and digests "
                    f'(e.g. {{"train-images-idx3-ubyte.gz" = "<sha256>"}}), not {value!r}.'
                )
            values[key] = dict(value)
            continue
        if key not in values:
            known = ", ".join(sorted(values))
            raise TinykdError(
                f"{source}: unknown setting '{where}'. Known settings{' in [' + path[:-1] + ']' if path else ''}: "
                f"{known}. Fix or remove it (tinykd build --help shows every option)."
            )
        if where in AUTO_KEYS:
            values[key] = _auto_or_number(value, where, source)
        elif isinstance(values[key], dict):
            if not isinstance(value, dict):
                raise TinykdError(f"{source}: '{where}' must be a table ([{where}]), not {value!r}.")
            _merge_into(values[key], value, source, path=f"{where}.")
        else:
            values[key] = _coerce(values[key], value, where, source)


# Settings that take a number or "auto" (left to the build's search).
AUTO_KEYS = {"distill.temperature", "distill.alpha"}


def _auto_or_number(value: Any, where: str, source: str) -> float | str:
    if isinstance(value, str) and value.strip().lower() == AUTO:
        return AUTO
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    raise TinykdError(f"{source}: '{where}' must be a number or \"auto\" (chosen on validation), got {value!r}.")


def _coerce(default: Any, value: Any, where: str, source: str) -> Any:
    kind = type(default)
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, kind) and not (kind is int and isinstance(value, bool)):
        return list(value) if kind is list else value
    raise TinykdError(f"{source}: '{where}' must be a {kind.__name__}, got {value!r}.")


_SECTIONS = {
    "data": DataConfig,
    "teacher": TeacherConfig,
    "student": StudentConfig,
    "distill": DistillConfig,
    "qat": QatConfig,
    "device": DeviceConfig,
}


def _from_dict(values: dict[str, Any]) -> BuildConfig:
    return BuildConfig(**{k: _SECTIONS[k](**v) if k in _SECTIONS else v for k, v in values.items()})


def load_toml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    try:
        return tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise TinykdError(f"Config file {path} does not exist. Check the path given to --config.") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise TinykdError(f"Config file {path} is not valid TOML: {exc}. Fix the file and run again.") from None


def resolve(
    task: str | None = None,
    config_file: str | Path | None = None,
    quick: bool = False,
    overrides: dict[str, Any] | None = None,
) -> BuildConfig:
    """Build the configuration from its layers and check it; raises TinykdError on anything wrong."""
    file_values = load_toml(config_file) if config_file else {}
    chosen_task = task or file_values.get("task") or "mnist"
    from .data import get_task

    task_spec = get_task(chosen_task)
    config = BuildConfig(task=chosen_task)
    config = merge(
        config,
        {
            "teacher": {"arch": task_spec.default_teacher},
            "student": {"arch": task_spec.default_student},
            "data": {"jitter": task_spec.jitter_pixels},
        },
        "task defaults",
    )
    config = merge(config, TASK_DEFAULTS.get(chosen_task, {}), "task defaults")
    if file_values:
        config = merge(config, file_values, str(config_file))
    if task:
        config.task = task
    if quick:
        config = merge(config, QUICK, "--quick")
        config = merge(config, TASK_QUICK.get(config.task, {}), "--quick")
    if overrides:
        config = merge(config, overrides, "command line")
    validate(config)
    return config


def validate(config: BuildConfig) -> None:
    if not 0 <= config.seed <= MAX_SEED:
        raise TinykdError(f"seed must be between 0 and {MAX_SEED:,} (got {config.seed}). Give another --seed.")
    if not -1 <= config.data_seed <= MAX_SEED:
        raise TinykdError(
            f"data_seed must be -1 (the build's seed) or between 0 and {MAX_SEED:,} (got {config.data_seed})."
        )
    from .data import get_task
    from .models import check_model_name

    get_task(config.task)
    for section in ("teacher", "student", "qat"):
        part = getattr(config, section)
        if part.epochs < 0 or part.batch_size < 1 or part.learning_rate <= 0:
            raise TinykdError(
                f"[{section}] needs epochs >= 0, batch_size >= 1 and learning_rate > 0 "
                f"(got {part.epochs}, {part.batch_size}, {part.learning_rate})."
            )
    data = config.data
    if data.val_size < 1 or min(data.train_limit, data.test_limit, data.jitter, data.augment, data.synth_clips) < 0:
        raise TinykdError(
            "[data] needs val_size >= 1 and non-negative train_limit, test_limit, jitter, augment and synth_clips."
        )
    task_options = get_task(config.task).data_options
    unused = [k for k in ("augment", "synth_clips", "keywords") if getattr(data, k) and k not in task_options]
    if unused:
        raise TinykdError(
            f"[data] {', '.join(unused)} only apply to the kws task (task '{config.task}' ignores them). "
            "Remove them; for MNIST the training augmentation is [data] jitter."
        )
    if data.keywords:
        from .data.kws.synth import check_words

        check_words(data.keywords, "[data] keywords")
    _validate_image_data(config, task_options)
    if config.device.limit < 0 or config.device.instances < 1:
        raise TinykdError("[device] needs limit >= 0 (0 = all) and instances >= 1.")
    _validate_distill(config)
    check_model_name(config.teacher.arch)
    check_model_name(config.student.arch)
    from .boards import load_board

    load_board(config.board)


IMAGE_KEYS = ("format", "image_size", "channels", "class_names", "test_split", "checksums")


def _validate_image_data(config: BuildConfig, task_options: tuple[str, ...]) -> None:
    """The image task's [data] keys: well formed, and set only for a task that reads them."""
    from .data.checksums import check_digest_format
    from .data.images import FORMATS

    data, default = config.data, DataConfig()
    unused = [k for k in IMAGE_KEYS if getattr(data, k) != getattr(default, k) and k not in task_options]
    if unused:
        readers = sorted(t for t in ("image", "mnist") if all(k in _task_options(t) for k in unused))
        raise TinykdError(
            f"[data] {', '.join(unused)} {'do' if len(unused) > 1 else 'does'} not apply to task "
            f"'{config.task}' (only to {', '.join(readers) or 'the image task'}). Remove "
            f"{'them' if len(unused) > 1 else 'it'}, or use --task image for your own images."
        )
    if data.format not in FORMATS:
        raise TinykdError(f"[data] format must be one of {', '.join(FORMATS)}, not {data.format!r}.")
    size = data.image_size
    if size and (len(size) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in size)):
        raise TinykdError(
            f"[data] image_size must be [height, width] in pixels, two whole numbers >= 1 (e.g. [32, 32]), "
            f"not {size!r}; or [] to keep the images' own size."
        )
    if data.channels not in (0, 1, 3):
        raise TinykdError(f"[data] channels must be 1 (grey), 3 (RGB) or 0 (as stored), not {data.channels}.")
    names = data.class_names
    if names and (not all(isinstance(n, str) and n for n in names) or len(set(names)) != len(names)):
        raise TinykdError(f"[data] class_names must be distinct, non-empty strings (got {names!r}).")
    if not 0.0 <= data.test_split < 1.0:
        raise TinykdError(
            f"[data] test_split must be in [0, 1), the fraction held out for testing (got {data.test_split})."
        )
    for name, digest in data.checksums.items():
        check_digest_format(name, digest)


def _task_options(name: str) -> tuple[str, ...]:
    from .data import TASKS

    return TASKS[name].data_options


def _validate_distill(config: BuildConfig) -> None:
    """Temperature and alpha, the method's name, then every method's own keys (a bad value is an
    error whichever method is chosen: the file would break the day the method is switched)."""
    from .distill.methods import RECIPES, get_recipe
    from .distill.methods.base import check_temperature_alpha

    kd = config.distill
    check_temperature_alpha(*kd.numbers())
    if not kd.search_temperatures or not all(isinstance(t, int | float) and t > 0 for t in kd.search_temperatures):
        raise TinykdError(
            f"[distill] search_temperatures must be a non-empty list of temperatures > 0 (got "
            f"{kd.search_temperatures!r}), e.g. [1, 2, 4, 8, 20]."
        )
    if not kd.search_alphas or not all(isinstance(a, int | float) and 0 <= a <= 1 for a in kd.search_alphas):
        raise TinykdError(
            f"[distill] search_alphas must be a non-empty list of alphas in [0, 1] (got {kd.search_alphas!r}), "
            "e.g. [0.5, 0.9]."
        )
    if kd.ship not in SHIP_CHOICES:
        raise TinykdError(
            f"[distill] ship must be one of {', '.join(SHIP_CHOICES)} (got '{kd.ship}'): better ships whichever of "
            "the KD student and the no-KD baseline has fewer validation errors, kd and baseline ship that one "
            "always. Use --ship better, kd or baseline."
        )
    if kd.search_epochs < 1 or kd.search_train < 0 or kd.patience < 0:
        raise TinykdError(
            f"[distill] needs search_epochs >= 1, search_train >= 0 (0 = all) and patience >= 0 (0 = no early "
            f"stopping); got {kd.search_epochs}, {kd.search_train} and {kd.patience}."
        )
    get_recipe(kd.method)
    for recipe in RECIPES.values():
        recipe.check(config)
    if config.teacher.model:
        path = Path(config.teacher.model)
        if not path.is_file() or path.suffix not in (".keras", ".h5"):
            raise TinykdError(
                f"The teacher model {path} (--teacher-model or [teacher] model) is not a .keras or .h5 file "
                "that exists. Give the path of a saved teacher (e.g. another build's teacher.keras), or leave "
                "it empty to train one."
            )
