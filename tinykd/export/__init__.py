"""From a trained Keras model to a fully int8 .tflite and its TFLite Micro C array."""

from .c_array import write_c_array
from .convert import convert_int8, tflite_io_quantization

__all__ = ["convert_int8", "tflite_io_quantization", "write_c_array"]
