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
    of one clip (frames, 68, D); NaN when either is constant. Same as :func:`mouth_open_r`."""
    return mouth_open_r(pred, true)


# ------------------------------------------------------------------ evaluation tables (evaluate.py)

METRIC_NAMES: tuple[str, ...] = ("all_rmse", "mouth_rmse", "d1_rmse", "d2_rmse", "lmd",
                                 "mouth_open_r", "open_range", "open_range_true")
"""The metrics of ``python -m tf_talkface.evaluate``, in table order (see :func:`clip_metrics`)."""


def all_rmse(pred, true, weights=None) -> float:
    """:func:`rmse` over all 68 points: ``sqrt(mean over frames, points and x/y of (p - t)^2)``.

    Hand check: a prediction off by 0.3 in x only, everywhere, gives ``sqrt(0.3^2 / 2)`` = 0.2121.
    Units: those of the landmarks.
    """
    return rmse(pred, true, weights)


def d1_rmse(pred, true) -> float:
    """RMSE of the 1st temporal differences (velocity, per frame) of one clip, all 68 points:
    ``rmse(p[1:] - p[:-1], t[1:] - t[:-1])``; NaN for clips of fewer than 2 frames.

    Hand check: a constant offset gives 0; ``p = 0, 1, 2`` vs ``t = 0, 0, 0`` (every coordinate)
    gives 1. Units: landmark units per frame (40 ms).
    """
    return _diff_rmse_or_nan(pred, true, 1)


def d2_rmse(pred, true) -> float:
    """RMSE of the 2nd temporal differences (acceleration, per frame^2) of one clip, all points:
    ``rmse(p[2:] - 2 p[1:-1] + p[:-2], same of t)``; NaN for clips of fewer than 3 frames.

    Hand check: ``p = 0, 1, 4`` vs ``t = 0, 0, 0`` gives 2 (= 4 - 2 + 0). Units: landmark units
    per frame^2.
    """
    return _diff_rmse_or_nan(pred, true, 2)


def _diff_rmse_or_nan(pred, true, order: int) -> float:
    p, t = _as_points(pred), _as_points(true)
    if p.shape[-3] <= order:
        return float("nan")
    return diff_rmse(p, t, order=order)


def mouth_open_r(pred, true) -> float:
    """Pearson r over time between the predicted and true mouth opening of one clip
    (:func:`~tf_talkface.face.normalize.inner_lip_gap`: mean distance of the upper inner-lip
    points 61-63 to the lower ones 67-65), unit-free in [-1, 1].

    NaN when either gap sequence is exactly constant (e.g. the static mean face), where r is
    undefined. (Tested with ``ptp == 0``: ``std == 0`` can miss a repeated frame by rounding
    and give r ~ 1e-16 instead of NaN, as the stored test metrics of the first runs show.)

    Hand check: gaps ``1 + 0.5 sin t`` vs ``3 + 1.5 sin t`` give 1; reversed in time, -1 for a
    symmetric sequence such as ``0, 1, 2`` vs ``2, 1, 0``.
    """
    from tf_talkface.face.normalize import inner_lip_gap

    a = inner_lip_gap(_as_points(pred))
    b = inner_lip_gap(_as_points(true))
    if len(a) < 2 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan")
    return float(np.corrcoef(a, b)[0, 1])


def opening_range(seq) -> float:
    """How far the mouth moves in one clip: the 95th minus the 5th percentile over time of the
    inner-lip gap (:func:`~tf_talkface.face.normalize.inner_lip_gap`), divided by the clip's
    mean mouth width (outer corners 48-54), unit-free. A static face scores 0 whatever its
    shape; real GRID video (dlib) scores about 0.16-0.22 per clip (issue 11).

    Args:
        seq: (frames, 68, D) or (frames, 68*D) landmarks.

    Returns:
        float >= 0; NaN for an empty sequence or a zero mouth width.
    """
    from tf_talkface.face.normalize import inner_lip_gap

    p = _as_points(seq)
    if len(p) == 0:
        return float("nan")
    gap = inner_lip_gap(p)
    width = float(np.linalg.norm(p[:, 54] - p[:, 48], axis=-1).mean())
    if not width > 0:
        return float("nan")
    return float((np.percentile(gap, 95) - np.percentile(gap, 5)) / width)


def nanmean_or_nan(values) -> float:
    """Mean of the finite values (NaN entries skipped, no warning); NaN when none is finite.
    E.g. ``[0.5, nan, 0.7]`` -> 0.6."""
    v = np.asarray(list(values), np.float64)
    v = v[np.isfinite(v)]
    return float(v.mean()) if v.size else float("nan")


def clip_metrics(pred, true) -> dict:
    """All :data:`METRIC_NAMES` of one clip, float (``frames`` >= 1, same length for both).

    Args:
        pred, true: (frames, 68, D) or (frames, 68*D) in the same normalised units.

    Returns:
        ``{"all_rmse", "mouth_rmse", "d1_rmse", "d2_rmse", "lmd", "mouth_open_r", "open_range",
        "open_range_true"}``: RMSEs and LMD in landmark units (d1/d2 per frame / frame^2),
        ``mouth_open_r`` the unit-free Pearson r of the inner-lip gaps over time (NaN when
        either is constant, e.g. a static face), ``open_range`` / ``open_range_true`` the
        :func:`opening_range` of the prediction and of the truth.

    Raises:
        ValueError: the two sequences have different shapes.
    """
    p, t = _as_points(pred), _as_points(true)
    if p.shape != t.shape:
        raise ValueError(f"prediction {p.shape} and truth {t.shape} differ")
    return {"all_rmse": all_rmse(p, t), "mouth_rmse": mouth_rmse(p, t), "d1_rmse": d1_rmse(p, t),
            "d2_rmse": d2_rmse(p, t), "lmd": lmd(p, t),
            "mouth_open_r": mouth_open_r(p, t), "open_range": opening_range(p),
            "open_range_true": opening_range(t)}


def pooled_metrics(preds, trues) -> dict:
    """All :data:`METRIC_NAMES` over a set of clips (lists of per-clip (frames_i, 68, D) arrays).

    * ``all_rmse``, ``mouth_rmse``, ``lmd``: over all frames of all clips concatenated (every frame
      counts once, so long clips weigh more than short ones);
    * ``d1_rmse``, ``d2_rmse``: over the temporal differences of every clip concatenated (never
      across a clip boundary; clips too short for a difference add nothing; NaN if none has any);
    * ``mouth_open_r``: the mean over clips of the per-clip r, clips with an undefined r (NaN)
      skipped (:func:`nanmean_or_nan`);
    * ``open_range``, ``open_range_true``: the mean over clips of :func:`opening_range`.

    Hand check: two clips with errors of 1 (2 frames) and 2 (1 frame) on every coordinate give
    ``all_rmse = sqrt((2 * 1 + 1 * 4) / 3) = sqrt(2)``.

    Raises:
        ValueError: no clips, or a clip whose prediction and truth shapes differ.
    """
    ps = [_as_points(p) for p in preds]
    ts = [_as_points(t) for t in trues]
    if not ps or len(ps) != len(ts):
        raise ValueError(f"pooled_metrics needs the same non-zero number of predictions and "
                         f"truths, got {len(ps)} and {len(ts)}")
    for p, t in zip(ps, ts):
        if p.shape != t.shape:
            raise ValueError(f"prediction {p.shape} and truth {t.shape} differ")
    cat_p, cat_t = np.concatenate(ps), np.concatenate(ts)
    out = {"all_rmse": all_rmse(cat_p, cat_t), "mouth_rmse": mouth_rmse(cat_p, cat_t)}
    for order in (1, 2):
        dp = [np.diff(p, n=order, axis=0) for p in ps if len(p) > order]
        dt = [np.diff(t, n=order, axis=0) for t in ts if len(t) > order]
        out[f"d{order}_rmse"] = rmse(np.concatenate(dp), np.concatenate(dt)) if dp else float("nan")
    out["lmd"] = lmd(cat_p, cat_t)
    out["mouth_open_r"] = nanmean_or_nan(mouth_open_r(p, t) for p, t in zip(ps, ts))
    out["open_range"] = nanmean_or_nan(opening_range(p) for p in ps)
    out["open_range_true"] = nanmean_or_nan(opening_range(t) for t in ts)
    return {k: out[k] for k in METRIC_NAMES}
