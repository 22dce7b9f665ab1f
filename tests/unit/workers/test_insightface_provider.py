"""The InsightFace provider's real code on tiny ONNX graphs built here with the
signatures of the buffalo_l pack's det_10g.onnx (input (1, 3, ?, ?); nine
outputs: scores, box distances and keypoint offsets for strides 8, 16, 32)
and w600k_r50.onnx ((N, 3, 112, 112) -> (N, 512)). No weights are downloaded.

The anchor layout the graphs encode (rows by grid row, then column, then one
of two anchors; distances in units of the stride) is InsightFace's, written
out here independently of the provider so a mistake in either shows up.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from workers.faces.base import Face, FaceModelMissing, align
from workers.faces.insightface_provider import (
    DETECTOR_FILE,
    EMBEDDER_FILE,
    InsightFaceProvider,
    choose_providers,
)

SIZE = 640  # the detector input the provider letterboxes into
STRIDES = (8, 16, 32)
PULL = "manage.py models pull insightface-buffalo-l"


# --- building graphs -------------------------------------------------------


def _save(path: Path, nodes, inputs, outputs, initializers=()) -> None:
    graph = helper.make_graph(nodes, path.stem, inputs, outputs, list(initializers))
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8
    )
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def _detector_input():
    return helper.make_tensor_value_info("input.1", TensorProto.FLOAT, [1, 3, "h", "w"])


def _anchors(stride: int) -> int:
    return (SIZE // stride) ** 2 * 2


def _row(stride: int, x: int, y: int, anchor: int) -> int:
    return (y * (SIZE // stride) + x) * 2 + anchor


def _constant_detector(path: Path, arrays: list[np.ndarray], batched: bool) -> None:
    """A detector whose nine outputs are the given arrays, whatever the
    picture (the input is declared, as det_10g's is, and left unused)."""
    nodes, outputs = [], []
    for i, array in enumerate(arrays):
        value = array[np.newaxis] if batched else array
        name = f"out{i}"
        nodes.append(
            helper.make_node(
                "Constant",
                [],
                [name],
                value=numpy_helper.from_array(value.astype(np.float32), name),
            )
        )
        outputs.append(
            helper.make_tensor_value_info(name, TensorProto.FLOAT, list(value.shape))
        )
    _save(path, nodes, [_detector_input()], outputs)


def _detector_arrays(rng: np.random.Generator) -> list[np.ndarray]:
    """Scores below 0.5 everywhere, random positive distances and offsets:
    anything kept by mistake would show up as an extra face."""
    scores = [rng.uniform(0.0, 0.49, (_anchors(s), 1)) for s in STRIDES]
    boxes = [rng.uniform(0.5, 3.0, (_anchors(s), 4)) for s in STRIDES]
    points = [rng.uniform(-2.0, 2.0, (_anchors(s), 10)) for s in STRIDES]
    return scores + boxes + points


def _place(arrays, stride, x, y, anchor, score, distances, offsets) -> None:
    level = STRIDES.index(stride)
    row = _row(stride, x, y, anchor)
    arrays[level][row] = score
    arrays[level + 3][row] = distances
    arrays[level + 6][row] = offsets


def _random_detector(path: Path, rng: np.random.Generator) -> None:
    """A three-level conv net with random weights and SCRFD's output layout,
    for any input size."""
    nodes, inits, outputs = [], [], []

    def weight(name: str, shape: tuple[int, ...], scale: float = 0.1) -> str:
        inits.append(
            numpy_helper.from_array(
                (rng.standard_normal(shape) * scale).astype(np.float32), name
            )
        )
        return name

    def conv(x: str, w: str, out: str, stride: int, bias: str | None = None) -> str:
        args = [x, w] + ([bias] if bias else [])
        nodes.append(helper.make_node("Conv", args, [out], strides=[stride, stride]))
        return out

    shape = {1: "shape1", 4: "shape4", 10: "shape10"}
    for width, name in shape.items():
        inits.append(numpy_helper.from_array(np.array([-1, width], np.int64), name))
    kernels = {8: (8, 3, 8, 8, 8), 16: (8, 8, 2, 2, 2), 32: (8, 8, 2, 2, 2)}
    features = "input.1"
    heads: dict[int, list[str]] = {1: [], 4: [], 10: []}
    for stride in STRIDES:
        out, inp, kh, kw, step = kernels[stride]
        raw = conv(
            features, weight(f"w{stride}", (out, inp, kh, kw)), f"c{stride}", step
        )
        nodes.append(helper.make_node("Relu", [raw], [f"f{stride}"]))
        features = f"f{stride}"
        for width in (1, 4, 10):
            channels = 2 * width
            name = f"h{width}_{stride}"
            bias = None
            if width == 1:  # few anchors above 0.5, as in a real picture
                inits.append(
                    numpy_helper.from_array(np.full(2, -3.0, np.float32), f"b{stride}")
                )
                bias = f"b{stride}"
            head = conv(
                features, weight(f"{name}_w", (channels, 8, 1, 1), 0.5), name, 1, bias
            )
            if width == 1:
                nodes.append(helper.make_node("Sigmoid", [head], [f"{name}_a"]))
                head = f"{name}_a"
            if width == 4:  # distances from the centre are never negative
                nodes.append(helper.make_node("Abs", [head], [f"{name}_a"]))
                head = f"{name}_a"
            nodes.append(
                helper.make_node("Transpose", [head], [f"{name}_t"], perm=[0, 2, 3, 1])
            )
            nodes.append(
                helper.make_node("Reshape", [f"{name}_t", shape[width]], [f"{name}_o"])
            )
            heads[width].append(f"{name}_o")
    for width in (1, 4, 10):
        for name in heads[width]:
            outputs.append(
                helper.make_tensor_value_info(name, TensorProto.FLOAT, ["n", width])
            )
    _save(path, nodes, [_detector_input()], outputs, inits)


def _red_detector(path: Path) -> None:
    """A detector that scores each 8x8 cell of the blob by the mean of its
    first channel and boxes exactly that cell: a picture's red squares come
    back as faces where the provider placed them in the blob."""
    cells = SIZE // 8
    nodes = [
        helper.make_node("Gather", ["input.1", "zero"], ["red"], axis=1),
        helper.make_node(
            "AveragePool", ["red"], ["pooled"], kernel_shape=[8, 8], strides=[8, 8]
        ),
        helper.make_node("Concat", ["pooled", "pooled"], ["both"], axis=1),
        helper.make_node("Transpose", ["both"], ["cells"], perm=[0, 2, 3, 1]),
        helper.make_node("Reshape", ["cells", "column"], ["out0"]),
    ]
    cell_box = np.tile(np.array([0.0, 0.0, 1.0, 1.0], np.float32), (cells**2 * 2, 1))
    constants = {
        "out1": np.full((_anchors(16), 1), -1.0),
        "out2": np.full((_anchors(32), 1), -1.0),
        "out3": cell_box,
        "out4": np.zeros((_anchors(16), 4)),
        "out5": np.zeros((_anchors(32), 4)),
        "out6": np.zeros((_anchors(8), 10)),
        "out7": np.zeros((_anchors(16), 10)),
        "out8": np.zeros((_anchors(32), 10)),
    }
    for name, value in constants.items():
        nodes.append(
            helper.make_node(
                "Constant",
                [],
                [name],
                value=numpy_helper.from_array(value.astype(np.float32), name),
            )
        )
    inits = [
        numpy_helper.from_array(np.array([0], np.int64), "zero"),
        numpy_helper.from_array(np.array([-1, 1], np.int64), "column"),
    ]
    outputs = [helper.make_tensor_value_info("out0", TensorProto.FLOAT, ["n", 1])]
    outputs += [
        helper.make_tensor_value_info(name, TensorProto.FLOAT, list(value.shape))
        for name, value in constants.items()
    ]
    _save(path, nodes, [_detector_input()], outputs, inits)


def _embedder(
    path: Path, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(N, 3, 112, 112) -> (N, 512): a 16x16 stride-16 conv, flattened, then a
    dense layer with a bias (without one, a mis-scaled input would vanish in
    the normalising); returns the weights so a test can compute it in numpy."""
    kernel = (rng.standard_normal((8, 3, 16, 16)) * 0.05).astype(np.float32)
    dense = (rng.standard_normal((8 * 7 * 7, 512)) * 0.05).astype(np.float32)
    bias = (rng.standard_normal(512) * 0.5).astype(np.float32)
    nodes = [
        helper.make_node("Conv", ["input.1", "kernel"], ["conv"], strides=[16, 16]),
        helper.make_node("Flatten", ["conv"], ["flat"], axis=1),
        helper.make_node("Gemm", ["flat", "dense", "bias"], ["683"]),
    ]
    inputs = [
        helper.make_tensor_value_info("input.1", TensorProto.FLOAT, ["N", 3, 112, 112])
    ]
    outputs = [helper.make_tensor_value_info("683", TensorProto.FLOAT, ["N", 512])]
    inits = [
        numpy_helper.from_array(kernel, "kernel"),
        numpy_helper.from_array(dense, "dense"),
        numpy_helper.from_array(bias, "bias"),
    ]
    _save(path, nodes, inputs, outputs, inits)
    return kernel, dense, bias


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(7)


@pytest.fixture
def pack(tmp_path: Path, rng: np.random.Generator) -> Path:
    """A pack folder with the random detector and embedder."""
    folder = tmp_path / "insightface-buffalo-l"
    folder.mkdir()
    _random_detector(folder / DETECTOR_FILE, rng)
    _embedder(folder / EMBEDDER_FILE, rng)
    return folder


@pytest.fixture
def picture(rng: np.random.Generator) -> np.ndarray:
    """Randomly coloured squares on a grey, non-square canvas (so the blob
    has padding below it), giving the random detector some structure."""
    image = np.full((240, 360, 3), 90, dtype=np.uint8)
    for _ in range(12):
        x, y = rng.integers(0, 330), rng.integers(0, 210)
        image[y : y + 30, x : x + 30] = rng.integers(0, 256, 3)
    return image


# --- detection: decoding checked against known outputs ---------------------


@pytest.mark.parametrize("batched", [False, True], ids=["unbatched", "batched"])
def test_it_decodes_a_known_face_into_picture_pixels(
    tmp_path: Path, rng: np.random.Generator, batched: bool
) -> None:
    arrays = _detector_arrays(rng)
    # The face: stride 16, grid cell (12, 9), second anchor, centre (192, 144)
    # in the 640x640 blob. A 320x200 picture fills the blob's top 640x400 at
    # twice its size, so everything comes back halved.
    offsets = [-1.5, -1.0, 1.5, -1.0, 0.0, 0.5, -1.0, 2.0, 1.0, 2.0]
    _place(arrays, 16, 12, 9, 1, 0.9, [3.0, 4.0, 5.0, 6.0], offsets)
    # A weaker stride-8 box over the same face (IoU about 0.89) that NMS drops.
    _place(arrays, 8, 25, 20, 0, 0.7, [6.5, 9.5, 8.5, 9.5], np.zeros(10))
    # Just under the score threshold, far from the face.
    _place(arrays, 32, 15, 10, 0, 0.4999, [2.0, 2.0, 2.0, 2.0], np.zeros(10))
    _constant_detector(tmp_path / DETECTOR_FILE, arrays, batched)
    _embedder(tmp_path / EMBEDDER_FILE, rng)
    provider = InsightFaceProvider(tmp_path)

    picture = rng.integers(0, 256, (200, 320, 3), dtype=np.uint8)
    faces = provider.detect(picture)

    assert len(faces) == 1
    (face,) = faces
    assert face.score == pytest.approx(0.9)
    assert face.box == pytest.approx((72.0, 40.0, 136.0, 120.0), abs=1e-4)
    expected = [[84, 64], [108, 64], [96, 76], [88, 88], [104, 88]]
    np.testing.assert_allclose(face.landmarks, expected, atol=1e-4)
    assert face.landmarks.shape == (5, 2)
    assert face.landmarks.dtype == np.float32


def test_it_lists_the_larger_face_first_even_when_the_smaller_scores_higher(
    tmp_path: Path, rng: np.random.Generator
) -> None:
    arrays = _detector_arrays(rng)
    _place(arrays, 32, 5, 5, 0, 0.6, [2.0, 2.0, 2.0, 2.0], np.zeros(10))
    _place(arrays, 8, 60, 10, 1, 0.95, [1.0, 1.0, 1.0, 1.0], np.zeros(10))
    _constant_detector(tmp_path / DETECTOR_FILE, arrays, batched=False)
    _embedder(tmp_path / EMBEDDER_FILE, rng)

    faces = InsightFaceProvider(tmp_path).detect(np.zeros((640, 640, 3), np.uint8))

    assert [f.score for f in faces] == pytest.approx([0.6, 0.95])
    assert faces[0].box == pytest.approx((96.0, 96.0, 224.0, 224.0))
    assert faces[1].box == pytest.approx((472.0, 72.0, 488.0, 88.0))


def test_it_letterboxes_the_picture_top_left_as_an_rgb_blob_over_128(
    tmp_path: Path, rng: np.random.Generator
) -> None:
    _red_detector(tmp_path / DETECTOR_FILE)
    _embedder(tmp_path / EMBEDDER_FILE, rng)
    provider = InsightFaceProvider(tmp_path)
    # 200x100 grows 3.2 times to 640x320: the red square lands on blob
    # cells 20-29 across and 10-19 down, the blue one (red channel 0) on
    # none, and the padding below the picture is black.
    picture = np.full((100, 200, 3), 128, dtype=np.uint8)
    picture[25:50, 50:75] = (255, 0, 0)
    picture[25:50, 120:145] = (0, 0, 255)

    faces = provider.detect(picture)

    assert len(faces) == 100  # one per cell; each cell's second anchor dropped
    boxes = np.array([f.box for f in faces])
    assert boxes[:, 0].min() == pytest.approx(50.0)
    assert boxes[:, 1].min() == pytest.approx(25.0)
    assert boxes[:, 2].max() == pytest.approx(75.0)
    assert boxes[:, 3].max() == pytest.approx(50.0)
    # A pure red cell scores (255 - 127.5) / 128, not (255 - 127.5) / 127.5.
    assert max(f.score for f in faces) == pytest.approx(127.5 / 128, abs=1e-5)


# --- end to end on random weights --------------------------------------------


def test_it_detects_and_embeds_with_random_weight_graphs(
    pack: Path, picture: np.ndarray
) -> None:
    provider = InsightFaceProvider(pack)

    faces = provider.detect(picture)

    assert faces and all(isinstance(f, Face) for f in faces)
    assert all(f.score >= 0.5 for f in faces)
    assert all(f.landmarks.shape == (5, 2) for f in faces)
    areas = [f.area for f in faces]
    assert areas == sorted(areas, reverse=True)
    assert provider.detect(picture)[0].box == faces[0].box

    two = [faces[0], faces[-1]]
    rows = provider.embed(picture, two)
    assert rows.shape == (2, 512)
    assert rows.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(rows, axis=1), 1.0, atol=1e-5)
    assert not np.allclose(rows[0], rows[1])
    again = provider.embed(picture, [faces[0]])
    np.testing.assert_allclose(again[0], rows[0], atol=1e-5)


def test_it_feeds_the_embedder_aligned_rgb_crops_scaled_to_plus_minus_one(
    tmp_path: Path, rng: np.random.Generator, picture: np.ndarray
) -> None:
    _random_detector(tmp_path / DETECTOR_FILE, rng)
    kernel, dense, bias = _embedder(tmp_path / EMBEDDER_FILE, rng)
    provider = InsightFaceProvider(tmp_path)
    points = np.array(
        [[150, 100], [190, 98], [170, 125], [155, 150], [187, 149]], np.float32
    )
    faces = [
        Face((130, 70, 210, 170), 0.9, points),
        Face((30, 20, 90, 100), 0.8, points * 0.6),
    ]

    rows = provider.embed(picture, faces)

    crops = np.stack([align(picture, f) for f in faces]).astype(np.float32)
    blob = ((crops - 127.5) / 127.5).transpose(0, 3, 1, 2)
    patches = blob.reshape(2, 3, 7, 16, 7, 16)
    conv = np.einsum("nciajb,ocab->noij", patches, kernel)
    expected = conv.reshape(2, -1) @ dense + bias
    expected /= np.linalg.norm(expected, axis=1, keepdims=True)
    np.testing.assert_allclose(rows, expected, atol=1e-4)


def test_it_embeds_no_faces_as_an_empty_table(pack: Path, picture: np.ndarray) -> None:
    rows = InsightFaceProvider(pack).embed(picture, [])

    assert rows.shape == (0, 512)


def test_it_refuses_a_picture_that_is_not_rgb_uint8(pack: Path) -> None:
    provider = InsightFaceProvider(pack)

    with pytest.raises(ValueError, match="RGB uint8"):
        provider.detect(np.zeros((64, 64), dtype=np.uint8))


def test_it_finds_the_pack_inside_its_own_buffalo_l_folder(
    tmp_path: Path, pack: Path
) -> None:
    store = tmp_path / "store"
    store.mkdir()
    pack.rename(store / "buffalo_l")

    provider = InsightFaceProvider(store)  # no FaceModelMissing

    points = np.array([[30, 30], [50, 30], [40, 40], [32, 50], [48, 50]], np.float32)
    face = Face((20, 15, 60, 60), 0.9, points)
    assert provider.embed(np.zeros((64, 96, 3), np.uint8), [face]).shape == (1, 512)


# --- setup --------------------------------------------------------------------


def test_it_names_the_pull_command_when_the_folder_is_missing(tmp_path: Path) -> None:
    folder = tmp_path / "nowhere"

    with pytest.raises(FaceModelMissing) as error:
        InsightFaceProvider(folder)

    assert PULL in str(error.value)
    assert str(folder) in str(error.value)


@pytest.mark.parametrize("missing", [DETECTOR_FILE, EMBEDDER_FILE])
def test_it_names_the_pull_command_when_a_model_file_is_missing(
    pack: Path, missing: str
) -> None:
    (pack / missing).unlink()

    with pytest.raises(FaceModelMissing) as error:
        InsightFaceProvider(pack)

    assert PULL in str(error.value)
    assert missing in str(error.value)


def test_it_rejects_a_detector_without_keypoint_outputs(
    tmp_path: Path, rng: np.random.Generator
) -> None:
    arrays = _detector_arrays(rng)[:6]  # SCRFD without keypoints has six
    _constant_detector(tmp_path / DETECTOR_FILE, arrays, batched=False)
    _embedder(tmp_path / EMBEDDER_FILE, rng)

    with pytest.raises(FaceModelMissing, match=PULL):
        InsightFaceProvider(tmp_path)


def test_it_says_how_to_install_onnxruntime_when_it_is_missing(
    pack: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime", None)

    with pytest.raises(FaceModelMissing, match="pip install onnxruntime"):
        InsightFaceProvider(pack)


def test_it_prefers_cuda_when_onnxruntime_offers_it() -> None:
    cuda = ["CUDAExecutionProvider", "CPUExecutionProvider"]
    assert choose_providers(["AzureExecutionProvider", *cuda]) == cuda
    assert choose_providers(["CPUExecutionProvider"]) == ["CPUExecutionProvider"]
