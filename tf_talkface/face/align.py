"""Aligned face crops: similarity fits, the crop of a frame, its temporal smoothing and its
inverse, and ATVGnet's crop template and landmark normalisation.

Conventions: images ``uint8 (H, W, 3)``; points float ``(..., 68, 2)`` pixel coordinates (x
right, y down, origin at the centre of the top-left pixel); a transform is a float64 ``(2, 3)``
matrix ``T = [A | t]`` with ``crop_xy = A @ frame_xy + t`` (crop-from-frame). Its inverse
(:func:`invert_transform`) maps crop pixels back into the frame, which is what
:func:`tf_talkface.animate.compose.paste_back` uses to put a generated crop back.

**ATVGnet crop** (docs ``atvgnet_davs.md`` A3): a 128 x 128 crop whose similarity transform is
the least-squares fit of the frame's dlib points 27-44 (nose 27-35, one eye 36-41, three points
of the other 42-44: :data:`ATVGNET_FIT_POINTS`, the original's choice) onto a fixed template
(:data:`ATVGNET_TEMPLATE`). The original's template ``base_68.npy`` (a 163-px canvas cropped to
``[1:129]``) is not published with usable provenance, so ours is built deterministically by
:func:`place_template` from the Eskimez et al. 2018 mean face
(``reference/eskimez2018/mean_shape.npy``; ``scripts/make_atvgnet_template.py`` rebuilds the
constant and ``tests/test_atvgnet_data.py`` checks it): eyes level, the midpoint of the two eye
centres at x = 64, the eye centres at y = :data:`ATVGNET_EYE_Y` = 46 and the mouth centre (mean
of points 48-67) at y = :data:`ATVGNET_MOUTH_Y` = 95, so the face fills the crop like ATVGnet's
regions (brows to chin, jaw inside the crop; ``docs/results/atvgnet/data_check.png``).

Per video the frame's transforms are smoothed over time (:func:`smooth_transforms`: centred
moving average of the four similarity parameters over :data:`SMOOTH_FRAMES` = 5 frames, window
shortened at the ends), so crops do not jitter with dlib's per-frame noise; the original warps
every frame with its own unsmoothed fit.

**Normalised landmarks** (:func:`crop_to_normalised`): the frame's 68 points mapped into the
crop by the same (smoothed) transform, then a FIXED affine map of the template: minus the
template's centroid, divided by the template's Frobenius norm about it (the unit-norm frame of
the original's Procrustes normalisation), times :data:`LANDMARK_SCALE` = 5 (the original's x5),
flattened x0, y0, x1, y1, ... -> about [-1, 1]. Unlike the original's ``normLmarks`` (each frame
expressed relative to the clip's last frame, which removes identity and, on a single image,
yields the same constant shape for every face; A3.5-6) this keeps identity: the example
landmark must describe the example face the generator sees.
"""
from __future__ import annotations

import numpy as np

__all__ = ["STABLE_POINTS", "EYE_LINE", "EYE_DIST", "ATVGNET_FIT_POINTS", "ATVGNET_SIZE",
           "ATVGNET_EYE_Y", "ATVGNET_MOUTH_Y", "ATVGNET_TEMPLATE", "LANDMARK_SCALE", "SMOOTH_FRAMES",
           "similarity_fit", "transform_points", "invert_transform", "similarity_params",
           "similarity_matrix", "place_template", "align_transform", "warp_crop", "align_crop",
           "smooth_transforms", "crop_transforms", "normaliser", "crop_to_normalised",
           "normalised_to_crop"]

STABLE_POINTS = np.array([27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 39, 42, 45])
"""Points used to fit similarities between model and photo: nose bridge and base, the four eye
corners (not the jaw or the mouth, which move with speech; not the lids, which blink)."""
STABLE_POINTS.flags.writeable = False

EYE_LINE = 0.4
"""Default alignment: eye centres on this fraction of the crop height."""
EYE_DIST = 0.36
"""Default alignment: eye-centre distance as a fraction of the crop width."""

