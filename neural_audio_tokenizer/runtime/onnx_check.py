"""Inspect an ONNX model's bytes before any onnxruntime session exists.

Why: a pack is untrusted (docs/pack-format.md, "Trust model"). Two things in an ONNX file
reach beyond the operators onnxruntime ships with, and are refused here, up front:

- operators from a *custom domain*: they need a native custom-op library. NAT never
  registers one, so such a model could only fail later, or, in a host application that
  did register libraries, run foreign native code. Allowed domains: ``""``/``ai.onnx``,
  ``ai.onnx.ml`` and ``com.microsoft`` (onnxruntime's own contrib ops, which its
  transformer optimizer emits). A domain that only names functions defined *inside* the
  model is fine: those expand into ordinary operators, checked the same way.
- tensors with *external data* (``data_location = EXTERNAL`` or ``external_data`` entries):
  they make onnxruntime open files the model names. Pack models must be self-contained:
  sessions are created from the bytes that were hashed, and nothing else is read.

It also reports the graph's input and output names, element types and shapes, so the
loader can check them against the manifest before running anything.

The runtime must not depend on the ``onnx`` package, and onnxruntime offers no way to read
a model without building a session, so this is a minimal reader of the protobuf wire format
(https://protobuf.dev/programming-guides/encoding/) for the few fields it needs; field
numbers are those of onnx/onnx.proto3. Unknown fields are skipped, as protobuf does.
"""

from __future__ import annotations

from dataclasses import dataclass, field

ALLOWED_DOMAINS = frozenset({"", "ai.onnx", "ai.onnx.ml", "com.microsoft"})
MAX_DEPTH = 64  # nested subgraphs (If/Loop bodies); real models use a handful
FLOAT = 1  # TensorProto.DataType.FLOAT
EXTERNAL = 1  # TensorProto.DataLocation.EXTERNAL

# Field numbers (onnx.proto3).
MODEL_IR_VERSION, MODEL_GRAPH, MODEL_OPSET_IMPORT, MODEL_TRAINING_INFO, MODEL_FUNCTIONS = 1, 7, 8, 20, 25
OPSET_DOMAIN = 1
TRAINING_INIT, TRAINING_ALGORITHM = 1, 2
GRAPH_NODE, GRAPH_INITIALIZER, GRAPH_INPUT, GRAPH_OUTPUT, GRAPH_SPARSE_INITIALIZER = 1, 5, 11, 12, 15
NODE_OP_TYPE, NODE_ATTRIBUTE, NODE_DOMAIN = 4, 5, 7
ATTR_T, ATTR_G, ATTR_TENSORS, ATTR_GRAPHS, ATTR_SPARSE, ATTR_SPARSES = 5, 6, 10, 11, 22, 23
TENSOR_NAME, TENSOR_EXTERNAL_DATA, TENSOR_DATA_LOCATION = 8, 13, 14
SPARSE_VALUES, SPARSE_INDICES = 1, 2
FUNCTION_NAME, FUNCTION_NODE, FUNCTION_OPSET_IMPORT, FUNCTION_DOMAIN = 1, 7, 9, 10
VALUE_NAME, VALUE_TYPE = 1, 2
TYPE_TENSOR = 1
TENSOR_TYPE_ELEM, TENSOR_TYPE_SHAPE = 1, 2
SHAPE_DIM = 1
DIM_VALUE, DIM_PARAM = 1, 2

VARINT, FIXED64, LENGTH, FIXED32 = 0, 1, 2, 5


class OnnxCheckError(ValueError):
    """The model is malformed or uses something a pack may not (one-line reason)."""


@dataclass(frozen=True)
class TensorInfo:
    elem_type: int  # 0 when the model does not say
    shape: tuple[int | str | None, ...] | None  # None: rank unknown; str: a named dim


@dataclass
class ModelInfo:
    ir_version: int = 0
    opset_domains: set[str] = field(default_factory=set)
    inputs: dict[str, TensorInfo] = field(default_factory=dict)
    outputs: dict[str, TensorInfo] = field(default_factory=dict)
    # Collected while walking, checked at the end (functions may come after their callers).
    _nodes: list[tuple[str, str]] = field(default_factory=list)
    _functions: set[tuple[str, str]] = field(default_factory=set)


