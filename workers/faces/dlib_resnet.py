"""dlib's face-recognition ResNet, run by onnxruntime.

The dlib wheel the studio installs (``dlib-bin``) is built without a BLAS, so
its own convolutions take about 70 ms per face on one core, which is most of
the time of every face check. The same network, with the same weights, runs
in a few milliseconds through onnxruntime. This module reads the weights
from dlib's model file and builds that network as an ONNX graph.

The file is dlib's own serialization of the network type declared in its
``face_recognition.cpp`` (``anet_type``: a 7x7 convolution, a max pool, then
residual stages of 32, 64, 128 and 256 filters, an average over the picture
and a 128-wide fully connected layer). Layers are written input first, each
a version string and its fields; integers as a control byte (the count of
bytes that follow, 0x80 for negative) and little-endian bytes; scalars as an
integer mantissa and exponent; tensors as four sizes and raw little-endian
float32. Batch normalisation is stored with its running statistics and is
folded into the preceding convolution here, as dlib itself turns it into a
fixed affine layer for inference.

Where a down-sampling stage's two branches differ in size (a 3x3 stride-2
convolution beside a 2x2 average pool), dlib adds them with the smaller
zero-padded at the bottom and right, and so does this graph. The tests check
that the embeddings equal dlib's own, to float precision.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

CHIP = 150  # the network's input: a 150x150 RGB face chip
# Residual stages, first to last: (filters, blocks); the first block of
# every stage but the first halves the picture.
STAGES = ((32, 3), (64, 4), (128, 3), (256, 3), (256, 1))

_LAYER = re.compile(
    rb"\x01(?P<n>[\x04-\x20])(?P<name>input_rgb_image_sized|con_[456]|bn_con2"
    rb"|affine_2?|fc_[23]|max_pool_2|avg_pool_2)"
)


class DlibModelError(ValueError):
    """The model file is not the network this module knows."""


class _Reader:
    def __init__(self, data: bytes, pos: int) -> None:
        self.data = data
        self.pos = pos

    def integer(self) -> int:
        control = self.data[self.pos]
        size = control & 0x0F
        if size == 0 or size > 8 or control & 0x70:
            raise DlibModelError(f"bad integer at byte {self.pos}")
        raw = self.data[self.pos + 1 : self.pos + 1 + size]
        self.pos += 1 + size
        value = int.from_bytes(raw, "little")
        return -value if control & 0x80 else value

    def real(self) -> float:
        mantissa = self.integer() if self.data[self.pos] & 0x0F else self._zero()
        exponent = self.integer() if self.data[self.pos] & 0x0F else self._zero()
        return float(mantissa) * 2.0 ** float(exponent)

    def _zero(self) -> int:
        # Zero is written as a control byte alone (no value bytes follow).
        self.pos += 1
        return 0

    def text(self) -> str:
        size = self.integer()
        text = self.data[self.pos : self.pos + size].decode("ascii")
        self.pos += size
        return text

    def flag(self) -> bool:
        value = self.data[self.pos : self.pos + 1]
        if value not in (b"0", b"1"):
            raise DlibModelError(f"bad bool at byte {self.pos}")
        self.pos += 1
        return value == b"1"

    def sizes(self) -> tuple[int, int, int, int]:
        version = self.integer()
        if version not in (1, 2):
            raise DlibModelError(f"bad tensor version {version} at byte {self.pos}")
        return self.integer(), self.integer(), self.integer(), self.integer()

    def tensor(self) -> np.ndarray:
        n, k, nr, nc = self.sizes()
        count = n * k * nr * nc
        end = self.pos + 4 * count
        values = np.frombuffer(self.data[self.pos : end], dtype="<f4")
        self.pos = end
        return values.reshape(n, k, nr, nc).astype(np.float32)


@dataclass
class Conv:
    weight: np.ndarray  # (out, in, kh, kw)
    bias: np.ndarray
    stride: int
    pad: int


@dataclass
class Pool:
    size: int
    stride: int
    pad: int


@dataclass
class Network:
    mean_rgb: tuple[float, float, float]
    convs: list[Conv]  # batch normalisation folded in, in forward order
    pools: list[Pool]  # the max pool, then one average pool per down stage
    fc: np.ndarray  # (inputs, 128)


def _read_conv(r: _Reader) -> Conv:
    version = r.text()
    params = r.tensor().ravel()
    filters = r.integer()
    nr, nc = r.integer(), r.integer()
    stride_y, stride_x = r.integer(), r.integer()
    pad_y, pad_x = r.integer(), r.integer()
    shape = r.sizes()  # the filters' alias
    r.sizes()  # the biases' alias
    for _ in range(4):  # learning-rate and weight-decay multipliers
        r.real()
    if version in ("con_5", "con_6"):
        r.flag()
    if version == "con_6":
        r.flag()
    if stride_y != stride_x or pad_y != pad_x or nr != nc:
        raise DlibModelError("only square convolutions are expected")
    size = int(np.prod(shape))
    weight = params[:size].reshape(shape)
    bias = params[size : size + filters]
    if weight.shape[0] != filters or len(bias) != filters:
        raise DlibModelError("a convolution's weights do not match its filters")
    return Conv(weight, bias.copy(), stride_y, pad_y)


def _read_bn(r: _Reader) -> tuple[np.ndarray, np.ndarray]:
    """(scale, shift) of a batch normalisation used for inference."""
    r.text()
    params = r.tensor().ravel()
    r.sizes(), r.sizes()  # gamma and beta aliases
    r.tensor(), r.tensor()  # the last batch's statistics
    running_mean = r.tensor().ravel()
    running_var = r.tensor().ravel()
    r.integer(), r.integer()  # updates made, statistics window
    for _ in range(4):
        r.real()
    eps = r.real()
    k = len(running_mean)
    gamma, beta = params[:k], params[k : 2 * k]
    scale = gamma / np.sqrt(running_var + eps)
    return scale.astype(np.float32), (beta - scale * running_mean).astype(np.float32)


def _read_affine(r: _Reader) -> tuple[np.ndarray, np.ndarray]:
    version = r.text()
    params = r.tensor().ravel()
    r.sizes(), r.sizes()
    r.integer()  # mode
    if version == "affine_2":
        r.flag()
    k = len(params) // 2
    return params[:k].copy(), params[k:].copy()


def _read_pool(r: _Reader) -> Pool:
    r.text()
    nr, _ = r.integer(), r.integer()
    stride_y, _ = r.integer(), r.integer()
    pad_y, _ = r.integer(), r.integer()
    return Pool(nr, stride_y, pad_y)


def _read_fc(r: _Reader) -> np.ndarray:
    r.text()
    outputs, inputs = r.integer(), r.integer()
    params = r.tensor().ravel()
    return params[: inputs * outputs].reshape(inputs, outputs).copy()


def read_network(path: Path) -> Network:
    """The weights of dlib's face-recognition ResNet, from its model file."""
    data = Path(path).read_bytes()
    mean: tuple[float, float, float] | None = None
    convs: list[Conv] = []
    pools: list[Pool] = []
    fc: np.ndarray | None = None
    for match in _LAYER.finditer(data):
        if len(match.group("name")) != match.group("n")[0]:
            continue
        reader = _Reader(data, match.start())
        name = match.group("name").decode()
        if name == "input_rgb_image_sized":
            reader.text()
            mean = (reader.real(), reader.real(), reader.real())
        elif name.startswith("con_"):
            convs.append(_read_conv(reader))
        elif name in ("bn_con2", "affine_", "affine_2"):
            scale, shift = (_read_bn if name == "bn_con2" else _read_affine)(reader)
            if not convs or len(scale) != convs[-1].weight.shape[0]:
                raise DlibModelError("a normalisation does not follow a convolution")
            conv = convs[-1]
            conv.weight = conv.weight * scale[:, None, None, None]
            conv.bias = conv.bias * scale + shift
        elif name in ("max_pool_2", "avg_pool_2"):
            pools.append(_read_pool(reader))
        else:
            fc = _read_fc(reader)
    expected = 1 + 2 * sum(blocks for _, blocks in STAGES)
    if mean is None or fc is None or len(convs) != expected:
        raise DlibModelError(
            f"expected dlib's face ResNet ({expected} convolutions), found {len(convs)}"
        )
    # The last pool is avg_pool_everything (size 0): the average over all.
    return Network(mean, convs, pools[:-1], fc)


