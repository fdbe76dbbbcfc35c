"""Host-side evaluation: float models, and the int8 model in LiteRT and in TFLite Micro."""

from .host import (
    ClassificationResult,
    ModelIo,
    classification_result,
    float_inputs_for,
    int8_before_dequantize,
    int8_outputs_litert,
    int8_outputs_tflm,
    model_io,
    outputs_tflm,
    predict_logits,
    random_float_inputs,
)

__all__ = [
    "ClassificationResult",
    "ModelIo",
    "classification_result",
    "float_inputs_for",
    "int8_before_dequantize",
    "int8_outputs_litert",
    "int8_outputs_tflm",
    "model_io",
    "outputs_tflm",
    "predict_logits",
    "random_float_inputs",
]
