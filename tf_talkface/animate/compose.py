"""Aligned face crops and pasting a generated crop back into the full photo.

Learned photo generators (ATVGnet's VG-net, DAVS, Wav2Lip, SadTalker) work on a small aligned
face crop and leave the rest of the photo alone. :func:`align_crop` cuts that crop with a
similarity transform; after a generator has redrawn it, :func:`paste_back` puts it into the
full-resolution photo with the inverse transform and a feathered mask, so there is no visible
box (Wav2Lip pastes by a plain resize into the detector box and users see the seam,
Rudrabha/Wav2Lip#410; SadTalker's ``--preprocess full`` uses ``cv2.seamlessClone``, which costs
~9 ms per 512-px patch here and is its known bottleneck, docs/photo_animation.md -- we use a
feathered alpha blend instead, about 1 ms).

Conventions: images ``uint8 (H, W, 3)``, points ``float (68, 2)`` pixel coordinates (x right,
y down, origin at the centre of the top-left pixel); a transform is a float64 ``(2, 3)``
matrix ``T`` with ``crop_xy = T @ [photo_x, photo_y, 1]``.

The crop geometry itself (:func:`align_transform`, :func:`align_crop`, :func:`transform_points`,
ATVGnet's template) lives in :mod:`tf_talkface.face.align`, below the data layer, because
``prepare`` cuts the training crops with it; this module re-exports those names.
"""
from __future__ import annotations

import numpy as np

from tf_talkface.face.align import (EYE_DIST, EYE_LINE, align_crop, align_transform,
                                    transform_points)

__all__ = ["align_transform", "align_crop", "transform_points", "crop_mask", "paste_back",
           "EYE_LINE", "EYE_DIST"]


def crop_mask(size: tuple[int, int], points: np.ndarray | None = None,
              feather: float = 0.08) -> np.ndarray:
    """A feathered blending mask in crop pixels, float32 (h, w) in [0, 1].

    Args:
        size: ``(width, height)`` of the crop.
        points: optional float (68, 2) landmarks in crop pixels: the mask is then the face
            (convex hull of the landmarks with the brows raised by 25% of the face height to
            take in the forehead); ``None``: the whole crop.
        feather: width of the soft edge as a fraction of the crop's shorter side; the mask
            reaches 1 that far inside its shape and 0 at its border (smoothstep), so nothing of
            the crop's edge shows.
    """
    import cv2

    w, h = int(size[0]), int(size[1])
    m = np.zeros((h, w), np.uint8)
    if points is None:
        m[:] = 255
        m[0, :] = m[-1, :] = 0
        m[:, 0] = m[:, -1] = 0
    else:
        p = np.asarray(points, np.float64)
        face_h = float(np.ptp(p[:, 1]))
        top = p[17:27] - np.array([0.0, 0.25 * face_h])
        hull = cv2.convexHull(np.round(np.vstack([p[:17], top]) * 16).astype(np.int32))
        cv2.fillConvexPoly(m, hull, 255, cv2.LINE_AA, 4)
    f = max(1.0, feather * min(w, h))
    d = cv2.distanceTransform((m > 127).astype(np.uint8), cv2.DIST_L2, 5)
    a = np.clip(d / f, 0, 1)
    return (a * a * (3 - 2 * a)).astype(np.float32)


def paste_back(image: np.ndarray, crop: np.ndarray, tform: np.ndarray,
               mask: np.ndarray | None = None, feather: float = 0.08,
               out: np.ndarray | None = None) -> np.ndarray:
    """Put a (generated) aligned crop back into the full photo.

    The crop is mapped into the photo with the inverse of ``tform`` (``cv2.warpAffine`` with
    ``WARP_INVERSE_MAP``, bilinear, only over the crop's bounding box in the photo) and blended
    with a feathered mask warped the same way.

    Args:
        image: ``uint8 (H, W, 3)`` the full photo (or the current frame).
        crop: ``uint8 (h, w, 3)`` the generated crop, aligned with ``tform``.
        tform: float (2, 3) photo -> crop transform from :func:`align_crop`.
        mask: float (h, w) in [0, 1] in crop pixels (:func:`crop_mask`), default
            ``crop_mask((w, h), feather=feather)``.
        feather: see :func:`crop_mask` (used only without ``mask``).
        out: optional ``uint8 (H, W, 3)`` to write into (may be ``image`` itself).

    Returns:
        ``uint8 (H, W, 3)``: ``image`` outside the crop, the crop inside, a soft edge between.

    Raises:
        ValueError: bad shapes, or a singular transform.
    """
    import cv2

    img = np.asarray(image)
    c = np.ascontiguousarray(crop)
    if img.ndim != 3 or img.shape[2] != 3 or c.ndim != 3 or c.shape[2] != 3:
        raise ValueError(f"image and crop must be (H, W, 3), got {img.shape} and {c.shape}")
    t = np.asarray(tform, np.float64)
    if t.shape != (2, 3) or abs(np.linalg.det(t[:, :2])) < 1e-12:
        raise ValueError(f"tform must be an invertible (2, 3) transform, got {t}")
    h, w = c.shape[:2]
    if mask is None:
        mask = crop_mask((w, h), feather=feather)
    mask = np.asarray(mask, np.float32)
    if mask.shape != (h, w):
        raise ValueError(f"mask must be (h, w) = {(h, w)}, got {mask.shape}")
    res = img.copy() if out is None else out
    if out is not None and out is not img:
        np.copyto(res, img)
    inv = cv2.invertAffineTransform(t)
    corners = transform_points(np.array([[-0.5, -0.5], [w - 0.5, -0.5], [w - 0.5, h - 0.5],
                                         [-0.5, h - 0.5]]), inv)
    H, W = img.shape[:2]
    x0, y0 = np.maximum(np.floor(corners.min(axis=0)).astype(int) - 1, 0)
    x1, y1 = np.minimum(np.ceil(corners.max(axis=0)).astype(int) + 2, (W, H))
    if x1 <= x0 or y1 <= y0:
        return res
    m = t.copy()
    m[:, 2] += t[:, :2] @ np.array([x0, y0], np.float64)   # ROI pixel -> crop pixel
    size = (int(x1 - x0), int(y1 - y0))
    flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
    patch = cv2.warpAffine(c, m, size, flags=flags, borderMode=cv2.BORDER_REPLICATE)
    alpha = cv2.warpAffine(mask, m, size, flags=flags, borderMode=cv2.BORDER_CONSTANT,
                           borderValue=0)[:, :, None]
    roi = res[y0:y1, x0:x1]
    roi[:] = np.clip(roi * (1.0 - alpha) + patch * alpha + 0.5, 0, 255).astype(np.uint8)
    return res