def build_onnx(net: Network) -> bytes:
    """The network as a serialized ONNX model: input "chips", float32
    (N, 3, 150, 150) of (pixel - mean) / 256 in RGB; output "descriptors"
    (N, 128)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    nodes: list[onnx.NodeProto] = []
    weights: list[onnx.TensorProto] = []
    counter = iter(range(10_000))

    def fresh(prefix: str) -> str:
        return f"{prefix}{next(counter)}"

    def const(array: np.ndarray, prefix: str) -> str:
        name = fresh(prefix)
        weights.append(numpy_helper.from_array(np.asarray(array), name))
        return name

    def conv(x: str, c: Conv, relu: bool) -> str:
        out = fresh("conv")
        kernel = c.weight.shape[2]
        nodes.append(
            helper.make_node(
                "Conv",
                [x, const(c.weight, "w"), const(c.bias, "b")],
                [out],
                kernel_shape=[kernel, kernel],
                strides=[c.stride, c.stride],
                pads=[c.pad] * 4,
            )
        )
        if not relu:
            return out
        activated = fresh("relu")
        nodes.append(helper.make_node("Relu", [out], [activated]))
        return activated

    def pool(op: str, x: str, p: Pool) -> str:
        out = fresh("pool")
        nodes.append(
            helper.make_node(
                op, [x], [out], kernel_shape=[p.size, p.size],
                strides=[p.stride, p.stride], pads=[p.pad] * 4,
            )
        )  # fmt: skip
        return out

    def out_size(size: int, kernel: int, stride: int, pad: int) -> int:
        return (size + 2 * pad - kernel) // stride + 1

    convs = iter(net.convs)
    pools = iter(net.pools)
    first = next(convs)
    x = conv("chips", first, relu=True)
    size = out_size(CHIP, first.weight.shape[2], first.stride, first.pad)
    stem = next(pools)
    x = pool("MaxPool", x, stem)
    size = out_size(size, stem.size, stem.stride, stem.pad)
    channels = first.weight.shape[0]
    for stage, (filters, blocks) in enumerate(STAGES):
        for block in range(blocks):
            a, b = next(convs), next(convs)
            y = conv(x, a, relu=True)
            y = conv(y, b, relu=False)
            y_size = out_size(size, a.weight.shape[2], a.stride, a.pad)
            if stage > 0 and block == 0:
                p = next(pools)
                shortcut = pool("AveragePool", x, p)
                s_size = out_size(size, p.size, p.stride, p.pad)
            else:
                shortcut, s_size = x, size
            # dlib's add_prev: the larger shape, the smaller zero-padded at
            # the end of each axis.
            full = max(y_size, s_size)
            out_channels = max(filters, channels)
            y = _pad_to(nodes, const, fresh, y, filters, y_size, out_channels, full)
            shortcut = _pad_to(
                nodes, const, fresh, shortcut, channels, s_size, out_channels, full
            )
            added, relu = fresh("add"), fresh("relu")
            nodes.append(helper.make_node("Add", [y, shortcut], [added]))
            nodes.append(helper.make_node("Relu", [added], [relu]))
            x, size, channels = relu, full, out_channels
    pooled, flat, out = fresh("gap"), fresh("flat"), "descriptors"
    nodes.append(helper.make_node("GlobalAveragePool", [x], [pooled]))
    nodes.append(helper.make_node("Flatten", [pooled], [flat], axis=1))
    nodes.append(helper.make_node("MatMul", [flat, const(net.fc, "fc")], [out]))
    graph = helper.make_graph(
        nodes,
        "dlib_face_resnet",
        [
            helper.make_tensor_value_info(
                "chips", TensorProto.FLOAT, ["N", 3, CHIP, CHIP]
            )
        ],
        [helper.make_tensor_value_info(out, TensorProto.FLOAT, ["N", net.fc.shape[1]])],
        initializer=weights,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model.SerializeToString()


def _pad_to(nodes, const, fresh, x, channels, size, want_channels, want_size) -> str:
    from onnx import helper

    extra_c, extra_s = want_channels - channels, want_size - size
    if extra_c == 0 and extra_s == 0:
        return x
    padded = fresh("pad")
    pads = np.array([0, 0, 0, 0, 0, extra_c, extra_s, extra_s], dtype=np.int64)
    nodes.append(helper.make_node("Pad", [x, const(pads, "pads")], [padded]))
    return padded


class ResNetRunner:
    """The network in an onnxruntime session: chips in, descriptors out
    (raw, as dlib gives them; the provider normalises them)."""

    def __init__(self, model_file: Path, *, threads: int = 1) -> None:
        import onnxruntime as ort

        net = read_network(model_file)
        self._mean = np.array(net.mean_rgb, dtype=np.float32).reshape(1, 3, 1, 1)
        options = ort.SessionOptions()
        # One thread: workers run one task per core already.
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        self._session = ort.InferenceSession(
            build_onnx(net), options, providers=["CPUExecutionProvider"]
        )

    def __call__(self, chips: list[np.ndarray]) -> np.ndarray:
        batch = np.stack(chips).astype(np.float32).transpose(0, 3, 1, 2)
        batch = (batch - self._mean) / 256.0
        return self._session.run(None, {"chips": batch})[0]
