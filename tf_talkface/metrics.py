"""Landmark error metrics used in the field (reference.md, "Metrics used in the field").

All functions take landmark sequences ``(frames, 68, D)`` (or batches ``(clips, frames, 68, D)``
with an optional per-frame weight/mask) in the *same normalised coordinates* for prediction and
truth, and return float64 scalars in those units (e.g. 2018 targets: fractions of the 600-px
canvas; 2020: units of the unit-norm Procrustes frame).
"""
from __future__ import annotations

import numpy as np

from tf_talkface.face.topology import MOUTH


def _as_points(x: np.ndarray) -> np.ndarray:
    """(..., 68, D) stays; (..., 68*D) with D in (2, 3) becomes (..., 68, D)."""
    x = np.asarray(x, np.float64)
    if x.ndim >= 2 and x.shape[-2] == 68 and x.shape[-1] in (2, 3):
        return x
    if x.shape[-1] in (136, 204):
        return x.reshape(*x.shape[:-1], 68, x.shape[-1] // 68)
    raise ValueError(f"expected (..., 68, D) or (..., 68*D) landmarks, got {x.shape}")


def _weights(shape, weights):
    if weights is None:
        return np.ones(shape, np.float64)
    w = np.asarray(weights, np.float64)
    if w.shape != shape:
        raise ValueError(f"weights of shape {w.shape} do not match frames {shape}")
    return w


def rmse(pred, true, weights=None, points=None) -> float:
    """Root mean square error over frames, points (all 68, or ``points``) and coordinates.

    Args:
        pred, true: (..., frames, 68, D) or (..., frames, 68*D).
        weights: (..., frames) frame weights (0 = padding) or None.
        points: index array of the points to use (e.g. ``topology.MOUTH``) or None for all.
    """
    p, t = _as_points(pred), _as_points(true)
    if points is not None:
        p, t = p[..., points, :], t[..., points, :]
    w = _weights(p.shape[:-2], weights)
    se = ((p - t) ** 2).mean(axis=(-1, -2))
    return float(np.sqrt((se * w).sum() / max(w.sum(), 1e-12)))


def mouth_rmse(pred, true, weights=None) -> float:
    """:func:`rmse` over the 20 mouth points 48-67."""
    return rmse(pred, true, weights, MOUTH)


def diff_rmse(pred, true, order: int = 1, points=None) -> float:
    """RMSE of the ``order``-th temporal differences of single clips (frames, 68, D): how well
    the motion (velocity, acceleration) is reproduced."""
    p = np.diff(_as_points(pred), n=order, axis=-3)
    t = np.diff(_as_points(true), n=order, axis=-3)
    return rmse(p, t, points=points)


def lmd(pred, true, weights=None, points=MOUTH) -> float:
    """Landmark distance (LMD, Chen et al. 2019): per frame the mean Euclidean distance between
    corresponding mouth points after centring each set on its own mean; averaged over frames."""
    p = _as_points(pred)[..., points, :]
    t = _as_points(true)[..., points, :]
    p = p - p.mean(axis=-2, keepdims=True)
    t = t - t.mean(axis=-2, keepdims=True)
    d = np.linalg.norm(p - t, axis=-1).mean(axis=-1)
    w = _weights(d.shape, weights)
    return float((d * w).sum() / max(w.sum(), 1e-12))


def mouth_opening_correlation(pred, true) -> float:
    """Pearson correlation over time between predicted and true mouth opening (inner-lip gap)
    of one clip (frames, 68, D); NaN when either is constant."""
    from tf_talkface.face.normalize import inner_lip_gap

    a = inner_lip_gap(_as_points(pred))
    b = inner_lip_gap(_as_points(true))
    if a.std() == 0 or b.std() == 0:
        return float("nan")
    return float(np.corrcoef(a, b)[0, 1])
