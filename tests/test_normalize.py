"""Landmark normalisation (2018 eye alignment / expression transfer; 2020 Procrustes, closed
mouth, identity removal) on real dlib landmarks and hand-made cases."""
import numpy as np
import pytest

from tf_talkface.face import normalize as nz


@pytest.fixture(scope="module")
def obama(data_dir):
    """Real dlib landmarks of obama2s.mp4 (an independent extraction); its first 13 frames are
    NaN (no face found there by that extraction), so frames 13..59 (47 frames)."""
    a = np.load(data_dir / "video" / "obama2s_landmarks_dlib.npy")
    valid = np.isfinite(a).all(axis=(1, 2))
    return a[valid]


def _rot(deg):
    a = np.deg2rad(deg)
    return np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])


def test_similarity_maps_two_points_exactly():
    src = np.array([[10.0, 20.0], [50.0, 25.0]])
    dst = np.array([[180.0, 200.0], [420.0, 200.0]])
    t = nz.similarity_from_two_points(src, dst)
    np.testing.assert_allclose(nz.apply_affine(src, t), dst, atol=1e-9)
    # a similarity: the 2x2 part is scale * rotation
    m = t[:, :2]
    np.testing.assert_allclose(m @ m.T, np.eye(2) * np.linalg.det(m), atol=1e-9)


def test_align_eye_points_puts_first_frame_eyes_on_the_canvas_line(obama):
    out = nz.align_eye_points(obama)
    assert out.shape == (len(obama), 68, 2) and out.dtype == np.float32
    np.testing.assert_allclose(out[0, 36], [180, 200], atol=1e-3)
    np.testing.assert_allclose(out[0, 45], [420, 200], atol=1e-3)
    # later frames use the first frame's transform, so their eyes move a little (head motion)
    assert np.abs(out[1:, 36] - out[0, 36]).max() > 0.01
    per = nz.align_eye_points(obama, per_frame=True)
    np.testing.assert_allclose(per[:, 36], np.tile([180, 200], (len(obama), 1)), atol=1e-3)


def test_transfer_expression_keeps_motion_and_replaces_identity(obama, data_dir):
    ms = nz.prepare_mean_shape(np.load(data_dir / "reference" / "eskimez2018" / "mean_shape.npy"))
    aligned = nz.align_eye_points(obama)
    out = nz.transfer_expression(aligned, ms)
    np.testing.assert_allclose(out[0], ms, atol=1e-4)  # first frame becomes the mean shape
    # motion is the original motion scaled per axis by the affine fit's scales
    t = nz.affine_lstsq(aligned[0], ms)
    sx, sy = np.hypot(*t[0, :2]), np.hypot(*t[1, :2])
    motion = aligned[10] - aligned[0]
    np.testing.assert_allclose(out[10] - ms, motion * [sx, sy], atol=1e-3)
    full = nz.normalize_eskimez2018(obama, ms)
    assert 0.0 < full.min() and full.max() < 1.0  # roughly within [0, 1]
    np.testing.assert_allclose(full, out / 600.0, atol=1e-6)


def test_transfer_expression_scale_by_hand():
    rng = np.random.default_rng(0)
    ms = rng.uniform(100, 500, (68, 2))
    seq = np.stack([ms * 2.0, ms * 2.0 + [3.0, -1.0]])  # face twice the size, then moves
    out = nz.transfer_expression(seq, ms)
    np.testing.assert_allclose(out[0], ms, atol=1e-6)
    np.testing.assert_allclose(out[1] - ms, np.tile([1.5, -0.5], (68, 1)), atol=1e-4)  # float32 output


def test_procrustes_undoes_similarity_transforms(obama):
    ref = obama[0]
    moved = np.stack([ref @ _rot(d).T * s + [tx, 7.0]
                      for d, s, tx in [(0, 1, 0), (12, 0.5, 30), (-25, 3.0, -100)]])
    out = nz.procrustes_align(moved, ref)
    std = nz.standardize(ref)
    for f in out:
        np.testing.assert_allclose(f, std, atol=1e-5)
    clip_mean = nz.procrustes_align(obama)  # toolkit: align to the clip mean
    # scipy scales each aligned frame by its fit to the unit-norm reference: norm <= 1, near 1
    norms = np.linalg.norm(clip_mean, axis=(1, 2))
    assert np.all(norms <= 1 + 1e-6) and norms.min() > 0.98
    np.testing.assert_allclose(clip_mean.mean(axis=1), 0.0, atol=1e-6)


def _mouth_sequence(gaps, widths, base):
    seq = np.repeat(base[None], len(gaps), axis=0).astype(np.float64)
    for i, (g, w) in enumerate(zip(gaps, widths)):
        seq[i, [61, 62, 63], 1] = 0.0
        seq[i, [67, 66, 65], 1] = g
        seq[i, [61, 62, 63, 67, 66, 65], 0] = [-1, 0, 1, -1, 0, 1]
        seq[i, 60] = [-w / 2, g / 2]
        seq[i, 64] = [w / 2, g / 2]
    return seq


def test_closed_mouth_frame_uses_the_width_filter(obama):
    gaps = [5.0, 3.0, 0.5, 2.0, 4.0, 6.0, 0.2]
    widths = [10.0, 10.2, 9.9, 10.1, 10.0, 9.8, 20.0]  # last: smallest gap but a stretched mouth
    seq = _mouth_sequence(gaps, widths, obama[0])
    assert nz.closed_mouth_frame(seq, z_thresh=1.0) == 2
    assert nz.closed_mouth_frame(seq, z_thresh=100.0) == 6
    np.testing.assert_allclose(nz.inner_lip_gap(seq), gaps)
    np.testing.assert_allclose(nz.mouth_width(seq), widths)


def test_remove_identity_and_2020_normalisation(obama):
    tmpl = nz.standardize(obama[5])
    norm, ref = nz.normalize_eskimez2020(obama, tmpl)
    assert norm.shape == obama.shape and 0 <= ref < len(obama)
    np.testing.assert_allclose(norm[ref], tmpl, atol=1e-5)  # the reference frame becomes the template
    aligned = nz.procrustes_align(obama, tmpl)
    np.testing.assert_allclose(norm - norm[ref], aligned - aligned[ref], atol=1e-5)
    np.testing.assert_allclose(nz.remove_identity(obama, obama[0], obama[1])[0], obama[1], atol=1e-4)


def test_generalized_procrustes_mean_recovers_shape(obama):
    ref = obama[0]
    shapes = np.stack([ref @ _rot(d).T * s + t for d, s, t in
                       [(5, 1.0, 3), (-10, 2.0, -50), (20, 0.7, 9), (0, 1.1, 0)]])
    mean = nz.generalized_procrustes_mean(shapes)
    from scipy.spatial import procrustes
    assert procrustes(mean, ref)[2] < 1e-8  # same shape up to similarity


def test_bad_inputs_raise_clear_errors():
    with pytest.raises(ValueError, match=r"expected shape \(frames, 68, 2\|3\)"):
        nz.align_eye_points(np.zeros((5, 10, 2)))
    with pytest.raises(ValueError, match="NaN"):
        nz.procrustes_align(np.full((2, 68, 2), np.nan))
    with pytest.raises(ValueError, match="coincide"):
        nz.align_eye_points(np.zeros((1, 68, 2)))
