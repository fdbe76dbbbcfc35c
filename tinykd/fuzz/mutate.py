"""Mutations of valid .tflite files for the hostile-model fuzzer (hostile.py).

`mutate(buf, rng) -> (bytes, description)` damages one valid model in one of two ways:

- structure-aware: the model is unpacked with the flatbuffers object API (the TFLite schema's
  `ModelT`, as shipped with tflite-micro: the same schema the `tflite` reader package is
  generated from), one to three fields are edited, and the model is packed again. Each edit
  is something a damaged, hand-edited or malicious file can hold: shapes with zero, negative,
  huge or extra dimensions; buffer indices, tensor indices (incl. -1 where an input is not
  optional), operator-code indices and subgraph inputs/outputs out of range; operators
  reordered, duplicated or wired into cycles (inputs used before they are produced);
  constant data truncated, extended or moved outside the file; quantisation arrays of the
  wrong length, scales of 0, negative, NaN, inf or extreme, zero points outside int8;
  tensor types, operator codes and builtin options (strides, padding, activations,
  dilations, filter sizes, beta) set to odd values; extra or missing subgraphs.
- raw bytes: bit flips, bytes set to 0x00/0xff/0x7f/0x80, aligned 32-bit words overwritten
  with boundary values (what a flatbuffer's offsets and lengths are made of), truncation,
  garbage appended, chunks copied over other chunks.
"""

from __future__ import annotations

import math
import struct

import numpy as np

INT32_EDGES = (0, 1, -1, 2, 3, 7, 255, 256, 65535, 65536, 1 << 20, (1 << 31) - 1, -(1 << 31), -2)
DIM_VALUES = (0, -1, -2, 1, 2, 3, 255, 4096, 65536, 1 << 20, 1 << 24, (1 << 31) - 1, -(1 << 31))
SCALE_VALUES = (0.0, -1.0, -0.5, math.nan, math.inf, -math.inf, 1e-45, 1e-30, 1e30, 3.4e38, 1.0, 1e-10)
ZP_VALUES = (128, -129, 255, -256, 1 << 15, (1 << 31) - 1, -(1 << 31), (1 << 62), -(1 << 63), 127, -128, 0)

STRUCTURE_KINDS = (
    "shape",
    "rank",
    "tensor_buffer",
    "buffer_data",
    "buffer_offset",
    "op_tensor_index",
    "opcode_index",
    "opcode",
    "graph_order",
    "subgraph_io",
    "quant_scale",
    "quant_zero_point",
    "quant_length",
    "quant_dimension",
    "tensor_type",
    "options",
    "subgraphs",
)
RAW_KINDS = ("bitflip", "byteset", "word", "truncate", "append", "splice")


def _schema():
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as s

    return s


def _pick(rng: np.random.Generator, seq):
    return seq[int(rng.integers(len(seq)))]


def _set_int_array(arr, k: int, v: int, dtype) -> np.ndarray:
    a = np.array(arr if arr is not None else [], dtype=np.int64).copy()
    if a.size == 0:
        a = np.zeros(1, np.int64)
        k = 0
    a[k % a.size] = v
    info = np.iinfo(dtype)
    return ((a - info.min) % (int(info.max) - int(info.min) + 1) + info.min).astype(dtype)


def _pack(m) -> bytes:
    import flatbuffers

    b = flatbuffers.Builder(1024)
    b.Finish(m.Pack(b), file_identifier=b"TFL3")
    return bytes(b.Output())


def _tensor(rng, sg):
    k = int(rng.integers(len(sg.tensors)))
    return k, sg.tensors[k]


