"""The embedded face provider on real faces: two different people (the
astronaut and Grace Hopper), each as uploaded in many ways, and pictures
without a human face."""

from __future__ import annotations

import itertools

import cv2
import numpy as np
import pytest
import skimage.data

from workers.faces.base import ARCFACE_TEMPLATE, Face, FaceModelMissing, align
from workers.faces.dlib_provider import RESNET_FILE, DlibProvider, models_folder
from workers.faces.dlib_resnet import DlibModelError, read_network
from workers.faces.identity import build_identity, group_people, outliers
from workers.faces.providers import load_provider
from workers.faces.quality import REJECT, WARN, estimate_pose, judge, measure
from workers.faces.references import check_reference

from .faces_material import VARIANTS, astronaut, hopper, variant

PEOPLE = {"astronaut": astronaut, "hopper": hopper}


@pytest.fixture(scope="module")
def provider() -> DlibProvider:
    return load_provider("dlib")  # type: ignore[return-value]


@pytest.fixture(scope="module")
def originals(provider) -> dict[str, np.ndarray]:
    """Each person's embedding from the original photo."""
    found = {}
    for name, picture in PEOPLE.items():
        image = picture()
        found[name] = provider.embed(image, provider.detect(image)[:1])[0]
    return found


def _embedding(provider, image: np.ndarray) -> np.ndarray:
    faces = provider.detect(image)
    assert len(faces) >= 1, "no face found"
    return provider.embed(image, faces[:1])[0]


def test_it_finds_the_one_face_of_each_portrait_with_its_landmarks(provider):
    for picture, (x_range, y_range) in (
        (astronaut(), ((150, 300), (60, 200))),
        (hopper(), ((120, 420), (100, 400))),
    ):
        faces = provider.detect(picture)
        assert len(faces) == 1
        face = faces[0]
        cx, cy = face.center
        assert x_range[0] < cx < x_range[1] and y_range[0] < cy < y_range[1]
        assert face.landmarks.shape == (68, 2)
        left_eye, right_eye, nose, mouth_l, mouth_r = face.five_points()
        # Upright faces: eyes above the nose, the nose above the mouth.
        assert left_eye[0] < right_eye[0]
        assert max(left_eye[1], right_eye[1]) < nose[1] < min(mouth_l[1], mouth_r[1])


@pytest.mark.parametrize("picture", [skimage.data.coffee, skimage.data.chelsea])
def test_pictures_without_a_human_face_yield_no_face(provider, picture):
    assert provider.detect(np.ascontiguousarray(picture())) == []


@pytest.mark.parametrize("person", sorted(PEOPLE))
@pytest.mark.parametrize("change", sorted(VARIANTS))
def test_a_variant_matches_its_own_person_and_not_the_other(
    provider, originals, person, change
):
    other = next(name for name in PEOPLE if name != person)
    vector = _embedding(provider, variant(PEOPLE[person](), change))
    own = float(np.dot(vector, originals[person]))
    theirs = float(np.dot(vector, originals[other]))
    assert own >= provider.threshold, f"{change}: {own:.3f} against its own person"
    assert theirs < provider.threshold, f"{change}: {theirs:.3f} against the other"


def test_the_threshold_separates_every_pair_with_room_on_both_sides(provider):
    """The calibration quoted in the provider's docstring: every pair of the
    same person scores at least 0.98 and every pair of the two people at
    most 0.90 (threshold 0.91)."""
    vectors = {
        (person, change): _embedding(provider, variant(picture(), change))
        for person, picture in PEOPLE.items()
        for change in VARIANTS
    }
    same, different = [], []
    for (a, va), (b, vb) in itertools.combinations(vectors.items(), 2):
        (same if a[0] == b[0] else different).append(float(np.dot(va, vb)))
    assert min(same) >= 0.98
    assert max(different) <= 0.90
    assert max(different) < provider.threshold < min(same)


def test_embeddings_are_unit_rows_and_a_batch_equals_single_calls(provider):
    pair = np.ascontiguousarray(np.hstack([astronaut()[:, :512], hopper()[:512]]))
    faces = provider.detect(pair)
    assert len(faces) == 2
    rows = provider.embed(pair, faces)
    assert rows.shape == (2, 128)
    np.testing.assert_allclose(np.linalg.norm(rows, axis=1), 1.0, atol=1e-5)
    for face, row in zip(faces, rows, strict=True):
        np.testing.assert_allclose(provider.embed(pair, [face])[0], row, atol=1e-5)
    assert provider.embed(pair, []).shape == (0, 128)


def test_the_onnx_resnet_gives_dlibs_own_embeddings(provider):
    reference = DlibProvider(fast=False)
    for picture in (astronaut(), hopper()):
        face = provider.detect(picture)[0]
        np.testing.assert_allclose(
            provider.embed(picture, [face]),
            reference.embed(picture, [face]),
            atol=2e-6,
        )


def test_a_file_that_is_not_dlibs_face_resnet_is_refused(tmp_path):
    landmarks = models_folder() / "shape_predictor_5_face_landmarks.dat"
    with pytest.raises(DlibModelError):
        read_network(landmarks)
    net = read_network(models_folder() / RESNET_FILE)
    assert len(net.convs) == 29 and net.fc.shape == (256, 128)


