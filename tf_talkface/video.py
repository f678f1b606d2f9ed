"""Landmark sequences to videos with sound: 2D drawings (OpenCV), a rotating 3D view (matplotlib),
H.264/AAC mp4 encoding (imageio-ffmpeg's bundled ffmpeg).

Conventions
-----------
* Landmarks: real-valued arrays of shape ``(frames, 68, D)``, ``D`` = 2 (x, y) or 3 (x, y, z), in
  dlib's 68-point order (:mod:`tf_talkface.face.topology`), one frame per 1/25 s
  (:data:`tf_talkface.config.FPS`). Image convention: x to the right, y DOWN (the chin has the
  largest y); for 3D, z points towards the viewer (the nose tip has the largest z). Units are
  arbitrary (video pixels, the 2018 recipe's [0.2, 0.9] box, the 2020 recipe's ~[-0.16, 0.17]):
  every renderer first fits ONE similarity transform (:class:`View`: uniform scale + offset)
  over all frames of the sequence, so motion (the mouth opening, head movement) stays visible.
  A frame with any NaN coordinate (e.g. no face detected) is drawn as a neutral frame with a note.
* Images: ``uint8`` arrays of shape ``(H, W, 3)``, RGB, C-contiguous; sizes are ``(W, H)`` in
  pixels, as in OpenCV and ffmpeg.
* Videos: H.264 (libx264, yuv420p) + AAC in an mp4 at ``fps`` (default 25) frames per second;
  the video lasts exactly ``frames / fps`` seconds and the audio starts at t = 0 (it is never
  cut or padded: an audio track longer than the video simply plays on over the last frame).

Styles (:data:`STYLES`)
-----------------------
``"painted"``  the 2020 demo look: a simple anti-aliased cartoon face (skin, brows, eyes with
               irises, nose, filled lips and a dark mouth opening that grows as the mouth opens).
``"lines"``    the 2018 look: black line drawing of :data:`~tf_talkface.face.topology.EDGES` and
               the 68 points on white, the mouth in red.
``"3d"``       matplotlib 3D wireframe (needs ``D == 3``); the camera sweeps +-30 degrees of
               azimuth sinusoidally with a 4 s period (:func:`azimuth_at`).

Example::

    from tf_talkface.video import render_video, render_side_by_side
    render_video(pred, "pred.mp4", audio="speech.wav")                  # painted, 512x512
    render_side_by_side([("ground truth", gt), ("predicted", pred)], "cmp.mp4",
                        audio=y, sample_rate=8000, frame_numbers=True)  # lines, 2 x 384x384
"""
from __future__ import annotations

import math
import numbers
import os
import secrets
import tempfile
from dataclasses import dataclass
from itertools import chain
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np

from tf_talkface.atomic import atomic_output

from tf_talkface.config import FPS
from tf_talkface.face.topology import (
    EDGES, INNER_LIP, JAW, LEFT_BROW, LEFT_EYE, MOUTH, N_POINTS, NOSE_BRIDGE, NOSTRILS, OUTER_LIP,
    RIGHT_BROW, RIGHT_EYE)

__all__ = [
    "STYLES", "PALETTE", "View", "fit_view", "draw_lines", "draw_painted", "draw_3d", "azimuth_at",
    "render_frames", "write_video", "render_video", "render_side_by_side", "save_frame_png",
]

STYLES = ("painted", "lines", "3d")
"""Valid values of every ``style`` argument."""

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
    "text": (90, 90, 90),
}
"""RGB colours of the ``"painted"`` style (``"background"`` also fills its empty frames)."""

LINES_BACKGROUND = (255, 255, 255)
LINES_COLOR = (0, 0, 0)
LINES_MOUTH_COLOR = (220, 30, 30)

AZIMUTH_AMPLITUDE_DEG = 30.0
"""Half-range of the ``"3d"`` style's camera sweep, degrees."""
AZIMUTH_PERIOD_S = 4.0
"""Period of the ``"3d"`` style's camera sweep, seconds."""
ELEVATION_DEG = 10.0
"""Camera elevation of the ``"3d"`` style, degrees."""

_SHIFT = 4  # OpenCV fixed-point sub-pixel bits: coordinates are passed as round(x * 16)
_ONE = 1 << _SHIFT
_AAC_RATES = (7350, 8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000, 64000, 88200, 96000)
_FONT = None  # set lazily to cv2.FONT_HERSHEY_SIMPLEX


def _cv2():
    import cv2

    global _FONT
    _FONT = cv2.FONT_HERSHEY_SIMPLEX
    return cv2


# ----------------------------------------------------------------------------- validation


def _check_style(style: str) -> str:
    if style not in STYLES:
        raise ValueError(f"unknown style {style!r}; valid styles: {', '.join(STYLES)}")
    return style


def _check_size(size) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in size)
    except (TypeError, ValueError):
        raise ValueError(f"size must be (width, height) in pixels, got {size!r}") from None
    if (w, h) != tuple(size) or w < 16 or h < 16:
        raise ValueError(f"size must be two integers >= 16 (width, height in pixels), got {size!r}")
    return w, h


def _check_landmarks(landmarks, name: str = "landmarks") -> np.ndarray:
    """Validate a ``(F, 68, D)`` array (D in {2, 3}, F >= 1) and return it as float64."""
    a = np.asarray(landmarks)
    if a.ndim != 3 or a.shape[1] != N_POINTS or a.shape[2] not in (2, 3):
        raise ValueError(
            f"{name} must have shape (frames, {N_POINTS}, D) with D = 2 or 3, got {a.shape}")
    if a.shape[0] == 0:
        raise ValueError(f"{name} has 0 frames; need at least one")
    if not np.issubdtype(a.dtype, np.number) or np.issubdtype(a.dtype, np.complexfloating):
        raise ValueError(f"{name} must be real numbers, got dtype {a.dtype}")
    return a.astype(np.float64, copy=False)


