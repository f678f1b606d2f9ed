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
