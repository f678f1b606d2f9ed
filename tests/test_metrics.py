"""Landmark metrics against hand-computed cases."""
import numpy as np
import pytest

from tf_talkface import metrics as M


def _faces(t, rng):
    return rng.uniform(0, 1, (t, 68, 2))


def test_rmse_by_hand():
    true = np.zeros((4, 68, 2))
    pred = np.zeros((4, 68, 2))
    pred[..., 0] = 0.3  # x off by 0.3 everywhere, y exact -> RMSE = sqrt(0.09 / 2)
    assert M.rmse(pred, true) == pytest.approx(np.sqrt(0.045))
    pred2 = true.copy()
    pred2[:, 48:68] = 1.0  # only the mouth wrong
    assert M.mouth_rmse(pred2, true) == pytest.approx(1.0)
    assert M.rmse(pred2, true) == pytest.approx(np.sqrt(20 / 68))
    # frame weights: padded frames do not count
    pred3 = true.copy()
    pred3[2:] = 5.0
    assert M.rmse(pred3, true, weights=[1, 1, 0, 0]) == 0.0


def test_flat_vectors_and_68_frame_clips_are_read_the_same():
    rng = np.random.default_rng(0)
    for t in (5, 68, 136):  # 68 frames of 136-dim vectors must not be mistaken for (68, 136)
        p, q = _faces(t, rng), _faces(t, rng)
        assert M.rmse(p.reshape(t, 136), q.reshape(t, 136)) == pytest.approx(M.rmse(p, q))
        assert M.lmd(p.reshape(t, 136), q.reshape(t, 136)) == pytest.approx(M.lmd(p, q))
        assert np.isfinite(M.mouth_opening_correlation(p.reshape(t, 136), q.reshape(t, 136)))


def test_lmd_ignores_translation_and_measures_shape():
    rng = np.random.default_rng(1)
    f = _faces(3, rng)
    assert M.lmd(f + [0.5, -0.2], f) == pytest.approx(0.0, abs=1e-12)
    g = f.copy()
    g[:, 48:68, 0] += 0.1  # whole mouth shifted: centring removes it
    assert M.lmd(g, f) == pytest.approx(0.0, abs=1e-12)
    h = f.copy()
    h[:, 48, 0] += 2.0  # one mouth point moved by 2: centred distance by hand
    d = h[:, 48:68] - h[:, 48:68].mean(1, keepdims=True) - (f[:, 48:68] - f[:, 48:68].mean(1, keepdims=True))
    assert M.lmd(h, f) == pytest.approx(np.linalg.norm(d, axis=-1).mean())


def test_diff_rmse_and_mouth_opening_correlation():
    t = np.arange(10.0)
    base = np.zeros((10, 68, 2))
    a = base.copy()
    a[:, [65, 66, 67], 1] = (1 + 0.5 * np.sin(t))[:, None]  # lower inner lip moves (gap > 0)
    b = base.copy()
    b[:, [65, 66, 67], 1] = (3 + 1.5 * np.sin(t))[:, None]  # a wider mouth, same timing
    assert M.mouth_opening_correlation(a, b) == pytest.approx(1.0)
    assert np.isnan(M.mouth_opening_correlation(base, a))
    assert M.diff_rmse(a + 3.0, a) == pytest.approx(0.0)  # a constant offset has no motion error
    with pytest.raises(ValueError, match="68"):
        M.rmse(np.zeros((3, 10)), np.zeros((3, 10)))


# ----------------------------------------------------------- evaluate's metrics (hand-computed)


def _gap_faces(gaps):
    """Faces whose inner-lip gap is ``gaps`` (upper inner lip at y=0, lower at y=gap)."""
    f = np.zeros((len(gaps), 68, 2))
    f[:, [65, 66, 67], 1] = np.asarray(gaps, float)[:, None]
    return f


def test_all_rmse_d1_d2_by_hand():
    true = np.zeros((3, 68, 2))
    pred = true.copy()
    pred[..., 0] = 0.3
    assert M.all_rmse(pred, true) == pytest.approx(np.sqrt(0.3 ** 2 / 2))
    ramp = np.zeros((3, 68, 2)) + np.array([0.0, 1.0, 2.0])[:, None, None]  # 0, 1, 2 everywhere
    assert M.d1_rmse(ramp, true) == pytest.approx(1.0)  # velocity 1 vs 0
    assert M.d2_rmse(ramp, true) == pytest.approx(0.0)  # no acceleration
    sq = np.zeros((3, 68, 2)) + np.array([0.0, 1.0, 4.0])[:, None, None]
    assert M.d1_rmse(sq, true) == pytest.approx(np.sqrt((1 + 9) / 2))  # diffs 1 and 3
    assert M.d2_rmse(sq, true) == pytest.approx(2.0)  # 4 - 2*1 + 0
    assert M.d1_rmse(sq + 7.0, sq) == pytest.approx(0.0)
    assert np.isnan(M.d1_rmse(true[:1], true[:1])) and np.isnan(M.d2_rmse(true[:2], true[:2]))


