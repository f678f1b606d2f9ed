"""The ``"painted"`` style: a simple anti-aliased cartoon face (the Eskimez et al. 2020 demo look).

Built on the drawing core (:mod:`tf_talkface.viz.draw`: checks, fixed-point coordinates, the
face's axes and forehead); conventions there.
"""
from __future__ import annotations

import numpy as np

from tf_talkface.face.topology import (
    INNER_LIP, JAW, LEFT_BROW, LEFT_EYE, NOSE_BRIDGE, NOSTRILS, OUTER_LIP, RIGHT_BROW, RIGHT_EYE)
from tf_talkface.viz.draw import (
    ONE, SHIFT, TEXT_COLOR, blank_image, check_points_px, empty_frame, face_axes, forehead,
    line_width, to_fixed)

__all__ = ["PALETTE", "draw_painted"]

PALETTE: dict[str, tuple[int, int, int]] = {
    "background": (224, 229, 235),
    "neck": (226, 176, 142),
    "skin": (243, 201, 168),
    "skin_line": (196, 140, 110),
    "nose_shade": (226, 176, 142),
    "nostril": (150, 95, 75),
    "brow": (84, 58, 42),
    "eye_white": (250, 250, 248),
    "eye_line": (62, 42, 36),
    "iris": (96, 70, 48),
    "pupil": (18, 14, 14),
    "lips": (200, 92, 100),
    "lip_line": (142, 52, 62),
    "mouth": (62, 16, 26),
    "teeth": (246, 243, 234),
    "text": TEXT_COLOR,
}
"""RGB colours of the ``"painted"`` style (``"background"`` also fills its empty frames)."""


def _chaikin(poly: np.ndarray, iterations: int = 2) -> np.ndarray:
    """Corner-cutting smoothing of a closed (N, 2) polygon."""
    for _ in range(iterations):
        nxt = np.roll(poly, -1, axis=0)
        poly = np.stack([0.75 * poly + 0.25 * nxt, 0.25 * poly + 0.75 * nxt], axis=1).reshape(-1, 2)
    return poly


def _blend_inside(img: np.ndarray, layer: np.ndarray, poly_fx: np.ndarray) -> None:
    """Copy ``layer`` onto ``img`` inside the (anti-aliased) polygon, in place; only the
    polygon's bounding box is touched."""
    import cv2

    h, w = img.shape[:2]
    x0, y0 = np.floor(poly_fx.min(axis=0) / ONE).astype(int) - 2
    x1, y1 = np.ceil(poly_fx.max(axis=0) / ONE).astype(int) + 3
    x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
    if x1 <= x0 or y1 <= y0:
        return
    mask = np.zeros((y1 - y0, x1 - x0), dtype=np.uint8)
    cv2.fillPoly(mask, [poly_fx - np.array([x0, y0]) * ONE], 255, cv2.LINE_AA, SHIFT)
    a = mask[..., None].astype(np.float32) / 255.0
    roi = img[y0:y1, x0:x1]
    roi[:] = (roi * (1.0 - a) + layer[y0:y1, x0:x1] * a + 0.5).astype(np.uint8)


