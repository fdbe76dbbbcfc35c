"""Host-side evaluation: float models, and the int8 model in LiteRT and in TFLite Micro."""

from .host import ClassificationResult, classification_result, int8_outputs_litert, int8_outputs_tflm, predict_logits

__all__ = [
    "ClassificationResult",
    "classification_result",
    "int8_outputs_litert",
    "int8_outputs_tflm",
    "predict_logits",
]