def _valid_frames(a: np.ndarray) -> np.ndarray:
    """Boolean (F,): frames whose every coordinate is finite."""
    return np.all(np.isfinite(a.reshape(a.shape[0], -1)), axis=1)


# ----------------------------------------------------------------------------------- view


@dataclass(frozen=True)
class View:
    """One similarity transform from landmark units to pixels: ``px = scale * (x, y) + offset``.

    Attributes:
        scale: pixels per landmark unit (float > 0), the same for x and y.
        offset: ``(ox, oy)`` in pixels.
        size: ``(width, height)`` of the image in pixels.
    """

    scale: float
    offset: tuple[float, float]
    size: tuple[int, int]

    def to_pixels(self, points: np.ndarray) -> np.ndarray:
        """Map ``(..., D)`` landmarks (x, y used; z ignored) to float64 ``(..., 2)`` pixel
        coordinates (x right, y down; sub-pixel, not rounded). NaN stays NaN."""
        p = np.asarray(points, dtype=np.float64)
        if p.ndim < 1 or p.shape[-1] < 2:
            raise ValueError(f"points must have a last axis of size >= 2, got shape {p.shape}")
        return p[..., :2] * self.scale + np.asarray(self.offset, dtype=np.float64)


def fit_view(sequences, size: tuple[int, int] = (512, 512), margin: float = 0.1,
             style: str | None = None) -> View:
    """Fit one :class:`View` that shows every point of every frame of every sequence.

    The bounding box of all finite x, y coordinates (frames containing a NaN are ignored) is
    scaled uniformly to fill ``(1 - 2 * margin)`` of the limiting image dimension and centred.

    Args:
        sequences: one array or a list of arrays of shape ``(F, 68, D)`` (or ``(68, D)``), any
            units; D >= 2, only x and y are used.
        size: ``(width, height)`` of the image in pixels.
        margin: empty border on each side as a fraction of the width / height, in [0, 0.5).
        style: ``"painted"`` also fits the forehead that style draws above the brows (what
            :func:`render_frames` does for it); ``None`` or another style: the points only.

    Returns:
        the :class:`View`.

    Raises:
        ValueError: bad shapes or margin, or no frame without NaN in any sequence.
    """
    w, h = _check_size(size)
    if not 0.0 <= float(margin) < 0.5:
        raise ValueError(f"margin must be in [0, 0.5), got {margin!r}")
    if isinstance(sequences, np.ndarray):
        sequences = [sequences]
    if style is not None and _check_style(style) == "painted":
        sequences = [_fit_points(_check_landmarks(np.asarray(s)[None] if np.ndim(s) == 2 else s,
                                                  f"sequence {k}"), style)
                     for k, s in enumerate(sequences)]
    chunks = []
    for k, s in enumerate(sequences):
        a = np.asarray(s, dtype=np.float64)
        if a.ndim == 2:
            a = a[None]
        if a.ndim != 3 or a.shape[-1] < 2:
            raise ValueError(f"sequence {k} must have shape (frames, points, D>=2), got {a.shape}")
        a = a.reshape(a.shape[0], -1, a.shape[-1])[..., :2]
        chunks.append(a[np.all(np.isfinite(a.reshape(a.shape[0], -1)), axis=1)].reshape(-1, 2))
    pts = np.concatenate(chunks) if chunks else np.zeros((0, 2))
    if len(pts) == 0:
        raise ValueError("cannot fit a view: no frame without NaN in the landmark sequence(s)")
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    extent = hi - lo
    avail = np.array([w, h], dtype=np.float64) * (1.0 - 2.0 * float(margin))
    ratios = [avail[i] / extent[i] for i in range(2) if extent[i] > 1e-12]
    scale = float(min(ratios)) if ratios else 1.0
    centre = (lo + hi) / 2.0
    offset = np.array([w / 2.0, h / 2.0]) - scale * centre
    return View(scale=scale, offset=(float(offset[0]), float(offset[1])), size=(w, h))


# --------------------------------------------------------------------------- 2D drawing


def _fx(points: np.ndarray) -> np.ndarray:
    """Float pixel coordinates -> OpenCV fixed-point int32 (N, 2) (use with shift=_SHIFT)."""
    return np.round(np.asarray(points, dtype=np.float64) * _ONE).astype(np.int32).reshape(-1, 2)


def _thick(x: float) -> int:
    return max(1, int(round(x)))


def _canvas(size, color) -> np.ndarray:
    w, h = size
    img = np.empty((h, w, 3), dtype=np.uint8)
    img[:] = color
    return img


def _put_text_centred(img: np.ndarray, text: str, y: float, color, max_scale: float = 0.9,
                      thickness: int | None = None) -> None:
    """Draw one line of ASCII ``text`` centred horizontally with its vertical centre at ``y``,
    shrinking it to fit the width."""
    cv2 = _cv2()
    h, w = img.shape[:2]
    text = text.encode("ascii", "replace").decode("ascii")
    scale = max_scale * min(w, h) / 512.0 * 1.4
    th = thickness or max(1, int(round(min(w, h) / 300)))
    (tw, tht), _ = cv2.getTextSize(text, _FONT, scale, th)
    if tw > w - 8:
        scale *= (w - 8) / tw
        (tw, tht), _ = cv2.getTextSize(text, _FONT, scale, th)
    org = (int(round((w - tw) / 2)), int(round(y + tht / 2)))
    cv2.putText(img, text, org, _FONT, scale, color, th, cv2.LINE_AA)


def _empty_frame(size, background, note: str = "no landmarks (NaN)") -> np.ndarray:
    img = _canvas(size, background)
    _put_text_centred(img, note, size[1] / 2, PALETTE["text"], max_scale=0.6)
    return img


def _check_points_px(points_px, size) -> tuple[np.ndarray | None, tuple[int, int]]:
    size = _check_size(size)
    p = np.asarray(points_px, dtype=np.float64)
    if p.shape[0] != N_POINTS or p.ndim != 2 or p.shape[1] < 2:
        raise ValueError(f"points_px must have shape ({N_POINTS}, 2), got {p.shape}")
    p = p[:, :2]
    return (p if np.all(np.isfinite(p)) else None), size