ATVGNET_FIT_POINTS = np.arange(27, 45)
"""The 18 points ATVGnet's ``SimilarityTransform`` is estimated on (27-44)."""
ATVGNET_FIT_POINTS.flags.writeable = False
ATVGNET_SIZE = 128
"""Side of ATVGnet's crop in pixels."""
ATVGNET_EYE_Y = 46.0
"""Row of the template's eye centres in the 128-px crop."""
ATVGNET_MOUTH_Y = 95.0
"""Row of the template's mouth centre (mean of points 48-67) in the 128-px crop."""
LANDMARK_SCALE = 5.0
"""ATVGnet's scale of the unit-norm landmarks (PCA files "computed after x5", A3.7)."""
SMOOTH_FRAMES = 5
"""Frames (at 25 fps) of the centred moving average over the crop's similarity parameters."""

# Built by place_template(<Eskimez 2018 mean face>, 128, 46, 95) (scripts/make_atvgnet_template.py),
# rounded to 1/100 px. Crop pixels, x0, y0, x1, y1, ...
_ATVGNET_TEMPLATE_XY = (
    19.54, 46.52, 20.54, 59.53, 21.56, 72.17, 23.74, 84.84,
    27.09, 96.74, 32.85, 107.91, 40.60, 116.37, 50.36, 124.05,
    62.19, 126.61, 74.48, 124.41, 85.24, 117.45, 94.42, 108.48,
    100.52, 97.49, 104.25, 84.89, 106.39, 71.86, 108.12, 58.84,
    109.54, 45.83, 27.07, 36.10, 32.58, 30.96, 40.44, 30.23,
    48.31, 32.64, 55.40, 35.87, 71.53, 35.72, 79.11, 31.83,
    87.50, 29.20, 95.46, 30.16, 101.32, 35.09, 63.52, 44.24,
    63.38, 52.13, 63.30, 60.04, 62.79, 67.55, 53.61, 74.11,
    57.94, 76.58, 62.69, 77.84, 67.81, 76.69, 72.20, 75.14,
    35.92, 45.85, 41.08, 42.74, 47.41, 42.81, 52.85, 47.21,
    46.92, 48.73, 40.59, 48.66, 74.95, 46.74, 80.54, 42.83,
    86.89, 42.94, 92.00, 45.80, 87.57, 48.89, 81.28, 48.80,
    47.06, 94.20, 52.60, 89.11, 57.77, 86.85, 61.73, 88.10,
    66.48, 87.35, 72.38, 90.22, 78.64, 95.10, 72.22, 101.32,
    66.29, 103.63, 61.52, 103.95, 57.14, 103.50, 51.66, 100.63,
    50.18, 93.84, 58.06, 91.15, 62.03, 91.61, 66.43, 91.68,
    75.48, 95.07, 66.01, 97.74, 61.63, 97.71, 57.67, 97.25,
)
ATVGNET_TEMPLATE = np.array(_ATVGNET_TEMPLATE_XY, np.float64).reshape(68, 2)
"""float64 (68, 2), read-only: ATVGnet's crop template in 128-px crop pixels (module docstring)."""
ATVGNET_TEMPLATE.flags.writeable = False


