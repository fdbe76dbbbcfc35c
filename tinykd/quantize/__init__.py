"""Quantisation-aware training: fake-quantise the student, then keep distilling."""

from __future__ import annotations

import contextlib

import tensorflow_model_optimization as tfmot
import tf_keras as keras

import tinykd  # noqa: F401


def quantize_student(student: keras.Model) -> keras.Model:
    """Wrap every layer of a functional student in fake-quant ops (int8 weights and activations).

    tfmot refuses subclassed and nested models, which is why the student is quantised alone
    and only then put inside the Distiller with its teacher.
    """
    clone = keras.models.clone_model(student)
    clone.set_weights(student.get_weights())
    return tfmot.quantization.keras.quantize_model(clone)


def quantize_scope() -> contextlib.AbstractContextManager:
    """Context in which saved QAT models can be loaded (their custom layers are registered)."""
    return tfmot.quantization.keras.quantize_scope()
