"""Regression tests for what the hostile-model fuzzer (tinykd/fuzz/hostile.py, issue 12) found:
each is the smallest model that showed it, a valid hand-built int8 model (tiny_models.py)
with one field changed, and asserts the clear error (or, for the operator-code case, the
same result as TFLite Micro) instead of the traceback, out-of-range shift or mismatch."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tinykd.errors import TinykdError
from tinykd.firmware.codegen import generate_model_sources
from tinykd.firmware.tflite_model import read_tflite
from tinykd.fuzz import hostile
from tinykd.fuzz.tiny_models import model_t, pack, tiny_model


def corrupt(tmp_path, kind, edit):
    m = model_t(tiny_model(kind))
    edit(m)
    path = tmp_path / f"{kind}_corrupt.tflite"
    path.write_bytes(pack(m))
    return path


def refused(tmp_path, kind, edit, pattern):
    path = corrupt(tmp_path, kind, edit)
    with pytest.raises(TinykdError, match=pattern) as e:
        generate_model_sources(path, tmp_path / "gen")
    msg = str(e.value)
    assert msg.strip() and "\n\n" not in msg and "Traceback" not in msg
    return msg


def tensor(m, name):
    return next(t for t in m.subgraphs[0].tensors if t.name.decode() == name)


# ---- found as mismatches with TFLite Micro ---------------------------------------------------


def test_operator_code_is_the_larger_of_builtin_and_deprecated_code_as_in_tflite(tmp_path):
    """The `tflite` package's BuiltinCode() returns deprecated_builtin_code below 127, so a file
    with builtin_code FULLY_CONNECTED and deprecated_builtin_code CONV_2D read as CONV_2D here
    and ran as FULLY_CONNECTED in TFLM (TFLite's GetBuiltinCode takes the larger)."""

    def edit(m):
        m.operatorCodes[0].deprecatedBuiltinCode = 3  # CONV_2D; builtin_code stays 9

    path = corrupt(tmp_path, "fc", edit)
    assert [op.opcode for op in read_tflite(path).operators] == ["FULLY_CONNECTED"]
    assert hostile.judge_file(path, tmp_path / "judge").outcome == hostile.MATCHED


def test_operators_out_of_order_are_refused(tmp_path):
    """Reversed operators read tensors before they are computed: TFLM ran them on stale
    memory, we on other stale memory (a mismatch). Now a clear error."""
    refused(tmp_path, "dw", lambda m: m.subgraphs[0].operators.reverse(), "before any operator computes it")


def test_a_cycle_in_the_graph_is_refused(tmp_path):
    def edit(m):
        ops = m.subgraphs[0].operators
        ops[0].inputs = np.array([int(ops[1].outputs[0]), *ops[0].inputs[1:]], np.int32)

    refused(tmp_path, "dw", edit, "before any operator computes it")


def test_an_operator_writing_the_model_input_is_refused(tmp_path):
    def edit(m):
        sg = m.subgraphs[0]
        sg.operators[1].outputs = np.array([int(sg.inputs[0])], np.int32)

    refused(tmp_path, "dw", edit, "writes a tensor that is already computed")


def test_depth_multiplier_option_must_agree_with_the_shapes(tmp_path):
    def edit(m):
        m.subgraphs[0].operators[0].builtinOptions.depthMultiplier = 4

    refused(tmp_path, "dw", edit, "depth_multiplier 4 in its options")


def test_a_scale_without_its_zero_point_is_refused(tmp_path):
    """The reader used to invent zero points of 0; TFLM reads such a tensor differently."""

    def edit(m):
        tensor(m, "weights").quantization.zeroPoint = np.zeros(0, np.int64)

    refused(tmp_path, "fc", edit, "one zero point each")


def test_an_operator_without_its_options_is_refused(tmp_path):
    """A DEPTHWISE_CONV_2D whose options table was removed: we used stride/dilation 1, TFLM
    reads the missing table as zeros (a mismatch)."""

    def edit(m):
        op = m.subgraphs[0].operators[0]
        op.builtinOptions, op.builtinOptionsType = None, 0

    refused(tmp_path, "dw", edit, "has no options, where it needs DepthwiseConv2DOptions")


def test_options_of_another_operator_are_refused(tmp_path):
    """FULLY_CONNECTED with a Conv2DOptions table: TFLM sees no FullyConnectedOptions (zeros),
    we read the conv table's fused activation."""

    def edit(m):
        from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as s

        op = m.subgraphs[0].operators[0]
        o = s.Conv2DOptionsT()
        o.fusedActivationFunction = 1
        op.builtinOptions, op.builtinOptionsType = o, s.BuiltinOptions.Conv2DOptions

    refused(tmp_path, "fc", edit, "has options of type Conv2DOptions, where it needs FullyConnectedOptions")


def test_a_boundary_dequantize_that_changes_the_shape_is_refused(tmp_path):
    """Found in the 10 000-case run (case 1268 of seed 0): the float output [2, 1, 7] of the
    last DEQUANTIZE, whose int8 input is [1, 7]. We peeled the DEQUANTIZE and returned 7
    values, TFLM 14 (a mismatch)."""

    def edit(m):
        from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as s

        B = m.subgraphs[0]
        y = int(B.outputs[0])
        t = s.TensorT()
        t.name, t.shape, t.type, t.buffer = b"float_out", np.array([2, 1, 4], np.int32), s.TensorType.FLOAT32, 0
        B.tensors.append(t)
        oc = s.OperatorCodeT()
        oc.builtinCode = oc.deprecatedBuiltinCode = s.BuiltinOperator.DEQUANTIZE
        oc.version = 1
        m.operatorCodes.append(oc)
        op = s.OperatorT()
        op.opcodeIndex = len(m.operatorCodes) - 1
        op.inputs, op.outputs = np.array([y], np.int32), np.array([len(B.tensors) - 1], np.int32)
        B.operators.append(op)
        B.outputs = np.array([len(B.tensors) - 1], np.int32)

    refused(tmp_path, "fc", edit, r"the boundary DEQUANTIZE operator #1 turns INT8 \[1, 4\] into FLOAT32 \[2, 1, 4\]")


def test_fully_connected_output_whose_last_dimension_is_not_the_units(tmp_path):
    """Found in the 10 000-case run: an FC output [1, 4] reshaped to [1, 4, 1] (same element
    count). TFLM takes the rows from the output's last dimension (4 rows of 1): a mismatch."""

    def edit(m):
        tensor(m, "output").shape = np.array([1, 4, 1], np.int32)

    refused(tmp_path, "fc", edit, r"output \[1, 4, 1\] do not fit together")


def test_a_pool_filter_wider_than_any_image(tmp_path):
    """Found in the 10 000-case run: AVERAGE_POOL_2D with filter width 2^20 (SAME) on a 5-wide
    input ran differently in TFLM and here. Filters, strides and dilations are 1..1024."""

    def edit(m):
        m.subgraphs[0].operators[1].builtinOptions.filterWidth = 1 << 20

    refused(tmp_path, "conv", edit, "filter_width 1048576; tinykd takes 1 to 1024")


# ---- found as Python tracebacks ------------------------------------------------------------------


@pytest.mark.parametrize("field", ["inputs", "outputs"])
@pytest.mark.parametrize("value", [-1, 99])
def test_model_input_or_output_out_of_range(tmp_path, field, value):
    def edit(m):
        setattr(m.subgraphs[0], field, np.array([value], np.int32))

    refused(tmp_path, "fc", edit, f"the model {field[:-1]} is tensor {value}, but the file has")


def test_weights_without_scales(tmp_path):
    def edit(m):
        q = tensor(m, "weights").quantization
        q.scale, q.zeroPoint = np.zeros(0, np.float32), np.zeros(0, np.int64)

    refused(tmp_path, "fc", edit, "without quantisation parameters")


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, 0.0, -0.5])
@pytest.mark.parametrize("name", ["weights", "output"])
def test_scales_that_are_not_finite_and_positive(tmp_path, value, name):
    def edit(m):
        tensor(m, name).quantization.scale = np.array([value], np.float32)

    refused(tmp_path, "fc", edit, "invalid quantisation|no per-tensor quantisation")