def similarity_fit(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity (rotation, uniform scale, translation; no reflection) taking the
    points ``src`` (N, 2) onto ``dst`` (N, 2): Umeyama 1991 in closed form (equal to
    ``skimage.transform.SimilarityTransform`` estimated on the same points; tested).

    Returns:
        float64 (2, 3) ``[A | t]`` with ``dst ~ src @ A.T + t``.

    Raises:
        ValueError: the source points coincide.
    """
    s = np.asarray(src, np.float64)
    d = np.asarray(dst, np.float64)
    ms, md = s.mean(axis=0), d.mean(axis=0)
    s0, d0 = s - ms, d - md
    var = float((s0 ** 2).sum())
    if var <= 0:
        raise ValueError("similarity_fit: the source points coincide")
    a = float((s0 * d0).sum()) / var                                  # s cos
    b = float((s0[:, 0] * d0[:, 1] - s0[:, 1] * d0[:, 0]).sum()) / var  # s sin
    lin = np.array([[a, -b], [b, a]])
    return np.hstack([lin, (md - lin @ ms)[:, None]])


def transform_points(points: np.ndarray, tform: np.ndarray) -> np.ndarray:
    """Apply a (2, 3) transform to float (..., 2) points, or a stack of transforms (T, 2, 3)
    frame by frame to (T, N, 2) points; float64."""
    p = np.asarray(points, np.float64)
    t = np.asarray(tform, np.float64)
    if t.ndim == 2:
        return p @ t[:, :2].T + t[:, 2]
    return p @ np.swapaxes(t[..., :2], -1, -2) + t[..., None, :, 2]


def invert_transform(tform: np.ndarray) -> np.ndarray:
    """The inverse of one (2, 3) affine transform or of a stack (..., 2, 3); float64.

    Raises:
        ValueError: a singular transform.
    """
    t = np.asarray(tform, np.float64)
    a = t[..., :2]
    det = a[..., 0, 0] * a[..., 1, 1] - a[..., 0, 1] * a[..., 1, 0]
    if np.any(np.abs(det) < 1e-12):
        raise ValueError("invert_transform: singular transform")
    inv = np.linalg.inv(a)
    return np.concatenate([inv, -(inv @ t[..., 2:])], axis=-1)


def similarity_params(tform: np.ndarray) -> np.ndarray:
    """(..., 2, 3) similarities -> (..., 4) ``(a, b, tx, ty)`` with ``A = [[a, -b], [b, a]]``
    (``a = s cos(theta)``, ``b = s sin(theta)``)."""
    t = np.asarray(tform, np.float64)
    return np.stack([t[..., 0, 0], t[..., 1, 0], t[..., 0, 2], t[..., 1, 2]], axis=-1)


def similarity_matrix(params: np.ndarray) -> np.ndarray:
    """Inverse of :func:`similarity_params`: (..., 4) -> (..., 2, 3) float64."""
    p = np.asarray(params, np.float64)
    a, b, tx, ty = p[..., 0], p[..., 1], p[..., 2], p[..., 3]
    return np.stack([np.stack([a, -b, tx], -1), np.stack([b, a, ty], -1)], axis=-2)


def place_template(shape: np.ndarray, size: int = ATVGNET_SIZE, eye_y: float = ATVGNET_EYE_Y,
                   mouth_y: float = ATVGNET_MOUTH_Y) -> np.ndarray:
    """Place a (68, 2) face shape in a ``size``-px crop by a similarity: eye centres (means of
    36-41 and 42-47) level, their midpoint at x = ``size / 2`` and y = ``eye_y``, the mouth
    centre (mean of 48-67) ``mouth_y - eye_y`` pixels below the eye line.

    Returns:
        float64 (68, 2) in crop pixels.
    """
    p = np.asarray(shape, np.float64).reshape(68, 2)
    e1, e2, mouth = p[36:42].mean(0), p[42:48].mean(0), p[48:68].mean(0)
    mid = (e1 + e2) / 2
    d = e2 - e1
    ang = np.arctan2(d[1], d[0])
    rot = np.array([[np.cos(-ang), -np.sin(-ang)], [np.sin(-ang), np.cos(-ang)]])
    q = (p - mid) @ rot.T                     # eyes level, eye midpoint at the origin
    m = (mouth - mid) @ rot.T
    scale = (mouth_y - eye_y) / m[1]
    return q * scale + np.array([size / 2.0, eye_y])


def align_transform(points: np.ndarray, size: int | tuple[int, int] = 128,
                    template: np.ndarray | None = None,
                    fit_points: np.ndarray | None = None) -> np.ndarray:
    """The frame -> crop similarity of a face.

    Args:
        points: float (68, 2) the face's landmarks in frame pixels.
        size: crop side (int) or ``(width, height)`` in pixels.
        template: optional float (68, 2) landmark positions wanted in the crop (e.g. a
            generator's mean face in its crop pixels, :data:`ATVGNET_TEMPLATE`): least-squares
            similarity (:func:`similarity_fit`) on ``fit_points``. ``None``: the two eye centres
            go to ``(0.5 -+ EYE_DIST / 2) * width, EYE_LINE * height``.
        fit_points: indices of the points fitted with a template (default
            :data:`STABLE_POINTS`: nose and eye corners; ATVGnet: :data:`ATVGNET_FIT_POINTS`).

    Returns:
        float64 (2, 3) crop-from-frame.
    """
    from tf_talkface.face.normalize import similarity_from_two_points

    w, h = (size, size) if np.isscalar(size) else (int(size[0]), int(size[1]))
    p = np.asarray(points, np.float64)
    if template is not None:
        idx = STABLE_POINTS if fit_points is None else np.asarray(fit_points)
        return similarity_fit(p[idx], np.asarray(template, np.float64)[idx])
    src = np.stack([p[36:42].mean(axis=0), p[42:48].mean(axis=0)])
    dst = np.array([[(0.5 - EYE_DIST / 2) * w, EYE_LINE * h], [(0.5 + EYE_DIST / 2) * w, EYE_LINE * h]])
    return similarity_from_two_points(src, dst)


def warp_crop(image: np.ndarray, tform: np.ndarray, size: int | tuple[int, int]) -> np.ndarray:
    """Cut the crop ``tform`` (crop-from-frame) describes out of ``image``.

    Bilinear, border reflected. When the crop is smaller than the face in the frame (scale
    < 1) the frame is first shrunk by that scale with ``cv2.INTER_AREA`` (a box filter), so a
    large frame does not alias; the warp then only rotates and shifts.

    Args:
        image: ``uint8 (H, W, C)`` (or (H, W)).
        tform: float (2, 3) crop-from-frame.
        size: crop side or ``(width, height)``.

    Returns:
        ``uint8 (h, w, C)`` crop.
    """
    import cv2

    w, h = (size, size) if np.isscalar(size) else (int(size[0]), int(size[1]))
    img = np.ascontiguousarray(image)
    t = np.asarray(tform, np.float64)
    scale = float(np.sqrt(abs(np.linalg.det(t[:, :2]))))
    if scale < 0.9:
        H, W = img.shape[:2]
        sw, sh = max(1, int(round(W * scale))), max(1, int(round(H * scale)))
        img = cv2.resize(img, (sw, sh), interpolation=cv2.INTER_AREA)
        # small-image pixel q = (p + 0.5) * (sw / W) - 0.5  (pixel centres)
        fx, fy = sw / W, sh / H
        down = np.array([[fx, 0, 0.5 * fx - 0.5], [0, fy, 0.5 * fy - 0.5]])
        t = t @ np.vstack([invert_transform(down), [0, 0, 1]])
    return cv2.warpAffine(img, t, (w, h), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REFLECT_101)


def align_crop(image: np.ndarray, points: np.ndarray, size: int | tuple[int, int] = 128,
               template: np.ndarray | None = None,
               fit_points: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Cut the aligned face crop a generator works on.

    Args:
        image: ``uint8 (H, W, 3)`` the photo or video frame.
        points, size, template, fit_points: see :func:`align_transform`.

    Returns:
        ``(crop uint8 (h, w, 3), tform float64 (2, 3))`` (:func:`warp_crop`).
    """
    w, h = (size, size) if np.isscalar(size) else (int(size[0]), int(size[1]))
    t = align_transform(points, (w, h), template, fit_points)
    return warp_crop(image, t, (w, h)), t


def smooth_transforms(tforms: np.ndarray, frames: int = SMOOTH_FRAMES) -> np.ndarray:
    """Smooth a sequence of similarities over time.

    Centred moving average of ``(a, b, tx, ty)`` (:func:`similarity_params`) over ``frames``
    frames (``frames // 2`` before and after; at the sequence's ends the window is clipped and
    averages the frames it covers). Averaging the parameters averages, for every point, the
    positions the frames' transforms send it to, so the result is again a similarity.

    Args:
        tforms: float (T, 2, 3) similarities. frames: window length (1 = no smoothing).

    Returns:
        float64 (T, 2, 3).
    """
    p = similarity_params(tforms)
    n = p.shape[0]
    k = max(0, int(frames) // 2)
    if k == 0 or n < 2:
        return similarity_matrix(p)
    c = np.vstack([np.zeros((1, 4)), np.cumsum(p, axis=0)])
    lo = np.maximum(np.arange(n) - k, 0)
    hi = np.minimum(np.arange(n) + k + 1, n)
    return similarity_matrix((c[hi] - c[lo]) / (hi - lo)[:, None])


def crop_transforms(points: np.ndarray, template: np.ndarray | None = None,
                    fit_points: np.ndarray | None = None,
                    smooth: int = SMOOTH_FRAMES) -> np.ndarray:
    """The smoothed crop-from-frame similarity of every frame of a landmark sequence.

    Args:
        points: float (T, 68, 2) frame landmarks (pixels).
        template: crop template (default :data:`ATVGNET_TEMPLATE`).
        fit_points: fitted points (default :data:`ATVGNET_FIT_POINTS`).
        smooth: :func:`smooth_transforms` window (1 = per-frame fits).

    Returns:
        float64 (T, 2, 3).

    Raises:
        ValueError: a frame whose fitted points coincide, or non-finite points.
    """
    pts = np.asarray(points, np.float64)
    if pts.ndim != 3 or pts.shape[1:] != (68, 2) or not np.all(np.isfinite(pts)):
        raise ValueError(f"points must be finite (T, 68, 2), got shape {pts.shape}")
    tmpl = ATVGNET_TEMPLATE if template is None else np.asarray(template, np.float64)
    idx = ATVGNET_FIT_POINTS if fit_points is None else np.asarray(fit_points)
    fits = np.stack([similarity_fit(f[idx], tmpl[idx]) for f in pts])
    return smooth_transforms(fits, smooth)


def normaliser(template: np.ndarray | None = None) -> tuple[np.ndarray, float]:
    """``(centre (2,), scale)`` of the fixed normalisation: the template's centroid and its
    Frobenius norm about it (default template :data:`ATVGNET_TEMPLATE`)."""
    t = ATVGNET_TEMPLATE if template is None else np.asarray(template, np.float64).reshape(68, 2)
    centre = t.mean(axis=0)
    return centre, float(np.linalg.norm(t - centre))


def crop_to_normalised(points: np.ndarray, template: np.ndarray | None = None,
                       landmark_scale: float = LANDMARK_SCALE) -> np.ndarray:
    """Crop-pixel landmarks -> ATVGnet's normalised landmark vectors.

    ``(points - centre) / scale * landmark_scale`` with :func:`normaliser`'s fixed centre and
    scale, flattened point-major.

    Args:
        points: float (..., 68, 2) in crop pixels.

    Returns:
        float32 (..., 136) ``x0, y0, x1, y1, ...``; the template itself has unit norm x 5
        (coordinates within about [-1, 1]).
    """
    centre, scale = normaliser(template)
    p = np.asarray(points, np.float64)
    if p.shape[-2:] != (68, 2):
        raise ValueError(f"points must be (..., 68, 2), got {p.shape}")
    out = (p - centre) / scale * landmark_scale
    return out.reshape(*p.shape[:-2], 136).astype(np.float32)


def normalised_to_crop(vectors: np.ndarray, template: np.ndarray | None = None,
                       landmark_scale: float = LANDMARK_SCALE) -> np.ndarray:
    """Inverse of :func:`crop_to_normalised`: float (..., 136) -> float64 (..., 68, 2) crop
    pixels."""
    centre, scale = normaliser(template)
    v = np.asarray(vectors, np.float64)
    if v.shape[-1] != 136:
        raise ValueError(f"vectors must be (..., 136), got {v.shape}")
    return v.reshape(*v.shape[:-1], 68, 2) / landmark_scale * scale + centre