def test_the_aligned_crop_puts_eyes_nose_and_mouth_on_the_template(provider):
    picture = variant(hopper(), "rotated 15")
    face = provider.detect(picture)[0]
    crop = align(picture, face, size=224)
    assert crop.shape == (224, 224, 3)
    again = provider.detect(np.ascontiguousarray(crop))
    assert len(again) == 1
    error = np.linalg.norm(again[0].five_points() - ARCFACE_TEMPLATE * 2, axis=1)
    assert error.max() < 224 * 0.05  # within 5 % of the crop


def _face(points: list[tuple[float, float]]) -> Face:
    array = np.array(points, dtype=np.float32)
    x0, y0 = array.min(axis=0) - 20
    x1, y1 = array.max(axis=0) + 20
    return Face((x0, y0, x1, y1), 1.0, array)


FRONTAL = [(100, 100), (160, 100), (130, 136), (108, 162), (152, 162)]


def test_pose_is_near_zero_for_a_frontal_face_and_grows_when_it_turns():
    pose = estimate_pose(_face(FRONTAL))
    assert abs(pose.yaw) < 1 and abs(pose.roll) < 1 and abs(pose.pitch) < 2
    turned = [*FRONTAL]
    turned[2] = (130 + 0.4 * 60, 136)  # the nose 0.4 eye distances aside
    assert estimate_pose(_face(turned)).yaw > 35
    angle = np.radians(20)
    rotation = np.array([[np.cos(angle), -np.sin(angle)],
                         [np.sin(angle), np.cos(angle)]])  # fmt: skip
    rolled = [tuple(rotation @ np.array(p)) for p in FRONTAL]
    assert estimate_pose(_face(rolled)).roll == pytest.approx(20, abs=0.5)


def test_a_good_portrait_is_accepted_with_its_embedding(provider):
    check = check_reference(provider, hopper())
    assert check.accepted
    assert check.faces_found == 1
    assert [n.level for n in check.notes].count(REJECT) == 0
    assert check.embedding is not None and check.embedding.shape == (128,)


def test_a_blurred_face_is_rejected_as_blurred(provider):
    blurred = cv2.GaussianBlur(hopper(), (0, 0), 6)
    check = check_reference(provider, blurred)
    assert not check.accepted
    assert any(n.code == "blurred" and n.level == REJECT for n in check.notes)
    assert check.embedding is None


def test_a_small_face_is_rejected_and_a_middling_one_warned(provider):
    image = hopper()
    small = cv2.resize(image, None, fx=0.25, fy=0.25, interpolation=cv2.INTER_AREA)
    check = check_reference(provider, np.ascontiguousarray(small))
    assert check.face is not None and check.face.size < 60
    assert any(n.code == "small_face" and n.level == REJECT for n in check.notes)
    middling = check_reference(provider, astronaut())  # an 88 px face
    assert middling.accepted
    assert any(n.code == "small_face" and n.level == WARN for n in middling.notes)


def test_a_dark_face_is_rejected_for_its_lighting(provider):
    image = hopper()
    face = provider.detect(image)[0]
    quality = measure((image * 0.1).astype(np.uint8), face)
    assert any(n.code == "dark" and n.level == REJECT for n in judge(quality))


def test_with_several_faces_the_largest_is_used_and_noted(provider):
    canvas = np.zeros((600, 1100, 3), dtype=np.uint8)
    canvas[:, :512] = hopper()[:600]  # a 216 px face
    canvas[:512, 580:1092] = astronaut()  # an 88 px face
    check = check_reference(provider, canvas)
    assert check.faces_found == 2
    assert check.face is not None and check.face.center[0] < 512
    assert any(n.code == "several_faces" for n in check.notes)
    hinted = check_reference(provider, canvas, hint=(750, 80, 850, 180))
    assert hinted.face is not None and hinted.face.center[0] > 580


def test_an_identity_is_the_normalised_mean_with_a_small_spread(provider):
    rows = np.stack(
        [_embedding(provider, variant(hopper(), c)) for c in ("flipped", "darker",
                                                               "rotated 8")]
    )  # fmt: skip
    identity = build_identity(rows)
    assert identity.count == 3
    assert np.linalg.norm(identity.vector) == pytest.approx(1.0, abs=1e-6)
    assert 0 <= identity.spread <= identity.spread_max < 0.05
    with pytest.raises(ValueError):
        build_identity(np.zeros((0, 128)))


def test_faces_are_grouped_by_person_and_the_odd_one_out_is_found(provider):
    rows = np.stack(
        [
            _embedding(provider, variant(hopper(), "flipped")),
            _embedding(provider, astronaut()),
            _embedding(provider, variant(hopper(), "darker")),
            _embedding(provider, variant(hopper(), "cropped")),
        ]
    )
    groups = group_people(rows, provider.threshold)
    assert groups == [[0, 2, 3], [1]]
    assert outliers(rows, provider.threshold) == [1]


def test_insightface_without_its_pack_names_the_pull_command(tmp_path):
    with pytest.raises(FaceModelMissing, match="models pull insightface-buffalo-l"):
        load_provider("insightface", tmp_path)
    with pytest.raises(ValueError, match="unknown face provider"):
        load_provider("nobody")