@pytest.mark.parametrize("value", [128, -129, 1 << 40, -(1 << 63)])
def test_zero_points_outside_int8(tmp_path, value):
    def edit(m):
        tensor(m, "input").quantization.zeroPoint = np.array([value], np.int64)

    refused(tmp_path, "fc", edit, "zero point outside -128..127")


def test_an_operator_with_too_few_inputs(tmp_path):
    """An operator code changed to CONV_2D on a one-input operator (IndexError in conv.py)."""

    def edit(m):
        sg = m.subgraphs[0]
        sg.operators[0].inputs = sg.operators[0].inputs[:1]

    refused(tmp_path, "fc", edit, "has 1 inputs and 1 outputs, where it takes 2-3 inputs")


def test_a_required_input_given_as_minus_one(tmp_path):
    def edit(m):
        op = m.subgraphs[0].operators[0]
        op.inputs = np.array([op.inputs[0], -1, op.inputs[2]], np.int32)

    refused(tmp_path, "fc", edit, r"input 2 of FULLY_CONNECTED operator #0 is missing \(tensor -1\)")


def test_an_activation_scale_too_small_for_relu6(tmp_path):
    """6 / 1e-30 overflowed the activation range (decimal.InvalidOperation)."""

    def edit(m):
        tensor(m, "conv_out").quantization.scale = np.array([1e-30], np.float32)

    refused(tmp_path, "conv", edit, "below 3.72529e-09")


