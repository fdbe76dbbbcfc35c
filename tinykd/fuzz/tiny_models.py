"""Small valid int8 .tflite files written directly with the flatbuffers object API (no
TensorFlow): the hostile-model tests start from them, and a regression test's corrupted model
is one of them with one field changed.

`tiny_model(kind, seed) -> bytes` for kind in KINDS:
- "fc":   int8 [1, 8] -> FULLY_CONNECTED (per-tensor weights, RELU) -> [1, 4]
- "dw":   int8 [1, 4, 4, 2] -> DEPTHWISE_CONV_2D 3x3 (x2, per-channel, SAME) -> RESHAPE [1, 64]
          -> FULLY_CONNECTED -> [1, 3] -> SOFTMAX
- "conv": int8 [1, 5, 5, 2] -> CONV_2D 3x3 (per-channel, VALID, RELU6) -> [1, 3, 3, 4]
          -> AVERAGE_POOL_2D 2x2 -> ADD (itself) -> MAX_POOL_2D 2x2 (SAME) -> [1, 1, 1, 4]
"""

from __future__ import annotations

import numpy as np

KINDS = ("fc", "dw", "conv")


class _Builder:
    def __init__(self, seed: int):
        from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as s

        self.s = s
        self.rng = np.random.default_rng([seed, 0x7137])
        self.m = s.ModelT()
        self.m.version = 3
        self.m.description = "tinykd tiny model"
        self.m.buffers = [s.BufferT()]  # buffer 0: empty, as the converter writes it
        self.sg = s.SubGraphT()
        self.sg.tensors, self.sg.operators = [], []
        self.m.subgraphs = [self.sg]
        self.m.operatorCodes = []
        self.codes: dict[int, int] = {}

    def tensor(self, name, shape, scale, zp, ttype=None, data=None, qdim=0) -> int:
        s = self.s
        t = s.TensorT()
        t.name = name
        t.shape = np.array(shape, np.int32)
        t.type = s.TensorType.INT8 if ttype is None else ttype
        t.buffer = 0
        if data is not None:
            b = s.BufferT()
            b.data = np.frombuffer(np.ascontiguousarray(data).astype(data.dtype.newbyteorder("<")).tobytes(), np.uint8)
            self.m.buffers.append(b)
            t.buffer = len(self.m.buffers) - 1
        if scale is not None:
            q = s.QuantizationParametersT()
            q.scale = np.array(np.atleast_1d(scale), np.float32)
            q.zeroPoint = np.array(np.atleast_1d(zp), np.int64)
            q.quantizedDimension = qdim
            t.quantization = q
        self.sg.tensors.append(t)
        return len(self.sg.tensors) - 1

    def act(self, name, shape, scale, zp) -> int:
        return self.tensor(name, shape, scale, zp)

    def weights(self, name, shape, scales, qdim=0) -> int:
        w = self.rng.integers(-127, 128, size=shape).astype(np.int8)
        zp = np.zeros(np.size(scales), np.int64)
        return self.tensor(name, shape, scales, zp, data=w, qdim=qdim)

    def bias(self, name, n, scales) -> int:
        b = self.rng.integers(-2000, 2000, size=n).astype(np.int32)
        return self.tensor(name, [n], scales, np.zeros(np.size(scales), np.int64), self.s.TensorType.INT32, b)

    def op(self, code, inputs, outputs, opt_type=0, options=None) -> None:
        s = self.s
        if code not in self.codes:
            oc = s.OperatorCodeT()
            oc.builtinCode = code
            oc.deprecatedBuiltinCode = min(code, 127)
            oc.version = 1
            self.m.operatorCodes.append(oc)
            self.codes[code] = len(self.m.operatorCodes) - 1
        o = s.OperatorT()
        o.opcodeIndex = self.codes[code]
        o.inputs = np.array(inputs, np.int32)
        o.outputs = np.array(outputs, np.int32)
        o.builtinOptionsType = opt_type
        o.builtinOptions = options
        self.sg.operators.append(o)

    def fc(self, x, w, b, y, act=0) -> None:
        s = self.s
        o = s.FullyConnectedOptionsT()
        o.fusedActivationFunction = act
        self.op(s.BuiltinOperator.FULLY_CONNECTED, [x, w, b], [y], s.BuiltinOptions.FullyConnectedOptions, o)

    def finish(self, inp: int, out: int) -> bytes:
        import flatbuffers

        self.sg.inputs = np.array([inp], np.int32)
        self.sg.outputs = np.array([out], np.int32)
        b = flatbuffers.Builder(1024)
        b.Finish(self.m.Pack(b), file_identifier=b"TFL3")
        return bytes(b.Output())


