"""What `tinykd reproduce hinton-mnist` trains: its settings (full or --quick) and its rows, in
the order they run (Hinton, Vinyals & Dean 2015, §3; see `hinton_mnist`)."""

from __future__ import annotations

import zlib
from dataclasses import dataclass

OMITTED_CLASS = 3


@dataclass(frozen=True)
class Settings:
    """Everything that decides the numbers; a row is redone when its share of these changes."""

    seed: int = 0
    quick: bool = False
    val_size: int = 5000
    train_limit: int = 0
    test_limit: int = 0
    # The whole table within 90 minutes on a quiet 2-core machine, most of it the teacher's
    # (~15 s an epoch): a tenth of that teacher made 126-131 errors, not the paper's 67.
    teacher_epochs: int = 300
    big_epochs: int = 25  # the 800-800 nets
    small_epochs: int = 12  # the 300-300 and 30-30 students
    batch_size: int = 256
    learning_rate: float = 0.002  # the students' (Adam)
    # The teacher as the paper's dropout nets were trained: SGD with Nesterov momentum, a large rate.
    teacher_optimizer: str = "sgd"
    teacher_learning_rate: float = 0.1
    alpha: float = 0.9  # weight of the soft targets
    teacher_jitter: int = 2
    big_temperature: float = 20.0
    small_widths: tuple[int, ...] = (300, 30)
    temperatures: tuple[float, ...] = (2.5, 4.0, 8.0, 20.0)

    @classmethod
    def for_run(cls, seed: int = 0, quick: bool = False) -> Settings:
        if not quick:
            return cls(seed=seed)
        return cls(
            seed=seed,
            quick=True,
            val_size=500,
            train_limit=2000,
            test_limit=1000,
            batch_size=128,
            teacher_epochs=2,
            big_epochs=1,
            small_epochs=1,
            temperatures=(2.5, 20.0),
        )


@dataclass(frozen=True)
class Row:
    """One trained model of the table."""

    name: str
    experiment: str
    arch: str
    epochs: int
    temperature: float | None = None  # None: labels only
    jitter: int = 0
    omit_class: int | None = None
    optimizer: str = "adam"
    learning_rate: float | None = None  # None: the settings' student learning rate

    def settings(self, s: Settings) -> dict:
        shared = {
            "seed": s.seed,
            "val_size": s.val_size,
            "train_limit": s.train_limit,
            "test_limit": s.test_limit,
            "batch_size": s.batch_size,
        }
        mine = {
            "arch": self.arch,
            "epochs": self.epochs,
            "jitter": self.jitter,
            "optimizer": self.optimizer,
            "learning_rate": self.lr(s),
        }
        if self.temperature is not None:
            mine.update(
                temperature=self.temperature,
                alpha=s.alpha,
                omit_class=self.omit_class,
                teacher=teacher_row(s).settings(s),
            )
        return {**shared, **mine}

    def lr(self, s: Settings) -> float:
        return s.learning_rate if self.learning_rate is None else self.learning_rate

    def seed(self, s: Settings) -> int:
        # Each row its own random stream, fixed by the run's seed and the row's name.
        return s.seed * 1000 + zlib.crc32(self.name.encode()) % 1000


def _t_name(t: float) -> str:
    return f"{t:g}".replace(".", "p")


def teacher_row(s: Settings) -> Row:
    return Row(
        "teacher",
        "teacher 1200-1200, dropout, max-norm, jitter ±2",
        "hinton-1200",
        s.teacher_epochs,
        jitter=s.teacher_jitter,
        optimizer=s.teacher_optimizer,
        learning_rate=s.teacher_learning_rate,
    )


def plan(s: Settings) -> list[Row]:
    """The rows in the order they run: the paper's headline numbers first."""
    t = s.big_temperature
    rows = [
        teacher_row(s),
        Row("baseline-800", "800-800, labels only, no regularisation", "mlp-800-800", s.big_epochs),
        Row("kd-800", f"800-800 distilled, T={t:g}", "mlp-800-800", s.big_epochs, temperature=t),
        # Not in the paper: the same student with the teacher's soft targets on the ±2 px shifts the
        # teacher itself learned from, to measure what the unshifted transfer set leaves out.
        Row(
            "kd-800-jitter",
            f"800-800 distilled, T={t:g}, transfer set jittered ±{s.teacher_jitter} (not in the paper)",
            "mlp-800-800",
            s.big_epochs,
            temperature=t,
            jitter=s.teacher_jitter,
        ),
        Row(
            "omit3",
            f"800-800 distilled, T={t:g}, no 3s in the transfer set",
            "mlp-800-800",
            s.big_epochs,
            temperature=t,
            omit_class=OMITTED_CLASS,
        ),
    ]
    for width in s.small_widths:
        arch = f"mlp-{width}-{width}"
        rows.append(Row(f"baseline-{width}", f"{width}-{width}, labels only", arch, s.small_epochs))
        rows += [
            Row(
                f"kd-{width}-T{_t_name(temp)}",
                f"{width}-{width} distilled, T={temp:g}",
                arch,
                s.small_epochs,
                temperature=temp,
            )
            for temp in s.temperatures
        ]
    return rows