# ---- found by the sanitizers -----------------------------------------------------------------------


def test_a_requantisation_multiplier_beyond_a_31_bit_shift(tmp_path):
    """A weight scale of 3.4e38 gave a left shift of 127 in the generated C (UBSan: shift
    exponent too large)."""

    def edit(m):
        tensor(m, "fc_weights").quantization.scale = np.array([3.4e38], np.float32)

    refused(tmp_path, "dw", edit, "requantisation multiplier")


def test_a_bias_that_overflows_the_int32_accumulator(tmp_path):
    """A bias of 2^31 - 1 (one word of the file overwritten): the conv kernel's int32
    accumulator overflowed (UBSan: signed integer overflow in tkd_conv.c)."""

    def edit(m):
        t = tensor(m, "conv_bias")
        b = np.frombuffer(m.buffers[t.buffer].data.tobytes(), "<i4").copy()
        b[0] = (1 << 31) - 1
        m.buffers[t.buffer].data = np.frombuffer(b.tobytes(), np.uint8)

    refused(tmp_path, "conv", edit, "beyond int32")


# ---- checks added with the fuzzer (a damaged file, named precisely) ---------------------------------


def test_negative_dimension(tmp_path):
    refused(tmp_path, "fc", lambda m: setattr(tensor(m, "input"), "shape", np.array([1, -8], np.int32)), "negative")


def test_buffer_index_out_of_range(tmp_path):
    refused(tmp_path, "fc", lambda m: setattr(tensor(m, "weights"), "buffer", 77), "refers to buffer 77")


def test_opcode_index_out_of_range(tmp_path):
    refused(tmp_path, "fc", lambda m: setattr(m.subgraphs[0].operators[0], "opcodeIndex", 5), "operator code 5")


def test_operator_tensor_index_out_of_range(tmp_path):
    def edit(m):
        op = m.subgraphs[0].operators[0]
        op.outputs = np.array([-1], np.int32)

    refused(tmp_path, "fc", edit, "writes tensor -1")


def test_zero_size_tensor(tmp_path):
    def edit(m):
        tensor(m, "output").shape = np.array([1, 0], np.int32)

    refused(tmp_path, "fc", edit, "has no elements")


def test_huge_tensor(tmp_path):
    def edit(m):
        tensor(m, "input").shape = np.array([1 << 20, 1 << 20], np.int32)

    refused(tmp_path, "fc", edit, "more than any microcontroller holds")


@pytest.mark.parametrize("beta", [math.nan, 0.0, -1.0, math.inf])
def test_softmax_beta(tmp_path, beta):
    def edit(m):
        m.subgraphs[0].operators[-1].builtinOptions.beta = beta

    refused(tmp_path, "dw", edit, "beta")


def test_per_channel_fc_weights_along_the_wrong_dimension(tmp_path):
    def edit(m):
        q = tensor(m, "fc_weights").quantization
        q.scale = np.full(3, 0.004, np.float32)
        q.zeroPoint = np.zeros(3, np.int64)
        q.quantizedDimension = 1

    refused(tmp_path, "dw", edit, "along dimension 1")