def draw_painted(points_px: np.ndarray, size: tuple[int, int] = (512, 512), *,
                 palette: dict | None = None, teeth: bool = True) -> np.ndarray:
    """The 2020 demo style: a simple anti-aliased "painted" cartoon face.

    Skin-coloured head (jaw line 0-16 closed over a forehead built from the raised brows) on a
    neck, dark tapered eyebrows (17-26), white almond eyes (36-41, 42-47) with an iris and pupil
    at each eye's centre (clipped to the eye), nose bridge line and shaded nostrils (27-35),
    lips (outer lip 48-59) filled in a lip colour and the mouth opening (inner lip 60-67) filled
    dark, with a hint of upper teeth, so the dark area grows as the mouth opens.

    Args:
        points_px: ``(68, 2)`` float pixel coordinates (x right, y down).
        size: ``(width, height)`` in pixels.
        palette: RGB colours overriding entries of :data:`PALETTE`.
        teeth: draw the upper-teeth band inside the mouth opening.

    Returns:
        ``uint8`` ``(H, W, 3)`` RGB image. Points with any NaN give the empty frame with a note.

    Raises:
        ValueError: bad ``points_px`` shape or ``size``.
    """
    import cv2

    pal = dict(PALETTE, **(palette or {}))
    p, size = check_points_px(points_px, size)
    if p is None:
        return empty_frame(size, pal["background"])
    img = blank_image(size, pal["background"])
    aa = cv2.LINE_AA
    unit, right, up = face_axes(p)
    down = -up

    # neck (under the head, continuing off the bottom of the face)
    a, b = p[4] + right * unit * 0.25, p[12] - right * unit * 0.25
    neck = np.stack([a, b, b + down * unit * 2.5, a + down * unit * 2.5])
    cv2.fillPoly(img, [to_fixed(neck)], pal["neck"], aa, SHIFT)

    # ears: ellipses beside jaw points 1-3 / 13-15, half hidden by the head
    ang = float(np.degrees(np.arctan2(right[1], right[0])))
    axes = (int(round(unit * 0.13 * ONE)), int(round(unit * 0.3 * ONE)))
    for i, j, side in ((1, 2, -1.0), (15, 14, 1.0)):
        c = tuple(int(v) for v in to_fixed((p[i] + p[j]) / 2 + side * right * unit * 0.04)[0])
        cv2.ellipse(img, c, axes, ang, 0, 360, pal["neck"], -1, aa, SHIFT)
        cv2.ellipse(img, c, axes, ang, 0, 360, pal["skin_line"], line_width(unit * 0.025), aa, SHIFT)

    # head: convex hull of the jaw line and the forehead, corners smoothed
    head = np.concatenate([p[JAW], forehead(p)])
    hull = cv2.convexHull(head.astype(np.float32)).reshape(-1, 2).astype(np.float64)
    hull = to_fixed(_chaikin(hull, 2))
    cv2.fillPoly(img, [hull], pal["skin"], aa, SHIFT)
    cv2.polylines(img, [hull], True, pal["skin_line"], line_width(unit * 0.025), aa, SHIFT)

    # nose: bridge line, shaded base, nostrils, base line
    cv2.polylines(img, [to_fixed(p[NOSE_BRIDGE[1:]])], False, pal["nose_shade"],
                  line_width(unit * 0.03), aa, SHIFT)
    base = p[np.r_[30, NOSTRILS]]
    cv2.fillPoly(img, [to_fixed(base)], pal["nose_shade"], aa, SHIFT)
    for i in (32, 34):
        c = p[i] + (p[30] - p[i]) * 0.25
        axes = (int(round(unit * 0.055 * ONE)), int(round(unit * 0.03 * ONE)))
        cv2.ellipse(img, tuple(int(v) for v in to_fixed(c)[0]), axes, ang, 0, 360, pal["nostril"],
                    -1, aa, SHIFT)
    cv2.polylines(img, [to_fixed(p[NOSTRILS])], False, pal["skin_line"], line_width(unit * 0.025),
                  aa, SHIFT)

    # eyebrows: tapered bands (thick at the inner end)
    for idx in (RIGHT_BROW[::-1], LEFT_BROW):  # inner end first
        q = p[idx]
        t = unit * np.linspace(0.085, 0.04, len(q)) / 2.0
        poly = np.concatenate([q + up * t[:, None], (q - up * t[:, None])[::-1]])
        cv2.fillPoly(img, [to_fixed(poly)], pal["brow"], aa, SHIFT)

    # eyes: white almond (opening exaggerated x1.3 about the corner line; a closed eye stays
    # closed), iris + pupil clipped to the eye, thin outline with a heavier upper lid
    layer = img.copy()
    eyes = []
    for idx in (RIGHT_EYE, LEFT_EYE):
        q = p[idx]
        mid = (q[0] + q[3]) / 2.0
        q = q + up[None] * (((q - mid) @ up) * 0.3)[:, None]
        e = to_fixed(q)
        eyes.append((q, e))
        cv2.fillPoly(img, [e], pal["eye_white"], aa, SHIFT)
        centre = q.mean(axis=0)
        width = float(np.hypot(*(q[3] - q[0])))
        c = tuple(int(v) for v in to_fixed(centre)[0])
        cv2.circle(layer, c, int(round(width * 0.2 * ONE)), pal["iris"], -1, aa, SHIFT)
        cv2.circle(layer, c, int(round(width * 0.1 * ONE)), pal["pupil"], -1, aa, SHIFT)
        hl = centre + (up - right) * width * 0.06
        cv2.circle(layer, tuple(int(v) for v in to_fixed(hl)[0]), int(round(width * 0.04 * ONE)),
                   pal["eye_white"], -1, aa, SHIFT)
    for q, e in eyes:
        _blend_inside(img, layer, e)
        cv2.polylines(img, [e], True, pal["eye_line"], line_width(unit * 0.012), aa, SHIFT)
        cv2.polylines(img, [to_fixed(q[:4])], False, pal["eye_line"], line_width(unit * 0.024),
                      aa, SHIFT)

    # lips and mouth opening
    outer, inner = to_fixed(p[OUTER_LIP]), to_fixed(p[INNER_LIP])
    cv2.fillPoly(img, [outer], pal["lips"], aa, SHIFT)
    cv2.fillPoly(img, [inner], pal["mouth"], aa, SHIFT)
    if teeth:
        upper = p[INNER_LIP[:5]]  # 60..64, the upper inner lip, left to right in the image
        gap = float(np.hypot(*(p[66] - p[62])))
        depth = min(gap * 0.3, unit * 0.07)
        if depth > 0.5:
            layer = img.copy()
            band = np.concatenate([upper - up * 0.0, (upper + down * depth)[::-1]])
            cv2.fillPoly(layer, [to_fixed(band)], pal["teeth"], aa, SHIFT)
            _blend_inside(img, layer, inner)
    cv2.polylines(img, [outer], True, pal["lip_line"], line_width(unit * 0.015), aa, SHIFT)
    cv2.polylines(img, [inner], True, pal["lip_line"], line_width(unit * 0.022), aa, SHIFT)
    return img
