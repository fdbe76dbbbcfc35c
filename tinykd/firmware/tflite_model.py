"""Read a .tflite flatbuffer (via the `tflite` schema package) into plain dataclasses.

Only the first subgraph is read (microcontroller models have one). Buffer contents are
copied out as bytes, so the result does not keep the file alive. Anything that is not a
readable TFLite model raises TinykdError.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tinykd.errors import TinykdError

_DTYPES = {  # TensorType name -> numpy dtype (None: no numpy equivalent we use)
    "FLOAT32": np.float32,
    "FLOAT16": np.float16,
    "FLOAT64": np.float64,
    "INT32": np.int32,
    "UINT8": np.uint8,
    "INT64": np.int64,
    "BOOL": np.bool_,
    "INT16": np.int16,
    "INT8": np.int8,
    "UINT32": np.uint32,
    "UINT16": np.uint16,
    "UINT64": np.uint64,
}


def _enum_names(enum_cls) -> dict[int, str]:
    return {v: k for k, v in vars(enum_cls).items() if not k.startswith("_") and isinstance(v, int)}


@dataclass
class Tensor:
    index: int
    name: str
    shape: tuple[int, ...]
    type: str  # TensorType name: "INT8", "INT32", "FLOAT32", ...
    scale: tuple[float, ...] = ()  # empty when not quantised
    zero_point: tuple[int, ...] = ()
    quantized_dimension: int = 0
    data: bytes | None = None  # constant contents, None for activations
    is_variable: bool = False

    @property
    def is_constant(self) -> bool:
        return self.data is not None

    @property
    def num_elements(self) -> int:
        n = 1  # Python integers: a damaged shape must not wrap around like int64 would
        for d in self.shape:
            n *= int(d)
        return n

    @property
    def itemsize(self) -> int:
        dt = _DTYPES.get(self.type)
        if dt is None:
            raise TinykdError(
                f"Tensor {self.name!r} has type {self.type}, which tinykd cannot "
                "handle. Convert the model to full int8 (int8 activations and "
                "weights, int32 biases)."
            )
        return np.dtype(dt).itemsize

    @property
    def nbytes(self) -> int:
        return self.num_elements * self.itemsize

    def array(self) -> np.ndarray:
        """The constant contents as a numpy array of the tensor's shape."""
        if self.data is None:
            raise ValueError(f"tensor {self.name} is not constant")
        dt = np.dtype(_DTYPES[self.type]).newbyteorder("<")
        if len(self.data) != self.nbytes:
            raise TinykdError(
                f"Constant tensor {self.name!r} holds {len(self.data)} bytes but its shape "
                f"{list(self.shape)} and type {self.type} need {self.nbytes}: the .tflite file "
                "is damaged. Convert the model again."
            )
        return np.frombuffer(self.data, dtype=dt).reshape(self.shape).astype(dt.newbyteorder("="))


@dataclass
class Operator:
    index: int
    opcode: str  # builtin name, e.g. "FULLY_CONNECTED", or "CUSTOM:<name>"
    inputs: tuple[int, ...]  # tensor indices, -1 for an omitted optional input
    outputs: tuple[int, ...]
    options: dict[str, Any] = field(default_factory=dict)
    version: int = 1
    options_type: str = ""  # the BuiltinOptions table's type name, "" when there is none


@dataclass
class TfliteModel:
    path: Path
    sha256: str
    tensors: list[Tensor]
    operators: list[Operator]
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    num_subgraphs: int = 1
    description: str = ""


def _bad_file(path: Path, why: str) -> TinykdError:
    return TinykdError(
        f"{path} is not a readable TensorFlow Lite model ({why}). Check that the file is a "
        "complete .tflite flatbuffer (e.g. from `tinykd convert` or tf.lite.TFLiteConverter) and "
        "was not truncated or altered while copying."
    )


def _read_options(op, opt_type_names: dict[int, str]) -> dict[str, Any]:
    import tflite

    t = op.BuiltinOptionsType()
    if t == 0:
        return {}
    name = opt_type_names.get(t)
    cls = getattr(tflite, name, None) if name else None
    table = op.BuiltinOptions()
    if cls is None or table is None:
        return {}
    obj = cls()
    obj.Init(table.Bytes, table.Pos)
    out: dict[str, Any] = {}
    skip_suffix = ("AsNumpy", "IsNone", "Length", "BufferHasIdentifier")
    methods = [
        m
        for m in dir(obj)
        if m[:1].isupper() and not m.startswith(("GetRootAs", "Init")) and not m.endswith(skip_suffix)
    ]
    for m in methods:
        if hasattr(obj, m + "AsNumpy"):
            v = getattr(obj, m + "AsNumpy")()
            out[m] = tuple(int(x) for x in v) if isinstance(v, np.ndarray) else ()
            continue
        try:
            v = getattr(obj, m)()
        except TypeError:  # getters of vectors of tables need an index: not used by us
            continue
        out[m] = v
    return out


def read_tflite(path: str | Path) -> TfliteModel:
    """Parse `path`; raises TinykdError if it is missing, not a .tflite, or damaged."""
    path = Path(path)
    try:
        buf = path.read_bytes()
    except OSError as e:
        raise TinykdError(
            f"Cannot read the model file {path}: {e.strerror or e}. Check the "
            "path (a .tflite file from `tinykd convert`)."
        ) from e
    if len(buf) < 16 or buf[4:8] != b"TFL3":
        raise _bad_file(path, "no TFL3 flatbuffer identifier at byte 4")
    try:
        return _parse(path, buf)
    except TinykdError:
        raise
    except Exception as e:  # flatbuffers raises IndexError/struct.error/... on damaged data
        raise _bad_file(path, f"{type(e).__name__} while reading the flatbuffer") from e