def _varint(buf: bytes, pos: int, end: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= end:
            raise OnnxCheckError("truncated (varint runs past the end)")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise OnnxCheckError("malformed varint")


def _fields(buf: bytes, start: int, end: int):
    """(field number, wire type, value) for each field of the message in buf[start:end];
    value is an int for varints, a (start, end) span for length-delimited fields, else None."""
    pos = start
    while pos < end:
        key, pos = _varint(buf, pos, end)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise OnnxCheckError("malformed protobuf (field number 0)")
        if wire == VARINT:
            value, pos = _varint(buf, pos, end)
            yield number, wire, value
        elif wire == LENGTH:
            length, pos = _varint(buf, pos, end)
            if pos + length > end:
                raise OnnxCheckError("truncated (a field runs past the end)")
            yield number, wire, (pos, pos + length)
            pos += length
        elif wire in (FIXED64, FIXED32):
            pos += 8 if wire == FIXED64 else 4
            if pos > end:
                raise OnnxCheckError("truncated (a field runs past the end)")
            yield number, wire, None
        else:  # 3/4: deprecated groups, 6/7: undefined
            raise OnnxCheckError(f"malformed protobuf (wire type {wire})")


def _sub(wire: int, value, what: str) -> tuple[int, int]:
    if wire != LENGTH:
        raise OnnxCheckError(f"malformed {what} (wrong wire type)")
    return value


def _text(buf: bytes, wire: int, value, what: str) -> str:
    start, end = _sub(wire, value, what)
    try:
        return bytes(buf[start:end]).decode("utf-8")
    except UnicodeDecodeError:
        raise OnnxCheckError(f"malformed {what} (not UTF-8)") from None


def _int64(value: int) -> int:
    return value - (1 << 64) if value >= 1 << 63 else value


def _tensor(buf: bytes, span: tuple[int, int]) -> None:
    name = "?"
    external = False
    for number, wire, value in _fields(buf, *span):
        if number == TENSOR_NAME and wire == LENGTH:
            name = _text(buf, wire, value, "tensor name")
        elif number == TENSOR_EXTERNAL_DATA:
            external = True
        elif number == TENSOR_DATA_LOCATION and wire == VARINT and value == EXTERNAL:
            external = True
    if external:
        raise OnnxCheckError(f"tensor {name!r} keeps its data in an external file; pack models must be self-contained")


def _sparse(buf: bytes, span: tuple[int, int]) -> None:
    for number, wire, value in _fields(buf, *span):
        if number in (SPARSE_VALUES, SPARSE_INDICES):
            _tensor(buf, _sub(wire, value, "sparse tensor"))


def _node(buf: bytes, span: tuple[int, int], info: ModelInfo, depth: int) -> None:
    op_type, domain = "", ""
    for number, wire, value in _fields(buf, *span):
        if number == NODE_OP_TYPE:
            op_type = _text(buf, wire, value, "node op_type")
        elif number == NODE_DOMAIN:
            domain = _text(buf, wire, value, "node domain")
        elif number == NODE_ATTRIBUTE:
            _attribute(buf, _sub(wire, value, "attribute"), info, depth)
    info._nodes.append((domain, op_type))


def _attribute(buf: bytes, span: tuple[int, int], info: ModelInfo, depth: int) -> None:
    for number, wire, value in _fields(buf, *span):
        if number in (ATTR_T, ATTR_TENSORS):
            _tensor(buf, _sub(wire, value, "attribute tensor"))
        elif number in (ATTR_G, ATTR_GRAPHS):
            _graph(buf, _sub(wire, value, "subgraph"), info, depth + 1, top=False)
        elif number in (ATTR_SPARSE, ATTR_SPARSES):
            _sparse(buf, _sub(wire, value, "attribute sparse tensor"))


def _value_info(buf: bytes, span: tuple[int, int]) -> tuple[str, TensorInfo]:
    name, elem, shape = "", 0, None
    for number, wire, value in _fields(buf, *span):
        if number == VALUE_NAME:
            name = _text(buf, wire, value, "value name")
        elif number == VALUE_TYPE:
            for n2, w2, v2 in _fields(buf, *_sub(wire, value, "type")):
                if n2 != TYPE_TENSOR:
                    continue
                for n3, w3, v3 in _fields(buf, *_sub(w2, v2, "tensor type")):
                    if n3 == TENSOR_TYPE_ELEM and w3 == VARINT:
                        elem = v3
                    elif n3 == TENSOR_TYPE_SHAPE:
                        shape = tuple(_dims(buf, _sub(w3, v3, "shape")))
    return name, TensorInfo(elem, shape)


def _dims(buf: bytes, span: tuple[int, int]):
    for number, wire, value in _fields(buf, *span):
        if number != SHAPE_DIM:
            continue
        dim: int | str | None = None
        for n2, w2, v2 in _fields(buf, *_sub(wire, value, "dimension")):
            if n2 == DIM_VALUE and w2 == VARINT:
                dim = _int64(v2)
            elif n2 == DIM_PARAM:
                dim = _text(buf, w2, v2, "dimension name")
        yield dim


def _graph(buf: bytes, span: tuple[int, int], info: ModelInfo, depth: int, top: bool) -> None:
    if depth > MAX_DEPTH:
        raise OnnxCheckError(f"subgraphs nested deeper than {MAX_DEPTH}")
    for number, wire, value in _fields(buf, *span):
        if number == GRAPH_NODE:
            _node(buf, _sub(wire, value, "node"), info, depth)
        elif number == GRAPH_INITIALIZER:
            _tensor(buf, _sub(wire, value, "initializer"))
        elif number == GRAPH_SPARSE_INITIALIZER:
            _sparse(buf, _sub(wire, value, "sparse initializer"))
        elif top and number == GRAPH_INPUT:
            name, tinfo = _value_info(buf, _sub(wire, value, "graph input"))
            info.inputs[name] = tinfo
        elif top and number == GRAPH_OUTPUT:
            name, tinfo = _value_info(buf, _sub(wire, value, "graph output"))
            info.outputs[name] = tinfo


def _opset_domain(buf: bytes, span: tuple[int, int]) -> str:
    domain = ""
    for number, wire, value in _fields(buf, *span):
        if number == OPSET_DOMAIN:
            domain = _text(buf, wire, value, "opset domain")
    return domain


def _function(buf: bytes, span: tuple[int, int], info: ModelInfo) -> None:
    name = domain = ""
    for number, wire, value in _fields(buf, *span):
        if number == FUNCTION_NAME:
            name = _text(buf, wire, value, "function name")
        elif number == FUNCTION_DOMAIN:
            domain = _text(buf, wire, value, "function domain")
        elif number == FUNCTION_NODE:
            _node(buf, _sub(wire, value, "function node"), info, 0)
        elif number == FUNCTION_OPSET_IMPORT:
            info.opset_domains.add(_opset_domain(buf, _sub(wire, value, "function opset")))
    info._functions.add((domain, name))


def inspect_model(data: bytes) -> ModelInfo:
    """Walk the model; raise OnnxCheckError if it is malformed, names a custom operator
    domain, or keeps tensor data outside the file. Returns its inputs and outputs."""
    buf = memoryview(data)
    info = ModelInfo()
    graphs = 0
    try:
        for number, wire, value in _fields(buf, 0, len(buf)):
            if number == MODEL_IR_VERSION and wire == VARINT:
                info.ir_version = value
            elif number == MODEL_OPSET_IMPORT:
                info.opset_domains.add(_opset_domain(buf, _sub(wire, value, "opset import")))
            elif number == MODEL_GRAPH:
                graphs += 1
                _graph(buf, _sub(wire, value, "graph"), info, 0, top=True)
            elif number == MODEL_FUNCTIONS:
                _function(buf, _sub(wire, value, "function"), info)
            elif number == MODEL_TRAINING_INFO:
                for n2, w2, v2 in _fields(buf, *_sub(wire, value, "training info")):
                    if n2 in (TRAINING_INIT, TRAINING_ALGORITHM):
                        _graph(buf, _sub(w2, v2, "training graph"), info, 1, top=False)
    except RecursionError:
        raise OnnxCheckError("nested too deeply") from None
    if graphs != 1 or info.ir_version == 0:
        raise OnnxCheckError("not an ONNX model (no graph or no IR version)")
    function_domains = {domain for domain, _ in info._functions}
    for domain in sorted(info.opset_domains):
        if domain not in ALLOWED_DOMAINS and domain not in function_domains:
            raise OnnxCheckError(f"imports custom operator domain {domain!r}; NAT runs only onnxruntime's built-in operators")
    for domain, op_type in info._nodes:
        if domain not in ALLOWED_DOMAINS and (domain, op_type) not in info._functions:
            raise OnnxCheckError(f"uses custom operator {domain}::{op_type}; NAT runs only onnxruntime's built-in operators")
    return info
