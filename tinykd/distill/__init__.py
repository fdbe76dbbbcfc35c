"""Knowledge distillation: losses, the distilling model wrapper, and the training loop."""
from .hinton import Distiller, distillation_loss
from .training import TrainResult, train

__all__ = ["Distiller", "distillation_loss", "TrainResult", "train"]