def test_lmd_by_hand():
    true = np.zeros((1, 68, 2))
    pred = true.copy()
    pred[0, 48] = [2.0, 0.0]  # centred: mouth mean x = 0.1 -> point 48 at 1.9, 19 points at -0.1
    assert M.lmd(pred, true) == pytest.approx((1.9 + 19 * 0.1) / 20)  # 0.19
    pred[0, 0] = [5.0, 5.0]  # a jaw point: not in the mouth, no effect
    assert M.lmd(pred, true) == pytest.approx(0.19)


def test_mouth_open_r_by_hand_and_nan_for_a_static_face():
    # gaps (1, 2, 3) vs (1, 3, 2): deviations (-1, 0, 1), (-1, 1, 0): r = 1 / (sqrt 2 sqrt 2) = 0.5
    assert M.mouth_open_r(_gap_faces([1, 2, 3]), _gap_faces([1, 3, 2])) == pytest.approx(0.5)
    assert M.mouth_open_r(_gap_faces([0, 1, 2]), _gap_faces([2, 1, 0])) == pytest.approx(-1.0)
    rng = np.random.default_rng(3)
    moving = rng.uniform(0, 1, (75, 68, 2))
    for _ in range(20):  # a repeated frame: r undefined, whatever rounding does to the std
        static = np.repeat(rng.uniform(0, 1, (1, 68, 2)), 75, axis=0)
        assert np.isnan(M.mouth_open_r(static, moving))
        assert np.isnan(M.clip_metrics(static, moving)["mouth_open_r"])


def test_clip_metrics_keys_and_shape_check():
    rng = np.random.default_rng(4)
    p, t = rng.uniform(0, 1, (6, 68, 2)), rng.uniform(0, 1, (6, 68, 2))
    m = M.clip_metrics(p, t)
    assert tuple(m) == M.METRIC_NAMES
    assert m["mouth_rmse"] == pytest.approx(M.mouth_rmse(p, t))
    assert m["d1_rmse"] == pytest.approx(M.diff_rmse(p, t, 1))
    with pytest.raises(ValueError, match="differ"):
        M.clip_metrics(p, t[:5])


def test_pooled_metrics_by_hand():
    t1, t2 = np.zeros((2, 68, 2)), np.zeros((1, 68, 2))
    m = M.pooled_metrics([t1 + 1.0, t2 + 2.0], [t1, t2])
    assert m["all_rmse"] == pytest.approx(np.sqrt((2 * 1 + 1 * 4) / 3))  # frames, not clips
    assert m["mouth_rmse"] == pytest.approx(np.sqrt(2))
    assert m["lmd"] == pytest.approx(0.0)  # a uniform shift: centring removes it
    assert m["d1_rmse"] == pytest.approx(0.0)  # constant errors; clip 2 has no difference
    assert np.isnan(m["d2_rmse"])  # no clip has 3 frames
    assert np.isnan(m["mouth_open_r"])  # static faces
    # differences never cross a clip boundary: clip B's offset of 5 is not a jump
    a, b = np.zeros((2, 68, 2)), np.zeros((2, 68, 2))
    assert M.pooled_metrics([a, b + 5.0], [a, b])["d1_rmse"] == pytest.approx(0.0)
    # r: the mean over the clips where it is defined
    c1 = (_gap_faces([1, 2, 3]), _gap_faces([1, 3, 2]))  # 0.5
    c2 = (_gap_faces([0, 1, 2]), _gap_faces([0, 1, 2]))  # 1.0
    c3 = (_gap_faces([1, 1, 1]), _gap_faces([0, 1, 2]))  # NaN, skipped
    r = M.pooled_metrics(*zip(c1, c2, c3))["mouth_open_r"]
    assert r == pytest.approx(0.75)
    with pytest.raises(ValueError):
        M.pooled_metrics([], [])