def tiny_model(kind: str = "fc", seed: int = 0) -> bytes:
    """A small valid int8 model (module docstring) as .tflite bytes; `seed` draws the weights."""
    B = _Builder(seed)
    s = B.s
    bo, opts = s.BuiltinOperator, s.BuiltinOptions
    if kind == "fc":
        x = B.act("input", [1, 8], 0.05, -3)
        w = B.weights("weights", [4, 8], 0.01)
        b = B.bias("bias", 4, 0.05 * 0.01)
        y = B.act("output", [1, 4], 0.1, -128)
        B.fc(x, w, b, y, act=1)
        return B.finish(x, y)
    if kind == "dw":
        x = B.act("input", [1, 4, 4, 2], 0.04, 5)
        ws = np.array([0.010, 0.020, 0.015, 0.005])
        w = B.weights("dw_filter", [1, 3, 3, 4], ws, qdim=3)
        b = B.bias("dw_bias", 4, 0.04 * ws)
        h = B.act("dw_out", [1, 4, 4, 4], 0.08, 2)
        o = s.DepthwiseConv2DOptionsT()
        o.padding, o.strideW, o.strideH, o.depthMultiplier = s.Padding.SAME, 1, 1, 2
        o.dilationWFactor = o.dilationHFactor = 1
        B.op(bo.DEPTHWISE_CONV_2D, [x, w, b], [h], opts.DepthwiseConv2DOptions, o)
        shp = B.tensor("shape", [2], None, None, s.TensorType.INT32, np.array([1, 64], np.int32))
        r = B.act("flat", [1, 64], 0.08, 2)
        ro = s.ReshapeOptionsT()
        ro.newShape = np.array([1, 64], np.int32)
        B.op(bo.RESHAPE, [h, shp], [r], opts.ReshapeOptions, ro)
        w2 = B.weights("fc_weights", [3, 64], 0.004)
        b2 = B.bias("fc_bias", 3, 0.08 * 0.004)
        z = B.act("logits", [1, 3], 0.2, 0)
        B.fc(r, w2, b2, z)
        y = B.act("probs", [1, 3], 1.0 / 256, -128)
        so = s.SoftmaxOptionsT()
        so.beta = 1.0
        B.op(bo.SOFTMAX, [z], [y], opts.SoftmaxOptions, so)
        return B.finish(x, y)
    if kind == "conv":
        x = B.act("input", [1, 5, 5, 2], 0.03, 0)
        ws = np.array([0.01, 0.012, 0.008, 0.02])
        w = B.weights("conv_filter", [4, 3, 3, 2], ws, qdim=0)
        b = B.bias("conv_bias", 4, 0.03 * ws)
        h = B.act("conv_out", [1, 3, 3, 4], 6.0 / 255, -128)
        o = s.Conv2DOptionsT()
        o.padding, o.strideW, o.strideH, o.fusedActivationFunction = s.Padding.VALID, 1, 1, 3
        o.dilationWFactor = o.dilationHFactor = 1
        B.op(bo.CONV_2D, [x, w, b], [h], opts.Conv2DOptions, o)
        p = B.act("avg", [1, 2, 2, 4], 6.0 / 255, -128)
        po = s.Pool2DOptionsT()
        po.padding, po.strideW, po.strideH, po.filterWidth, po.filterHeight = s.Padding.VALID, 1, 1, 2, 2
        B.op(bo.AVERAGE_POOL_2D, [h], [p], opts.Pool2DOptions, po)
        a = B.act("sum", [1, 2, 2, 4], 0.05, -128)
        ao = s.AddOptionsT()
        B.op(bo.ADD, [p, p], [a], opts.AddOptions, ao)
        y = B.act("output", [1, 1, 1, 4], 0.05, -128)
        mo = s.Pool2DOptionsT()
        mo.padding, mo.strideW, mo.strideH, mo.filterWidth, mo.filterHeight = s.Padding.SAME, 2, 2, 2, 2
        B.op(bo.MAX_POOL_2D, [a], [y], opts.Pool2DOptions, mo)
        return B.finish(x, y)
    raise ValueError(f"unknown tiny model kind {kind!r} (one of {', '.join(KINDS)})")


def model_t(data: bytes):
    """The object-API model of .tflite bytes (to change one field and `pack` it again)."""
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as s

    return s.ModelT.InitFromPackedBuf(bytearray(data), 0)


def pack(m) -> bytes:
    import flatbuffers

    b = flatbuffers.Builder(1024)
    b.Finish(m.Pack(b), file_identifier=b"TFL3")
    return bytes(b.Output())
