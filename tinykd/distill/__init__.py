"""Knowledge distillation: losses, methods, the distilling model wrapper, and the training loop."""

from .hinton import Distiller, distillation_loss
from .methods import METHODS, DistillationMethod, born_again, get_method, select_teachers
from .training import TrainResult, train

__all__ = [
    "Distiller",
    "distillation_loss",
    "TrainResult",
    "train",
    "METHODS",
    "DistillationMethod",
    "get_method",
    "born_again",
    "select_teachers",
]
