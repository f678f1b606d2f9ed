"""Landmark normalisation: the 2018 eye alignment + expression transfer, and the 2020/replication
toolkit's Procrustes alignment, closed-mouth frame and identity removal.

All functions take landmark sequences as float arrays ``(frames, 68, D)`` with D = 2 (x, y) or
3 (x, y, z), image convention (y grows downwards), frames at 25 fps, and return float32.
"""
from __future__ import annotations

import numpy as np
from scipy.spatial import procrustes as _scipy_procrustes

EYE_CORNERS = (36, 45)
CANVAS = 600.0
"""The 2018 code works on a 600 x 600 canvas and divides by 600 at the end."""


def _check_seq(seq: np.ndarray, name: str = "landmarks") -> np.ndarray:
    seq = np.asarray(seq, dtype=np.float64)
    if seq.ndim != 3 or seq.shape[1] != 68 or seq.shape[2] not in (2, 3):
        raise ValueError(f"{name}: expected shape (frames, 68, 2|3), got {seq.shape}")
    if seq.shape[0] == 0:
        raise ValueError(f"{name}: empty sequence (0 frames)")
    if not np.all(np.isfinite(seq)):
        raise ValueError(f"{name}: contains NaN or inf")
    return seq


def similarity_from_two_points(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """2x3 similarity transform (rotation, uniform scale, translation) mapping two 2D points
    ``src`` (2, 2) exactly onto ``dst`` (2, 2).

    Source: the original ``faceNormalizer.similarityTransform`` adds a third point (an equilateral
    triangle vertex) and fits ``cv2.estimateRigidTransform``; the exact two-point solution is the
    same transform without that function (removed from OpenCV 4) and without its integer rounding
    of the third point (a sub-pixel difference, on purpose).
    """
    src = np.asarray(src, np.float64)
    dst = np.asarray(dst, np.float64)
    zs = complex(*(src[1] - src[0]))
    zd = complex(*(dst[1] - dst[0]))
    if zs == 0:
        raise ValueError("similarity_from_two_points: the two source points coincide")
    a = zd / zs  # scale * exp(i * angle)
    rot = np.array([[a.real, -a.imag], [a.imag, a.real]])
    t = dst[0] - rot @ src[0]
    return np.hstack([rot, t[:, None]])


def apply_affine(points: np.ndarray, tform: np.ndarray) -> np.ndarray:
    """Apply a 2x3 affine ``tform`` to the x, y of ``points`` (..., 68, D); z is kept."""
    out = np.array(points, dtype=np.float64, copy=True)
    xy = out[..., :2]
    out[..., :2] = xy @ tform[:, :2].T + tform[:, 2]
    return out


def align_eye_points(seq: np.ndarray, w: float = CANVAS, h: float = CANVAS,
                     per_frame: bool = False) -> np.ndarray:
    """Eye-corner similarity alignment of a 2D sequence (Eskimez 2018 ``alignEyePoints``).

    The transform that maps the outer eye corners (points 36 and 45) of the *first* frame to
    (0.3 w, h/3) and (0.7 w, h/3) is applied to every frame (``per_frame=True``: each frame gets
    its own transform, the original ``alignEyePointsV2`` used after generation).

    Args:
        seq: (frames, 68, 2) pixel coordinates.
    Returns:
        (frames, 68, 2) float32 on the w x h canvas.
    Raises:
        ValueError: wrong shape, NaN, or coinciding eye corners.
    """
    seq = _check_seq(seq)
    dst = np.array([[0.3 * w, h / 3.0], [0.7 * w, h / 3.0]])
    if per_frame:
        out = np.stack([apply_affine(f, similarity_from_two_points(f[list(EYE_CORNERS), :2], dst))
                        for f in seq])
    else:
        tform = similarity_from_two_points(seq[0, list(EYE_CORNERS), :2], dst)
        out = apply_affine(seq, tform)
    return out.astype(np.float32)


def affine_lstsq(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares full 2x3 affine transform from ``src`` (N, 2) to ``dst`` (N, 2).

    Stands in for ``cv2.estimateRigidTransform(src, dst, fullAffine=True)`` (removed from
    OpenCV 4, and RANSAC-based there): deterministic least squares, on purpose.
    """
    src = np.asarray(src, np.float64)
    a = np.hstack([src, np.ones((len(src), 1))])
    sol, *_ = np.linalg.lstsq(a, np.asarray(dst, np.float64), rcond=None)
    return sol.T


def transfer_expression(seq: np.ndarray, mean_shape: np.ndarray) -> np.ndarray:
    """Expression transfer onto a mean shape (Eskimez 2018 ``transferExpression``).

    The frame-to-frame motion of ``seq`` (differences accumulated from the first frame) is scaled
    per axis by |s_x|, |s_y| of a full-affine fit of the first frame onto ``mean_shape`` and added
    to ``mean_shape``: frame t = mean_shape + S (seq[t] - seq[0]). Identity is thereby replaced
    by the mean shape while the motion is kept.

    Args:
        seq: (frames, 68, 2), eye-aligned on the 600 canvas.
        mean_shape: (68, 2), eye-aligned the same way.
    Returns:
        (frames, 68, 2) float32.
    """
    seq = _check_seq(seq)
    ms = np.asarray(mean_shape, np.float64).reshape(68, 2)
    tform = affine_lstsq(seq[0], ms)
    sx = np.hypot(tform[0, 0], tform[0, 1])
    sy = np.hypot(tform[1, 0], tform[1, 1])
    motion = seq - seq[:1]
    motion[..., 0] *= sx
    motion[..., 1] *= sy
    return (ms[None] + motion).astype(np.float32)


def prepare_mean_shape(mean_shape: np.ndarray) -> np.ndarray:
    """Eye-align a raw (68, 2) mean shape as the original extractor does before using it."""
    return align_eye_points(np.asarray(mean_shape, np.float64).reshape(1, 68, 2))[0]


def normalize_eskimez2018(seq: np.ndarray, mean_shape: np.ndarray) -> np.ndarray:
    """The 2018 target: eye alignment, expression transfer, then / 600 (reference.md).

    Args:
        seq: (frames, 68, 2) raw pixel landmarks at 25 fps.
        mean_shape: (68, 2) *already eye-aligned* mean shape (see :func:`prepare_mean_shape`).
    Returns:
        (frames, 68, 2) float32, coordinates roughly in [0, 1]; flatten to 136 (x0, y0, x1, ...).
    """
    aligned = align_eye_points(seq)
    return (transfer_expression(aligned, mean_shape) / CANVAS).astype(np.float32)


# --- 2020 / replication toolkit ------------------------------------------------------------

def standardize(shape: np.ndarray) -> np.ndarray:
    """Centre a (68, D) shape on its mean and scale it to unit Frobenius norm (scipy's convention)."""
    s = np.asarray(shape, np.float64)
    s = s - s.mean(axis=0, keepdims=True)
    n = np.linalg.norm(s)
    if n == 0:
        raise ValueError("standardize: degenerate shape (all points equal)")
    return s / n


def procrustes_align(seq: np.ndarray, reference: np.ndarray | None = None) -> np.ndarray:
    """Procrustes-align every frame to a reference shape with :func:`scipy.spatial.procrustes`.

    Each frame is centred, scaled to unit Frobenius norm and optimally rotated onto the
    standardised reference. The replication toolkit aligns to the clip mean (``reference=None``);
    our 2020 recipe aligns to the dataset template so all clips share one canonical frame.

    Args:
        seq: (frames, 68, D). reference: (68, D) or None (= the clip's mean shape).
    Returns:
        (frames, 68, D) float32, each frame centred with unit norm.
    """
    seq = _check_seq(seq)
    ref = seq.mean(axis=0) if reference is None else np.asarray(reference, np.float64)
    if ref.shape != seq.shape[1:]:
        raise ValueError(f"procrustes_align: reference shape {ref.shape} != frame shape {seq.shape[1:]}")
    return np.stack([_scipy_procrustes(ref, f)[1] for f in seq]).astype(np.float32)


def mouth_width(seq: np.ndarray) -> np.ndarray:
    """Inner mouth width per frame: distance between inner-lip corners 60 and 64. (frames,)"""
    seq = np.asarray(seq)
    return np.linalg.norm(seq[:, 60] - seq[:, 64], axis=-1)


def inner_lip_gap(seq: np.ndarray) -> np.ndarray:
    """Mouth opening per frame: mean distance of upper inner-lip points 61, 62, 63 to the lower
    ones 67, 66, 65 (same units as the landmarks). (frames,)"""
    seq = np.asarray(seq)
    up = seq[:, [61, 62, 63]]
    lo = seq[:, [67, 66, 65]]
    return np.linalg.norm(up - lo, axis=-1).mean(axis=1)


def closed_mouth_frame(seq: np.ndarray, z_thresh: float = 1.0) -> int:
    """Index of the closed-mouth reference frame (replication toolkit).

    Among frames whose mouth width (60-64) has |z-score| below ``z_thresh`` within the clip
    (rejecting stretched or pursed lips), the one with the smallest inner-lip gap. When no frame
    passes the filter (or the width is constant), all frames are candidates.
    """
    seq = _check_seq(seq)
    width = mouth_width(seq)
    sd = width.std()
    cand = np.arange(len(seq))
    if sd > 0:
        ok = np.abs((width - width.mean()) / sd) < z_thresh
        if ok.any():
            cand = cand[ok]
    return int(cand[np.argmin(inner_lip_gap(seq)[cand])])


def remove_identity(seq: np.ndarray, reference_frame: np.ndarray, template: np.ndarray) -> np.ndarray:
    """Identity removal: ``seq - reference_frame + template`` (2020 paper; replication toolkit).

    Args:
        seq: (frames, 68, D) aligned landmarks. reference_frame: (68, D) the speaker's
            closed-mouth frame in the same alignment. template: (68, D) template face.
    Returns:
        (frames, 68, D) float32.
    """
    seq = _check_seq(seq)
    return (seq - np.asarray(reference_frame)[None] + np.asarray(template)[None]).astype(np.float32)


def generalized_procrustes_mean(shapes: np.ndarray, iterations: int = 3) -> np.ndarray:
    """Mean shape of a set of shapes (N, 68, D) by generalised Procrustes analysis.

    Start from the first shape, align all shapes to the current mean, re-estimate the mean, and
    repeat. Returns a standardised (centred, unit-norm) (68, D) float32 shape. Used to build a
    dataset's template face from its own training clips when no template is given.
    """
    shapes = np.asarray(shapes, np.float64)
    if shapes.ndim != 3 or len(shapes) == 0:
        raise ValueError(f"generalized_procrustes_mean: expected (N, 68, D), got {shapes.shape}")
    mean = standardize(shapes[0])
    for _ in range(iterations):
        aligned = np.stack([_scipy_procrustes(mean, s)[1] for s in shapes])
        mean = standardize(aligned.mean(axis=0))
    return mean.astype(np.float32)


def normalize_eskimez2020(seq: np.ndarray, template: np.ndarray, z_thresh: float = 1.0
                          ) -> tuple[np.ndarray, int]:
    """The 2020 landmark normalisation before PCA: Procrustes alignment of every frame to the
    template, closed-mouth frame, identity removal.

    Args:
        seq: (frames, 68, D) raw landmarks at 25 fps. template: (68, D) standardised template.
    Returns:
        (normalised (frames, 68, D) float32, closed-mouth frame index).
    """
    aligned = procrustes_align(seq, standardize(template))
    ref = closed_mouth_frame(aligned, z_thresh)
    return remove_identity(aligned, aligned[ref], standardize(template)), ref


__all__ = [
    "align_eye_points", "transfer_expression", "prepare_mean_shape", "normalize_eskimez2018",
    "standardize", "procrustes_align", "mouth_width", "inner_lip_gap", "closed_mouth_frame",
    "remove_identity", "generalized_procrustes_mean", "normalize_eskimez2020",
    "similarity_from_two_points", "affine_lstsq", "apply_affine",
]