def draw_lines(points_px: np.ndarray, size: tuple[int, int] = (512, 512), *,
               color=LINES_COLOR, mouth_color=LINES_MOUTH_COLOR, background=LINES_BACKGROUND,
               thickness: int | None = None, point_radius: float | None = None,
               image: np.ndarray | None = None) -> np.ndarray:
    """The Eskimez et al. 2018 drawing: the face's :data:`EDGES` and its 68 points, anti-aliased.

    Args:
        points_px: ``(68, 2)`` float pixel coordinates (x right, y down), e.g. from
            :meth:`View.to_pixels`; sub-pixel positions are kept.
        size: ``(width, height)`` in pixels.
        color / mouth_color / background: RGB; the mouth's edges and points (48-67) use
            ``mouth_color`` (red by default), everything else ``color`` (black) on ``background``
            (white).
        thickness: line width in pixels (default ``min(size) / 256``, at least 1).
        point_radius: radius of the point dots in pixels (default ``min(size) / 160``, >= 1.5).
        image: optional ``uint8`` ``(H, W, 3)`` RGB picture (e.g. a video frame) to draw on
            instead of the plain ``background``; it is copied, never modified, and its own size
            replaces ``size``. Points with any NaN then give the unchanged copy.

    Returns:
        ``uint8`` ``(H, W, 3)`` RGB image. Points with any NaN give the empty frame with a note.

    Raises:
        ValueError: bad ``points_px`` shape, ``size`` or ``image``.
    """
    cv2 = _cv2()
    if image is not None:
        image = np.asarray(image)
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"image must be a uint8 (H, W, 3) RGB array, got {image.shape} "
                             f"{image.dtype}")
        size = (image.shape[1], image.shape[0])
    p, size = _check_points_px(points_px, size)
    if p is None:
        return np.array(image, order="C") if image is not None else _empty_frame(size, background)
    img = np.array(image, order="C") if image is not None else _canvas(size, background)
    m = min(size)
    lw = thickness or _thick(m / 256)
    r = point_radius if point_radius is not None else max(1.5, m / 160)
    mouth = set(int(i) for i in MOUTH)
    face_segs = [_fx(p[[i, j]]) for i, j in EDGES if not (i in mouth and j in mouth)]
    mouth_segs = [_fx(p[[i, j]]) for i, j in EDGES if i in mouth and j in mouth]
    cv2.polylines(img, face_segs, False, color, lw, cv2.LINE_AA, _SHIFT)
    cv2.polylines(img, mouth_segs, False, mouth_color, lw, cv2.LINE_AA, _SHIFT)
    rr = int(round(r * _ONE))
    for i, c in enumerate(_fx(p)):
        cv2.circle(img, (int(c[0]), int(c[1])), rr, mouth_color if i in mouth else color, -1,
                   cv2.LINE_AA, _SHIFT)
    return img