def _edit(kind: str, m, rng: np.random.Generator) -> str:  # noqa: C901 -- one branch per kind
    s = _schema()
    sg = m.subgraphs[0]
    nt = len(sg.tensors)
    if kind == "shape":
        k, t = _tensor(rng, sg)
        if t.shape is None or len(t.shape) == 0:
            t.shape = np.array([_pick(rng, DIM_VALUES)], np.int32)
            return f"tensor {k}: shape [] -> {list(t.shape)}"
        d = int(rng.integers(len(t.shape)))
        old = int(t.shape[d])
        v = _pick(rng, DIM_VALUES + (old + 1, old * 2, max(old - 1, 0)))
        t.shape = _set_int_array(t.shape, d, v, np.int32)
        return f"tensor {k}: shape dim {d} {old} -> {int(t.shape[d])}"
    if kind == "rank":
        k, t = _tensor(rng, sg)
        shp = [int(x) for x in (t.shape if t.shape is not None else [])]
        if shp and rng.random() < 0.5:
            shp.pop(int(rng.integers(len(shp))))
        else:
            shp.insert(int(rng.integers(len(shp) + 1)), int(_pick(rng, (1, 1, 2, 0))))
        t.shape = np.array(shp, np.int32)
        return f"tensor {k}: shape -> {shp}"
    if kind == "tensor_buffer":
        k, t = _tensor(rng, sg)
        nb = len(m.buffers)
        v = int(_pick(rng, (0, nb, nb + 1, -1, (1 << 32) - 1, int(rng.integers(nb)), int(rng.integers(nb)))))
        v %= 1 << 32
        old, t.buffer = t.buffer, v
        return f"tensor {k}: buffer {old} -> {v} (of {nb})"
    if kind == "buffer_data":
        with_data = [i for i, b in enumerate(m.buffers) if b.data is not None and len(b.data)]
        if not with_data:
            return "no buffer with data"
        i = _pick(rng, with_data)
        b = m.buffers[i]
        n = len(b.data)
        how = int(rng.integers(4))
        if how == 0:
            b.data = np.asarray(b.data, np.uint8)[: int(rng.integers(n))]
        elif how == 1:
            b.data = np.concatenate([np.asarray(b.data, np.uint8), np.zeros(int(rng.integers(1, 9)), np.uint8)])
        elif how == 2:
            b.data = None
        else:
            b.data = np.asarray(b.data, np.uint8)[: n - n % 4 - 4 if n >= 8 else 0]
        return f"buffer {i}: {n} bytes -> {0 if b.data is None else len(b.data)}"
    if kind == "buffer_offset":
        i = int(rng.integers(len(m.buffers)))
        b = m.buffers[i]
        b.offset = int(_pick(rng, (2, 16, 1 << 20, (1 << 63) - 1, (1 << 64) - 1, 8)))
        b.size = int(_pick(rng, (0, 1, 4, 1 << 20, (1 << 63) - 1, (1 << 64) - 1, 64)))
        if rng.random() < 0.5:
            b.data = None
        return f"buffer {i}: offset {b.offset}, size {b.size}"
    if kind == "op_tensor_index":
        if not sg.operators:
            return "no operator"
        j = int(rng.integers(len(sg.operators)))
        op = sg.operators[j]
        field = "inputs" if rng.random() < 0.65 or op.outputs is None or not len(op.outputs) else "outputs"
        arr = getattr(op, field)
        if arr is None or not len(arr):
            return "operator without tensors"
        k = int(rng.integers(len(arr)))
        other_out = sg.operators[int(rng.integers(len(sg.operators)))].outputs
        produced = int(other_out[0]) if other_out is not None and len(other_out) else 0
        v = int(_pick(rng, (-1, -2, nt, nt + 5, (1 << 31) - 1, -(1 << 31), int(rng.integers(nt)), produced)))
        old = int(arr[k])
        setattr(op, field, _set_int_array(arr, k, v, np.int32))
        return f"operator {j}: {field}[{k}] {old} -> {v} (of {nt} tensors)"
    if kind == "opcode_index":
        if not sg.operators:
            return "no operator"
        j = int(rng.integers(len(sg.operators)))
        nc = len(m.operatorCodes)
        v = int(_pick(rng, (nc, nc + 1, (1 << 32) - 1, int(rng.integers(nc)) if nc else 0)))
        sg.operators[j].opcodeIndex = v
        return f"operator {j}: opcode index -> {v} (of {nc})"
    if kind == "opcode":
        if not m.operatorCodes:
            return "no operator code"
        i = int(rng.integers(len(m.operatorCodes)))
        oc = m.operatorCodes[i]
        bo = s.BuiltinOperator
        v = int(
            _pick(
                rng,
                (
                    bo.ADD,
                    bo.CONV_2D,
                    bo.DEPTHWISE_CONV_2D,
                    bo.FULLY_CONNECTED,
                    bo.SOFTMAX,
                    bo.RESHAPE,
                    bo.MAX_POOL_2D,
                    bo.AVERAGE_POOL_2D,
                    bo.QUANTIZE,
                    bo.DEQUANTIZE,
                    bo.CUSTOM,
                    bo.MUL,
                    1000,
                    -1,
                ),
            )
        )
        if rng.random() < 0.3:
            oc.deprecatedBuiltinCode = int(np.int8(v % 256 - 128 if v > 127 or v < -128 else v))
        else:
            oc.builtinCode = v
        if rng.random() < 0.2:
            oc.version = int(_pick(rng, (0, -1, 99)))
        return f"operator code {i} -> {v}"
    if kind == "graph_order":
        ops = sg.operators
        if not ops:
            return "no operator"
        how = int(rng.integers(5))
        if how == 0 and len(ops) > 1:
            ops.reverse()
            return "operators reversed (inputs used before produced)"
        if how == 1:
            j = int(rng.integers(len(ops)))
            ops.insert(j, ops[j])
            return f"operator {j} duplicated"
        if how == 2 and len(ops) > 1:
            j = int(rng.integers(len(ops)))
            del ops[j]
            return f"operator {j} removed"
        if how == 3:  # a cycle: an operator reads its own output, or a later operator's output
            j = int(rng.integers(len(ops)))
            later = ops[int(rng.integers(j, len(ops)))]
            if ops[j].inputs is not None and len(ops[j].inputs) and later.outputs is not None and len(later.outputs):
                ops[j].inputs = _set_int_array(ops[j].inputs, 0, int(later.outputs[0]), np.int32)
                return f"operator {j} reads the output of a later operator (cycle)"
        j, k = int(rng.integers(len(ops))), int(rng.integers(len(ops)))
        if ops[j].outputs is not None and ops[k].outputs is not None and len(ops[k].outputs):
            ops[j].outputs = _set_int_array(ops[j].outputs, 0, int(ops[k].outputs[0]), np.int32)
        return f"operator {j} writes operator {k}'s output"
    if kind == "subgraph_io":
        field = "inputs" if rng.random() < 0.5 else "outputs"
        arr = getattr(sg, field)
        how = int(rng.integers(4))
        if how == 0:
            setattr(sg, field, np.zeros(0, np.int32))
            return f"subgraph {field} emptied"
        if how == 1 and arr is not None and len(arr):
            setattr(sg, field, np.concatenate([np.asarray(arr, np.int32), np.asarray(arr, np.int32)]))
            return f"subgraph {field} doubled"
        v = int(_pick(rng, (-1, nt, nt + 3, (1 << 31) - 1, int(rng.integers(nt)))))
        setattr(sg, field, _set_int_array(arr, 0, v, np.int32))
        return f"subgraph {field}[0] -> {v}"
    if kind.startswith("quant"):
        k, t = _tensor(rng, sg)
        q = t.quantization
        if q is None:
            q = t.quantization = s.QuantizationParametersT()
        if kind == "quant_scale":
            v = float(_pick(rng, SCALE_VALUES))
            sc = np.array(q.scale if q.scale is not None and len(q.scale) else [1.0], np.float32)
            sc[int(rng.integers(sc.size))] = np.float32(v)
            q.scale = sc
            return f"tensor {k}: a scale -> {v}"
        if kind == "quant_zero_point":
            v = int(_pick(rng, ZP_VALUES))
            zp = np.array(q.zeroPoint if q.zeroPoint is not None and len(q.zeroPoint) else [0], np.int64)
            zp[int(rng.integers(zp.size))] = np.int64(v)
            q.zeroPoint = zp
            return f"tensor {k}: a zero point -> {v}"
        if kind == "quant_length":
            field = "scale" if rng.random() < 0.5 else "zeroPoint"
            arr = getattr(q, field)
            n = 0 if arr is None else len(arr)
            new_n = int(_pick(rng, (0, 1, 2, n + 1, max(n - 1, 0), 3)))
            dt = np.float32 if field == "scale" else np.int64
            base = np.asarray(arr if arr is not None and len(arr) else [0.5 if field == "scale" else 0], dt)
            setattr(q, field, np.resize(base, new_n).astype(dt))
            return f"tensor {k}: {field} length {n} -> {new_n}"
        v = int(_pick(rng, (1, 2, 3, 4, 7, -1, (1 << 31) - 1)))
        q.quantizedDimension = v
        return f"tensor {k}: quantized_dimension -> {v}"
    if kind == "tensor_type":
        k, t = _tensor(rng, sg)
        tt = s.TensorType
        v = int(_pick(rng, (tt.UINT8, tt.INT16, tt.INT32, tt.FLOAT32, tt.INT64, tt.INT4, tt.BOOL, tt.INT8, 99, -1)))
        old, t.type = t.type, v
        return f"tensor {k}: type {old} -> {v}"
    if kind == "options":
        if not sg.operators:
            return "no operator"
        j = int(rng.integers(len(sg.operators)))
        op = sg.operators[j]
        o = op.builtinOptions
        if o is None or rng.random() < 0.1:
            op.builtinOptions = None
            op.builtinOptionsType = 0
            return f"operator {j}: options removed"
        fields = [f for f in vars(o) if isinstance(getattr(o, f), (int, float, bool))]
        if not fields:
            return f"operator {j}: options without fields"
        f = _pick(rng, fields)
        old = getattr(o, f)
        if isinstance(old, float):
            v = float(_pick(rng, SCALE_VALUES))
        elif isinstance(old, bool):
            v = not old
        else:
            v = int(_pick(rng, INT32_EDGES + (4, 5, 6, 8, 9, 10)))
            if f in ("padding", "fusedActivationFunction", "weightsFormat"):
                v = int(np.int8(v % 256 - 128)) if not -128 <= v <= 127 else v
        setattr(o, f, v)
        return f"operator {j}: option {f} {old} -> {v}"
    if kind == "subgraphs":
        import copy

        if rng.random() < 0.5 and len(m.subgraphs) == 1:
            m.subgraphs.append(copy.deepcopy(sg))
            return "second subgraph added"
        m.subgraphs = []
        return "subgraphs removed"
    raise ValueError(f"unknown mutation {kind!r}")