def _parse(path: Path, buf: bytes) -> TfliteModel:
    import flatbuffers
    import tflite

    model = tflite.Model.GetRootAs(buf, 0)
    op_names = _enum_names(tflite.BuiltinOperator)
    type_names = _enum_names(tflite.TensorType)
    opt_type_names = _enum_names(tflite.BuiltinOptions)
    if model.SubgraphsLength() < 1:
        raise _bad_file(path, "it has no subgraph")
    sg = model.Subgraphs(0)

    buffers: list[bytes | None] = []
    for i in range(model.BuffersLength()):
        b = model.Buffers(i)
        if b.Offset() > 1:  # large models keep data after the flatbuffer
            start, size = int(b.Offset()), int(b.Size())
            if start + size > len(buf):
                raise _bad_file(path, f"buffer {i} points past the end of the file")
            buffers.append(buf[start : start + size])
        elif b.DataLength() > 0:
            buffers.append(b.DataAsNumpy().tobytes())
        else:
            buffers.append(None)

    tensors = []
    for i in range(sg.TensorsLength()):
        t = sg.Tensors(i)
        shape = tuple(int(d) for d in t.ShapeAsNumpy()) if t.ShapeLength() else ()
        q = t.Quantization()
        scale: tuple[float, ...] = ()
        zp: tuple[int, ...] = ()
        qdim = 0
        if q is not None and q.ScaleLength() > 0:
            scale = tuple(float(s) for s in q.ScaleAsNumpy())  # float32 values, exactly
            # as stored: a scale without its zero point is a damaged file (graph.py refuses it)
            zp = tuple(int(z) for z in q.ZeroPointAsNumpy()) if q.ZeroPointLength() else ()
            qdim = int(q.QuantizedDimension())
        name = t.Name()
        tname = name.decode("utf-8", "replace") if name else f"tensor_{i}"
        bad_dims = [d for d in shape if d < 0]
        if bad_dims:
            raise _bad_file(
                path, f"tensor {i} ({tname!r}) has the negative dimension {bad_dims[0]} in its shape {list(shape)}"
            )
        bidx = int(t.Buffer())
        if bidx >= len(buffers):
            raise _bad_file(
                path, f"tensor {i} ({tname!r}) refers to buffer {bidx}, but the file has {len(buffers)} buffers"
            )
        data = buffers[bidx]
        tensors.append(
            Tensor(
                index=i,
                name=tname,
                shape=shape,
                type=type_names.get(t.Type(), f"TYPE_{t.Type()}"),
                scale=scale,
                zero_point=zp,
                quantized_dimension=qdim,
                data=data,
                is_variable=bool(t.IsVariable()),
            )
        )

    codes = []
    for i in range(model.OperatorCodesLength()):
        oc = model.OperatorCodes(i)
        # TFLite's GetBuiltinCode: the larger of the two fields. (The `tflite` package's
        # BuiltinCode() returns deprecated_builtin_code whenever builtin_code < 127, so a file
        # whose two fields disagree would run one operator in TFLM and another here.)
        off = oc._tab.Offset(10)
        builtin = oc._tab.Get(flatbuffers.number_types.Int32Flags, off + oc._tab.Pos) if off else 0
        code = max(int(builtin), int(oc.DeprecatedBuiltinCode()))
        name = op_names.get(code, f"BUILTIN_{code}")
        if name == "CUSTOM":
            cc = oc.CustomCode()
            name = "CUSTOM:" + (cc.decode("utf-8", "replace") if cc else "?")
        codes.append((name, int(oc.Version())))

    ops = []
    for i in range(sg.OperatorsLength()):
        o = sg.Operators(i)
        if not 0 <= o.OpcodeIndex() < len(codes):
            raise _bad_file(
                path, f"operator {i} refers to operator code {o.OpcodeIndex()}, but the file has {len(codes)} codes"
            )
        name, version = codes[o.OpcodeIndex()]
        ops.append(
            Operator(
                index=i,
                opcode=name,
                inputs=tuple(int(x) for x in o.InputsAsNumpy()) if o.InputsLength() else (),
                outputs=tuple(int(x) for x in o.OutputsAsNumpy()) if o.OutputsLength() else (),
                options=_read_options(o, opt_type_names),
                version=version,
                options_type=(
                    opt_type_names.get(o.BuiltinOptionsType(), f"BuiltinOptions {o.BuiltinOptionsType()}")
                    if o.BuiltinOptionsType() and o.BuiltinOptions() is not None
                    else ""
                ),
            )
        )
    n = len(tensors)
    for o in ops:
        for t in o.inputs:
            if t >= n or t < -1:
                raise _bad_file(path, f"operator {o.index} ({o.opcode}) reads tensor {t}, but the file has {n} tensors")
        for t in o.outputs:
            if t >= n or t < 0:
                raise _bad_file(
                    path, f"operator {o.index} ({o.opcode}) writes tensor {t}, but the file has {n} tensors"
                )
    io = {}
    for what, vec in (
        ("input", sg.InputsAsNumpy() if sg.InputsLength() else ()),
        ("output", sg.OutputsAsNumpy() if sg.OutputsLength() else ()),
    ):
        io[what] = tuple(int(x) for x in vec)
        for t in io[what]:
            if not 0 <= t < n:
                raise _bad_file(path, f"the model {what} is tensor {t}, but the file has {n} tensors")
    desc = model.Description()
    return TfliteModel(
        path=path,
        sha256=hashlib.sha256(buf).hexdigest(),
        tensors=tensors,
        operators=ops,
        inputs=io["input"],
        outputs=io["output"],
        num_subgraphs=int(model.SubgraphsLength()),
        description=desc.decode("utf-8", "replace") if desc else "",
    )