def _face_frame(p: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """(unit, right, up) of a face in pixels: unit = outer eye-corner distance, right = unit
    vector from eye corner 36 to 45, up = unit vector towards the brows (image y is down)."""
    d = p[45] - p[36]
    unit = float(np.hypot(*d))
    if unit < 1e-6:
        span = p.max(axis=0) - p.min(axis=0)
        unit = max(float(span.max()) * 0.45, 1e-9)
        right = np.array([1.0, 0.0])
    else:
        right = d / unit
    up = np.array([right[1], -right[0]])
    return unit, right, up


def _forehead(p: np.ndarray, n: int = 24) -> np.ndarray:
    """(n + 10, 2) points closing the face over the brows (same units as ``p``): a
    super-elliptic arc from jaw end 16 over the top to jaw end 0, rising 0.6 eye-corner
    distances above the highest brow point, plus the brow points raised by 0.15 of that
    distance (so the arc never cuts the brows). Similarity-invariant."""
    unit, _, up = _face_frame(p)
    c = (p[0] + p[16]) / 2.0
    half = (p[16] - p[0]) / 2.0
    brows = p[np.r_[RIGHT_BROW, LEFT_BROW]]
    top = float(((brows - c) @ up).max()) + 0.6 * unit
    t = np.linspace(0.0, np.pi, n)
    cx, sy = np.cos(t), np.sin(t)
    e = 2.0 / 2.6  # super-ellipse exponent 2.6: a fuller forehead than an ellipse
    arc = (c[None] + (np.sign(cx) * np.abs(cx) ** e)[:, None] * half[None]
           + (np.abs(sy) ** e * top)[:, None] * up[None])
    return np.concatenate([arc, brows + up[None] * 0.15 * unit])


def _chaikin(poly: np.ndarray, iterations: int = 2) -> np.ndarray:
    """Corner-cutting smoothing of a closed (N, 2) polygon."""
    for _ in range(iterations):
        nxt = np.roll(poly, -1, axis=0)
        poly = np.stack([0.75 * poly + 0.25 * nxt, 0.25 * poly + 0.75 * nxt], axis=1).reshape(-1, 2)
    return poly


def _painted_extent_points(p: np.ndarray) -> np.ndarray:
    """All pixel/landmark-unit points the painted face covers (landmarks + forehead); the
    forehead construction is similarity-invariant, so it can be computed in landmark units."""
    return np.concatenate([p[:, :2], _forehead(p[:, :2])])


def _blend_inside(img: np.ndarray, layer: np.ndarray, poly_fx: np.ndarray) -> None:
    """Copy ``layer`` onto ``img`` inside the (anti-aliased) polygon, in place; only the
    polygon's bounding box is touched."""
    cv2 = _cv2()
    h, w = img.shape[:2]
    x0, y0 = np.floor(poly_fx.min(axis=0) / _ONE).astype(int) - 2
    x1, y1 = np.ceil(poly_fx.max(axis=0) / _ONE).astype(int) + 3
    x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
    if x1 <= x0 or y1 <= y0:
        return
    mask = np.zeros((y1 - y0, x1 - x0), dtype=np.uint8)
    cv2.fillPoly(mask, [poly_fx - np.array([x0, y0]) * _ONE], 255, cv2.LINE_AA, _SHIFT)
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
    cv2 = _cv2()
    pal = dict(PALETTE, **(palette or {}))
    p, size = _check_points_px(points_px, size)
    if p is None:
        return _empty_frame(size, pal["background"])
    img = _canvas(size, pal["background"])
    aa = cv2.LINE_AA
    unit, right, up = _face_frame(p)
    down = -up

    # neck (under the head, continuing off the bottom of the face)
    a, b = p[4] + right * unit * 0.25, p[12] - right * unit * 0.25
    neck = np.stack([a, b, b + down * unit * 2.5, a + down * unit * 2.5])
    cv2.fillPoly(img, [_fx(neck)], pal["neck"], aa, _SHIFT)

    # ears: ellipses beside jaw points 1-3 / 13-15, half hidden by the head
    ang = float(np.degrees(np.arctan2(right[1], right[0])))
    axes = (int(round(unit * 0.13 * _ONE)), int(round(unit * 0.3 * _ONE)))
    for i, j, side in ((1, 2, -1.0), (15, 14, 1.0)):
        c = tuple(int(v) for v in _fx((p[i] + p[j]) / 2 + side * right * unit * 0.04)[0])
        cv2.ellipse(img, c, axes, ang, 0, 360, pal["neck"], -1, aa, _SHIFT)
        cv2.ellipse(img, c, axes, ang, 0, 360, pal["skin_line"], _thick(unit * 0.025), aa, _SHIFT)

    # head: convex hull of the jaw line and the forehead, corners smoothed
    head = np.concatenate([p[JAW], _forehead(p)])
    hull = cv2.convexHull(head.astype(np.float32)).reshape(-1, 2).astype(np.float64)
    hull = _fx(_chaikin(hull, 2))
    cv2.fillPoly(img, [hull], pal["skin"], aa, _SHIFT)
    cv2.polylines(img, [hull], True, pal["skin_line"], _thick(unit * 0.025), aa, _SHIFT)

    # nose: bridge line, shaded base, nostrils, base line
    cv2.polylines(img, [_fx(p[NOSE_BRIDGE[1:]])], False, pal["nose_shade"], _thick(unit * 0.03),
                  aa, _SHIFT)
    base = p[np.r_[30, NOSTRILS]]
    cv2.fillPoly(img, [_fx(base)], pal["nose_shade"], aa, _SHIFT)
    for i in (32, 34):
        c = p[i] + (p[30] - p[i]) * 0.25
        axes = (int(round(unit * 0.055 * _ONE)), int(round(unit * 0.03 * _ONE)))
        cv2.ellipse(img, tuple(int(v) for v in _fx(c)[0]), axes, ang, 0, 360, pal["nostril"], -1,
                    aa, _SHIFT)
    cv2.polylines(img, [_fx(p[NOSTRILS])], False, pal["skin_line"], _thick(unit * 0.025), aa,
                  _SHIFT)

    # eyebrows: tapered bands (thick at the inner end)
    for idx in (RIGHT_BROW[::-1], LEFT_BROW):  # inner end first
        q = p[idx]
        t = unit * np.linspace(0.085, 0.04, len(q)) / 2.0
        poly = np.concatenate([q + up * t[:, None], (q - up * t[:, None])[::-1]])
        cv2.fillPoly(img, [_fx(poly)], pal["brow"], aa, _SHIFT)

    # eyes: white almond (opening exaggerated x1.3 about the corner line; a closed eye stays
    # closed), iris + pupil clipped to the eye, thin outline with a heavier upper lid
    layer = img.copy()
    eyes = []
    for idx in (RIGHT_EYE, LEFT_EYE):
        q = p[idx]
        mid = (q[0] + q[3]) / 2.0
        q = q + up[None] * (((q - mid) @ up) * 0.3)[:, None]
        e = _fx(q)
        eyes.append((q, e))
        cv2.fillPoly(img, [e], pal["eye_white"], aa, _SHIFT)
        centre = q.mean(axis=0)
        width = float(np.hypot(*(q[3] - q[0])))
        c = tuple(int(v) for v in _fx(centre)[0])
        cv2.circle(layer, c, int(round(width * 0.2 * _ONE)), pal["iris"], -1, aa, _SHIFT)
        cv2.circle(layer, c, int(round(width * 0.1 * _ONE)), pal["pupil"], -1, aa, _SHIFT)
        hl = centre + (up - right) * width * 0.06
        cv2.circle(layer, tuple(int(v) for v in _fx(hl)[0]), int(round(width * 0.04 * _ONE)),
                   pal["eye_white"], -1, aa, _SHIFT)
    for q, e in eyes:
        _blend_inside(img, layer, e)
        cv2.polylines(img, [e], True, pal["eye_line"], _thick(unit * 0.012), aa, _SHIFT)
        cv2.polylines(img, [_fx(q[:4])], False, pal["eye_line"], _thick(unit * 0.024), aa, _SHIFT)

    # lips and mouth opening
    outer, inner = _fx(p[OUTER_LIP]), _fx(p[INNER_LIP])
    cv2.fillPoly(img, [outer], pal["lips"], aa, _SHIFT)
    cv2.fillPoly(img, [inner], pal["mouth"], aa, _SHIFT)
    if teeth:
        upper = p[INNER_LIP[:5]]  # 60..64, the upper inner lip, left to right in the image
        gap = float(np.hypot(*(p[66] - p[62])))
        depth = min(gap * 0.3, unit * 0.07)
        if depth > 0.5:
            layer = img.copy()
            band = np.concatenate([upper - up * 0.0, (upper + down * depth)[::-1]])
            cv2.fillPoly(layer, [_fx(band)], pal["teeth"], aa, _SHIFT)
            _blend_inside(img, layer, inner)
    cv2.polylines(img, [outer], True, pal["lip_line"], _thick(unit * 0.015), aa, _SHIFT)
    cv2.polylines(img, [inner], True, pal["lip_line"], _thick(unit * 0.022), aa, _SHIFT)
    return img


# --------------------------------------------------------------------------------- 3D view


def azimuth_at(frame_index: float, fps: float = FPS) -> float:
    """Camera azimuth of the ``"3d"`` style at a frame, in degrees (0 = frontal):
    ``AZIMUTH_AMPLITUDE_DEG * sin(2 pi t / AZIMUTH_PERIOD_S)`` with ``t = frame_index / fps`` s."""
    t = float(frame_index) / float(fps)
    return AZIMUTH_AMPLITUDE_DEG * math.sin(2.0 * math.pi * t / AZIMUTH_PERIOD_S)


def _fit_box3d(sequences: Sequence[np.ndarray], margin: float = 0.05):
    """Cubic axis limits ``((x0, x1), (y0, y1), (z0, z1))`` around all finite points."""
    pts = np.concatenate([a[_valid_frames(a)].reshape(-1, 3) for a in sequences])
    if len(pts) == 0:
        return ((-1.0, 1.0),) * 3
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    c = (lo + hi) / 2.0
    half = max(float((hi - lo).max()) / 2.0, 1e-9) * (1.0 + 2.0 * margin)
    return tuple((float(ci - half), float(ci + half)) for ci in c)


class _Canvas3D:
    """One matplotlib figure (Agg, no pyplot) reused for every 3D frame of one size."""

    def __init__(self, size: tuple[int, int]):
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        self.size = size
        w, h = size
        dpi = 100
        self.fig = Figure(figsize=(w / dpi, h / dpi), dpi=dpi, facecolor="white")
        self.canvas = FigureCanvasAgg(self.fig)
        ax = self.fig.add_axes([0, 0, 1, 1], projection="3d")
        ax.set_axis_off()
        ax.set_box_aspect((1, 1, 1), zoom=1.25)
        ax.set_proj_type("ortho")
        m = min(size) / 512.0
        (self.face,) = ax.plot([], [], [], "-", color="black", lw=1.4 * m)
        (self.mouth,) = ax.plot([], [], [], "-", color=np.array(LINES_MOUTH_COLOR) / 255, lw=1.6 * m)
        (self.pts,) = ax.plot([], [], [], "o", color="#1f4e9c", ms=2.6 * m, mec="none")
        self.ax = ax
        mouth = set(int(i) for i in MOUTH)
        self.face_edges = [(i, j) for i, j in EDGES if not (i in mouth and j in mouth)]
        self.mouth_edges = [(i, j) for i, j in EDGES if i in mouth and j in mouth]

    @staticmethod
    def _polyline(q: np.ndarray, edges) -> np.ndarray:
        """Segments joined by NaN rows (matplotlib breaks a line at NaN)."""
        out = np.full((3 * len(edges), 3), np.nan)
        for k, (i, j) in enumerate(edges):
            out[3 * k] = q[i]
            out[3 * k + 1] = q[j]
        return out

    def draw(self, points: np.ndarray, azimuth_deg: float, limits, elevation_deg: float) -> np.ndarray:
        # data (x right, y down, z to viewer) -> matplotlib (X = x, Y = -z, Z = -y), so the face
        # is upright and faces the camera at azimuth -90 (matplotlib's frontal view of XZ)
        q = np.stack([points[:, 0], -points[:, 2], -points[:, 1]], axis=1)
        for line, edges in ((self.face, self.face_edges), (self.mouth, self.mouth_edges)):
            s = self._polyline(q, edges)
            line.set_data_3d(s[:, 0], s[:, 1], s[:, 2])
        self.pts.set_data_3d(q[:, 0], q[:, 1], q[:, 2])
        (x0, x1), (y0, y1), (z0, z1) = limits
        self.ax.set_xlim(x0, x1)
        self.ax.set_ylim(-z1, -z0)
        self.ax.set_zlim(-y1, -y0)
        self.ax.view_init(elev=elevation_deg, azim=-90.0 + float(azimuth_deg))
        self.canvas.draw()
        img = np.array(np.asarray(self.canvas.buffer_rgba())[..., :3], dtype=np.uint8)  # a copy
        if img.shape[:2] != (self.size[1], self.size[0]):
            img = _cv2().resize(img, self.size, interpolation=_cv2().INTER_AREA)
        return img


_CANVASES: dict[tuple[int, int], _Canvas3D] = {}


def _canvas3d(size: tuple[int, int]) -> _Canvas3D:
    c = _CANVASES.get(size)
    if c is None:
        if len(_CANVASES) >= 4:
            _CANVASES.clear()
        c = _CANVASES[size] = _Canvas3D(size)
    return c


def draw_3d(points: np.ndarray, azimuth_deg: float = 0.0, size: tuple[int, int] = (512, 512), *,
            limits=None, elevation_deg: float = ELEVATION_DEG) -> np.ndarray:
    """Matplotlib 3D wireframe of one 3D face: the 68 points and :data:`EDGES` (mouth in red).

    One matplotlib figure per ``size`` is created once and reused (not thread-safe).

    Args:
        points: ``(68, 3)`` landmarks (x right, y down, z towards the viewer), any units.
        azimuth_deg: camera rotation about the vertical axis in degrees; 0 = frontal.
        size: ``(width, height)`` in pixels.
        limits: ``((x0, x1), (y0, y1), (z0, z1))`` axis limits in landmark units; default: a
            cube around these points. Pass the same limits for every frame of a video (as
            :func:`render_frames` does) so the scale does not change between frames.
        elevation_deg: camera elevation in degrees.

    Returns:
        ``uint8`` ``(H, W, 3)`` RGB image (white background). NaN points give the empty frame.

    Raises:
        ValueError: ``points`` is not ``(68, 3)`` (a 2D ``(68, 2)`` shape has no 3D view).
    """
    size = _check_size(size)
    p = np.asarray(points, dtype=np.float64)
    if p.shape != (N_POINTS, 3):
        raise ValueError(
            f"the 3d style needs 3D landmarks of shape ({N_POINTS}, 3) per frame (D = 3), got "
            f"{p.shape}; use style 'painted' or 'lines' for 2D landmarks")
    if not np.all(np.isfinite(p)):
        return _empty_frame(size, LINES_BACKGROUND)
    if limits is None:
        limits = _fit_box3d([p[None]])
    return _canvas3d(size).draw(p, azimuth_deg, limits, elevation_deg)


# ------------------------------------------------------------------------------ rendering


def _fit_points(a: np.ndarray, style: str) -> np.ndarray:
    """The points (F', N, 2) a style's drawing covers in its drawable frames, for fitting its
    view (the painted face adds its forehead; its neck may run off the image)."""
    if style != "painted":
        return a[..., :2]
    ok = np.flatnonzero(_valid_frames(a))
    if len(ok) == 0:
        return a[:0, :, :2]
    return np.stack([_painted_extent_points(a[f, :, :2]) for f in ok])


def _fit_for(arrays: Sequence[np.ndarray], style: str, size, margin: float = 0.1):
    """View (2D styles) or 3D limits fitted over all frames of all ``arrays``; ``None`` when no
    frame is drawable."""
    if not any(_valid_frames(a).any() for a in arrays):
        return None
    if style == "3d":
        return _fit_box3d(arrays)
    return fit_view(arrays, size, margin, style=style)


def _background(style: str):
    return PALETTE["background"] if style == "painted" else LINES_BACKGROUND


def _draw_frame(p: np.ndarray, style: str, size, fit, index: int, fps: float) -> np.ndarray:
    if fit is None or not np.all(np.isfinite(p)):
        return _empty_frame(size, _background(style))
    if style == "3d":
        return draw_3d(p, azimuth_at(index, fps), size, limits=fit)
    px = fit.to_pixels(p)
    return draw_painted(px, size) if style == "painted" else draw_lines(px, size)


def _render_one(p: np.ndarray, style: str, size, fit, index: int, fps: float, title) -> np.ndarray:
    img = _draw_frame(p, style, size, fit, index, fps)
    if title:
        _put_text_centred(img, title, size[1] * 0.05, (40, 40, 40), max_scale=0.7)
    return img


def _frames(a: np.ndarray, style: str, size, fit, title, fps: float) -> Iterator[np.ndarray]:
    for f in range(a.shape[0]):
        yield _render_one(a[f], style, size, fit, f, fps, title)


def _prepare(landmarks, style: str, size, name: str = "landmarks"):
    a = _check_landmarks(landmarks, name)
    _check_style(style)
    size = _check_size(size)
    if style == "3d" and a.shape[2] != 3:
        raise ValueError(
            f"style '3d' needs 3D landmarks (frames, 68, 3); {name} has shape {a.shape} (D = "
            f"{a.shape[2]}); use style 'painted' or 'lines' for 2D landmarks")
    return a, size


def render_frames(landmarks: np.ndarray, style: str = "painted", size: tuple[int, int] = (512, 512),
                  view: View | None = None, title: str | None = None,
                  fps: float = FPS) -> Iterator[np.ndarray]:
    """Render every frame of a landmark sequence (lazily, one image per landmark frame).

    Args:
        landmarks: ``(F, 68, D)`` real array, D = 2 or 3, any units (see module docstring).
        style: one of :data:`STYLES`.
        size: ``(width, height)`` of each image in pixels.
        view: the 2D :class:`View` to use (its ``size`` must equal ``size``); default
            ``fit_view([landmarks], size, 0.1, style=style)`` over all frames (for
            ``"painted"`` the forehead is included: fit your own view with ``style="painted"``
            too, or the top of the head may be cut off). Ignored by the ``"3d"`` style, which fits fixed cubic axis limits over
            all frames instead.
        title: ASCII text drawn at the top of every frame.
        fps: frames per second, only used for the ``"3d"`` camera sweep (:func:`azimuth_at`).

    Returns:
        iterator of F ``uint8`` ``(H, W, 3)`` RGB images; frames with NaN are neutral frames
        with a note.

    Raises:
        ValueError (at call time, not on iteration): bad shape (not ``(F, 68, D)``, D not in
        {2, 3}, F == 0), unknown style, bad size, or style ``"3d"`` with D != 3.
    """
    a, size = _prepare(landmarks, style, size)
    if view is not None and style != "3d":
        if tuple(view.size) != size:
            raise ValueError(f"view.size {tuple(view.size)} differs from size {size}")
        fit = view
    else:
        fit = _fit_for([a], style, size)
    return _frames(a, style, size, fit, title, fps)


def _temp_name(path: Path, suffix: str) -> str:
    """A fresh hidden temp name beside ``path`` (not created, so the writer creates the file
    with the usual permissions)."""
    return str(path.with_name(f".{path.stem}.{os.getpid()}.{secrets.token_hex(4)}{suffix}"))


def _audio_to_wav(audio, sample_rate, tmpdir: str) -> tuple[str | None, int | None]:
    """Write ``audio`` (path or waveform) as a WAV in ``tmpdir``: (wav path, rate) or (None, None)."""
    from tf_talkface.audio.io import AudioError, load_audio, media_info, write_wav

    if audio is None:
        return None, None
    if isinstance(audio, (str, os.PathLike)):
        info = media_info(audio)
        if not info["has_audio"]:
            raise AudioError(f"{audio}: has no audio stream")
        sr = int(sample_rate) if sample_rate is not None else info["audio_sample_rate"]
        if not sr:
            raise AudioError(f"{audio}: ffmpeg did not report the audio sample rate")
        y = load_audio(audio, sr)
    else:
        if sample_rate is None:
            raise ValueError("sample_rate (Hz) is required when audio is a waveform array")
        if int(sample_rate) != sample_rate or sample_rate <= 0:
            raise ValueError(f"sample_rate must be a positive integer (Hz), got {sample_rate!r}")
        sr = int(sample_rate)
        y = np.asarray(audio)
        if y.ndim not in (1, 2) or y.shape[0] == 0:
            raise ValueError(
                f"audio waveform must have shape (samples,) or (samples, channels) with "
                f"samples > 0, got {y.shape}")
        if not np.issubdtype(y.dtype, np.number) or np.issubdtype(y.dtype, np.complexfloating):
            raise ValueError(f"audio waveform must be real numbers, got dtype {y.dtype}")
        if np.issubdtype(y.dtype, np.floating):
            if not np.all(np.isfinite(y)):
                raise ValueError("audio waveform contains NaN or Inf")
            y = np.clip(y, -1.0, 1.0).astype(np.float32)
    wav = os.path.join(tmpdir, "audio.wav")
    write_wav(wav, y, sr)
    return wav, sr


def write_video(path: str | os.PathLike, frames: Iterable[np.ndarray], fps: float = FPS,
                audio=None, sample_rate: int | None = None, n_frames: int | None = None,
                progress: bool = False) -> Path:
    """Encode RGB frames (and optionally a sound track) into an H.264/AAC mp4, atomically.

    The video is libx264 yuv420p at ``fps`` frames per second: it lasts ``len(frames) / fps``
    seconds and every frame is kept. Odd widths/heights are padded by one pixel (edge copy) to
    even, as yuv420p needs. The audio is decoded/written to a temporary mono-or-more-channel
    WAV that starts at t = 0 and is encoded as AAC (at the next AAC rate if its rate is not one);
    it is not cut or padded (no ``-shortest``), so the container lasts as long as the longer of
    the two streams.

    The file is written to a temporary ``.<name>.<random>.tmp.mp4`` in the destination folder
    and moved over ``path`` with ``os.replace`` only when complete and probed; on any error
    (including an exception raised by ``frames``) no file is left at ``path`` (an existing one
    is untouched) and the temporary files are removed.

    Args:
        path: destination, must end in ``.mp4``; parent folders are created.
        frames: iterable of ``uint8`` ``(H, W, 3)`` RGB images, all the same shape.
        fps: frames per second (25 = :data:`tf_talkface.config.FPS`).
        audio: ``None``, a path to any audio or video file ffmpeg reads (its first audio stream,
            mixed down to mono; decoded at ``sample_rate`` Hz if given, else its own rate), or a
            waveform array ``(samples,)`` (or ``(samples, channels)``), float in [-1, 1] (clipped)
            or integer PCM, at ``sample_rate`` Hz.
        sample_rate: Hz; required with a waveform.
        n_frames: number of frames, only for the progress bar's total.
        progress: show a tqdm progress bar (frames).

    Returns:
        ``Path(path)``.

    Raises:
        ValueError: bad path suffix, fps, frames (none, wrong dtype/shape, changing shape) or
            waveform/sample_rate.
        tf_talkface.audio.io.AudioError: the audio file is missing, unreadable or has no audio.
        RuntimeError: ffmpeg did not produce a readable mp4.
    """
    import imageio_ffmpeg
    from tqdm import tqdm

    from tf_talkface.audio.io import AudioError, media_info

    path = Path(path)
    if path.suffix.lower() != ".mp4":
        raise ValueError(f"{path}: the video path must end in .mp4")
    if not (isinstance(fps, numbers.Real) and math.isfinite(fps) and fps > 0):
        raise ValueError(f"fps must be a positive number, got {fps!r}")
    fps = int(fps) if float(fps).is_integer() else float(fps)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temp_name(path, ".tmp.mp4")
    writer = None
    count = 0
    try:
        with tempfile.TemporaryDirectory(prefix="tf_talkface_video_") as tmpdir:
            wav, sr = _audio_to_wav(audio, sample_rate, tmpdir)
            it = iter(frames)
            first = next(it, None)
            if first is None:
                raise ValueError("write_video got no frames")
            shape = np.shape(first)
            if len(shape) != 3 or shape[2] != 3 or shape[0] < 1 or shape[1] < 1:
                raise ValueError(f"frames must be uint8 (H, W, 3) RGB images, got shape {shape}")
            h, w = shape[:2]
            pad_h, pad_w = h % 2, w % 2
            output_params = ["-movflags", "+faststart"]
            if sr is not None and sr not in _AAC_RATES:
                output_params += ["-ar", str(min([r for r in _AAC_RATES if r >= sr] or [96000]))]
            writer = imageio_ffmpeg.write_frames(
                tmp, (w + pad_w, h + pad_h), fps=fps, codec="libx264", pix_fmt_out="yuv420p",
                quality=7, macro_block_size=2, ffmpeg_log_level="error",
                output_params=output_params, audio_path=wav,
                audio_codec="aac" if wav else None)
            writer.send(None)
            bar = tqdm(chain([first], it), total=n_frames, unit="frame", desc=path.name,
                       disable=not progress, leave=False)
            for frame in bar:
                frame = np.asarray(frame)
                if frame.shape != shape or frame.dtype != np.uint8:
                    raise ValueError(
                        f"frame {count} has shape {frame.shape} and dtype {frame.dtype}; all "
                        f"frames must be uint8 with the first frame's shape {shape}")
                if pad_h or pad_w:
                    frame = np.pad(frame, ((0, pad_h), (0, pad_w), (0, 0)), mode="edge")
                writer.send(np.ascontiguousarray(frame))
                count += 1
            writer.close()
            writer = None
        try:
            info = media_info(tmp)
        except AudioError as e:
            raise RuntimeError(f"{path}: ffmpeg did not produce a readable mp4 ({e})") from None
        if not info["has_video"] or (audio is not None and not info["has_audio"]):
            raise RuntimeError(f"{path}: ffmpeg's mp4 lacks the video or the audio stream: {info}")
        os.replace(tmp, path)
    except BaseException:
        if writer is not None:
            try:
                writer.close()
            except Exception:
                pass
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return path


def render_video(landmarks: np.ndarray, path: str | os.PathLike, audio=None,
                 sample_rate: int | None = None, style: str = "painted",
                 size: tuple[int, int] = (512, 512), fps: float = FPS, progress: bool = False,
                 title: str | None = None) -> Path:
    """Render a landmark sequence to an mp4 with sound: :func:`render_frames` (one view fitted
    over the whole sequence) + :func:`write_video`.

    Args:
        landmarks: ``(F, 68, D)``, D = 2 or 3 (3 for ``style="3d"``), one frame per 1/fps s.
        path: ``.mp4`` destination (written atomically).
        audio / sample_rate: see :func:`write_video` (a path, or a waveform + its rate in Hz).
        style: one of :data:`STYLES`.
        size: ``(width, height)`` in pixels (even sizes avoid padding).
        fps: frames per second of the video (the landmarks' rate; 25 in this library).
        progress: tqdm progress bar.
        title: optional ASCII text at the top of every frame.

    Returns:
        ``Path(path)``: an mp4 of exactly F frames (F / fps seconds).

    Raises:
        ValueError: see :func:`render_frames` and :func:`write_video`.
        tf_talkface.audio.io.AudioError: unreadable audio file.
    """
    frames = render_frames(landmarks, style, size, title=title, fps=fps)
    return write_video(path, frames, fps=fps, audio=audio, sample_rate=sample_rate,
                       n_frames=len(landmarks), progress=progress)


def _side_by_side_frames(arrays, titles, style, size, fits, frame_numbers, fps):
    cv2 = _cv2()
    gens = [_frames(a, style, size, fit, t, fps) for a, t, fit in zip(arrays, titles, fits)]
    for f, imgs in enumerate(zip(*gens)):
        img = np.concatenate(imgs, axis=1)
        for k in range(1, len(imgs)):  # thin grey separator between panels
            img[:, k * size[0] - 1: k * size[0] + 1] = (150, 150, 150)
        if frame_numbers:
            h = img.shape[0]
            s = 0.45 * min(size) / 384
            cv2.putText(img, f"frame {f}  {f / fps:.2f} s", (6, h - 8), _FONT, s, (70, 70, 70),
                        1, cv2.LINE_AA)
        yield img


def render_side_by_side(panels: Sequence[tuple[str, np.ndarray]], path: str | os.PathLike,
                        audio=None, sample_rate: int | None = None, style: str = "lines",
                        size: tuple[int, int] = (384, 384), shared_view: bool = True,
                        frame_numbers: bool = False, progress: bool = False,
                        fps: float = FPS) -> Path:
    """Several landmark sequences next to each other in one mp4, each titled at the top
    (e.g. ``[("ground truth", gt), ("predicted", pred)]``).

    Args:
        panels: list of ``(title, landmarks)``; landmarks ``(F, 68, D)``, the same F for all.
        path: ``.mp4`` destination (written atomically).
        audio / sample_rate: see :func:`write_video`.
        style: one of :data:`STYLES`, used for every panel.
        size: ``(width, height)`` of ONE panel in pixels; the video is
            ``(len(panels) * width, height)``.
        shared_view: one view (2D) or one set of 3D axis limits fitted over all panels, so that
            they are drawn at the same scale and position (use False for sequences in different
            units, e.g. pixels vs normalised).
        frame_numbers: overlay "frame i  t s" at the bottom left.
        progress: tqdm progress bar.
        fps: frames per second.

    Returns:
        ``Path(path)``.

    Raises:
        ValueError: no panels, a bad panel shape, panels of different lengths (the message
            lists every panel's frame count), unknown style, ``"3d"`` with 2D landmarks.
    """
    if not panels:
        raise ValueError("render_side_by_side needs at least one (title, landmarks) panel")
    _check_style(style)
    titles, arrays = [], []
    for k, item in enumerate(panels):
        try:
            title, lm = item
        except (TypeError, ValueError):
            raise ValueError(f"panel {k} must be a (title, landmarks) pair") from None
        a, size = _prepare(lm, style, size, name=f"panel {k} ({title!r})")
        titles.append(str(title))
        arrays.append(a)
    lengths = [a.shape[0] for a in arrays]
    if len(set(lengths)) > 1:
        desc = ", ".join(f"{t!r}: {n}" for t, n in zip(titles, lengths))
        raise ValueError(f"all panels must have the same number of frames; got {desc}")
    if shared_view:
        fits = [_fit_for(arrays, style, size)] * len(arrays)
    else:
        fits = [_fit_for([a], style, size) for a in arrays]
    frames = _side_by_side_frames(arrays, titles, style, size, fits, frame_numbers, fps)
    return write_video(path, frames, fps=fps, audio=audio, sample_rate=sample_rate,
                       n_frames=lengths[0], progress=progress)


def save_frame_png(landmarks: np.ndarray, frame_index: int, path: str | os.PathLike,
                   style: str = "painted", size: tuple[int, int] = (512, 512),
                   title: str | None = None, fps: float = FPS) -> Path:
    """Write frame ``frame_index`` of the video :func:`render_video` would make as a PNG,
    atomically (same view fitted over the whole sequence, same 3D azimuth).

    Args:
        landmarks: ``(F, 68, D)``.
        frame_index: 0-based frame number (negative counts from the end).
        path: destination (``.png``); parent folders are created.
        style / size / title / fps: as for :func:`render_video`.

    Returns:
        ``Path(path)``.

    Raises:
        ValueError: see :func:`render_frames`. IndexError: ``frame_index`` out of range.
        OSError: the PNG could not be written.
    """
    cv2 = _cv2()
    a, size = _prepare(landmarks, style, size)
    n = a.shape[0]
    if not -n <= int(frame_index) < n:
        raise IndexError(f"frame_index {frame_index} out of range for {n} frames")
    f = int(frame_index) % n
    fit = _fit_for([a], style, size)
    img = _render_one(a[f], style, size, fit, f, fps, title)
    path = Path(path)
    with atomic_output(path, ".tmp.png") as tmp:
        if not cv2.imwrite(tmp, cv2.cvtColor(img, cv2.COLOR_RGB2BGR)):
            raise OSError(f"{path}: OpenCV could not write the PNG")
    return path