def structure_mutation(buf: bytes, rng: np.random.Generator, kind: str | None = None) -> tuple[bytes, str]:
    s = _schema()
    for _attempt in range(8):
        m = s.ModelT.InitFromPackedBuf(bytearray(buf), 0)
        kinds = [kind] if kind else [_pick(rng, STRUCTURE_KINDS) for _ in range(1 if rng.random() < 0.7 else 2)]
        desc = []
        for k in kinds:
            if not m.subgraphs or not m.subgraphs[0].tensors:
                break
            desc.append(f"{k}: {_edit(k, m, rng)}")
        try:
            return _pack(m), "; ".join(desc)
        except (TypeError, ValueError, OverflowError, struct.error):
            continue  # a value the field's type cannot hold (e.g. 2^20 in an int8 option): draw again
    return raw_mutation(buf, rng)


def raw_mutation(buf: bytes, rng: np.random.Generator, kind: str | None = None) -> tuple[bytes, str]:
    b = bytearray(buf)
    n = len(b)
    kind = kind or _pick(rng, RAW_KINDS)
    if kind == "bitflip":
        k = int(rng.integers(1, 9))
        pos = sorted(int(p) for p in rng.integers(0, n, size=k))
        for p in pos:
            b[p] ^= 1 << int(rng.integers(8))
        return bytes(b), f"bitflip: {k} bits at {pos[:8]}"
    if kind == "byteset":
        k = int(rng.integers(1, 5))
        pos = sorted(int(p) for p in rng.integers(0, n, size=k))
        for p in pos:
            b[p] = _pick(rng, (0x00, 0xFF, 0x7F, 0x80))
        return bytes(b), f"byteset: bytes at {pos}"
    if kind == "word":
        # flatbuffer offsets, vector lengths and scalars sit in the header and metadata: aim
        # at the first 4 KiB more often than at the (large) constant data
        hi = n if rng.random() < 0.3 else min(n, 4096)
        p = int(rng.integers(0, max(1, hi // 4))) * 4
        v = int(_pick(rng, INT32_EDGES + (n, n + 4, n - 4)))
        b[p : p + 4] = (v % (1 << 32)).to_bytes(4, "little")
        return bytes(b[:n]), f"word: int32 at {p} -> {v}"
    if kind == "truncate":
        cut = int(rng.integers(0, n))
        return bytes(b[:cut]), f"truncate: {n} -> {cut} bytes"
    if kind == "append":
        extra = rng.integers(0, 256, size=int(rng.integers(1, 64))).astype(np.uint8).tobytes()
        return bytes(b) + extra, f"append: {len(extra)} random bytes"
    src, dst = int(rng.integers(0, n)), int(rng.integers(0, n))
    ln = int(rng.integers(1, 64))
    chunk = bytes(b[src : src + ln])
    b[dst : dst + len(chunk)] = chunk
    return bytes(b[:n]), f"splice: {len(chunk)} bytes from {src} to {dst}"


def mutate(buf: bytes, rng: np.random.Generator) -> tuple[bytes, str]:
    """One damaged copy of the valid model `buf` and what was done to it."""
    if rng.random() < 0.3:
        return raw_mutation(buf, rng)
    return structure_mutation(buf, rng)
