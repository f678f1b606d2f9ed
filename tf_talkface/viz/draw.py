"""The face-drawing core: conventions, checks, the fitted view, the edges, the ``"lines"`` style.

Every renderer of 68-point faces builds on this module: the ``"painted"`` style
(:mod:`tf_talkface.viz.painted`), the ``"3d"`` style (:mod:`tf_talkface.viz.draw3d`), the
sequence renderers (:mod:`tf_talkface.viz.render`) and the matplotlib plots
(:func:`draw_face`, :mod:`tf_talkface.viz.plots`).

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
* Edges: :data:`FACE_EDGES` and :data:`MOUTH_EDGES` split the original drawing's
  :data:`~tf_talkface.face.topology.EDGES`; every style draws the mouth in its own colour.

Styles (:data:`STYLES`): ``"painted"`` (a cartoon face, the 2020 demo look), ``"lines"`` (the 2018
look: black edges and points on white, mouth in red; :func:`draw_lines`), ``"3d"`` (matplotlib
wireframe, needs ``D == 3``).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tf_talkface.face.topology import EDGES, LEFT_BROW, MOUTH, N_POINTS, RIGHT_BROW

__all__ = [
    "STYLES", "LINES_BACKGROUND", "LINES_COLOR", "LINES_MOUTH_COLOR", "TEXT_COLOR", "FACE_EDGES",
    "MOUTH_EDGES", "SHIFT", "ONE", "View", "fit_view", "draw_lines", "draw_face", "check_style",
    "check_size", "check_landmarks", "valid_frames", "check_points_px", "to_fixed", "line_width",
    "blank_image", "put_text_centred", "empty_frame", "face_axes", "forehead",
    "painted_extent_points",
]

STYLES = ("painted", "lines", "3d")
"""Valid values of every ``style`` argument."""

LINES_BACKGROUND = (255, 255, 255)
LINES_COLOR = (0, 0, 0)
LINES_MOUTH_COLOR = (220, 30, 30)
TEXT_COLOR = (90, 90, 90)
"""RGB of the note on empty (NaN) frames."""

_MOUTH = frozenset(int(i) for i in MOUTH)
FACE_EDGES: tuple[tuple[int, int], ...] = tuple(
    (i, j) for i, j in EDGES if not (i in _MOUTH and j in _MOUTH))
"""The drawing edges ``(i, j)`` outside the mouth, in :data:`EDGES` order."""
MOUTH_EDGES: tuple[tuple[int, int], ...] = tuple(
    (i, j) for i, j in EDGES if i in _MOUTH and j in _MOUTH)
"""The drawing edges with both ends on the lips (48-67), in :data:`EDGES` order."""

SHIFT = 4
"""OpenCV fixed-point sub-pixel bits: coordinates are passed as ``round(x * 16)`` (:func:`to_fixed`)."""
ONE = 1 << SHIFT
"""One pixel in OpenCV fixed-point units (16)."""
_FONT = None  # set lazily to cv2.FONT_HERSHEY_SIMPLEX


def _cv2():
    import cv2

    global _FONT
    _FONT = cv2.FONT_HERSHEY_SIMPLEX
    return cv2


# ----------------------------------------------------------------------------- validation


def check_style(style: str) -> str:
    """``style`` if it is one of :data:`STYLES`. Raises ValueError otherwise."""
    if style not in STYLES:
        raise ValueError(f"unknown style {style!r}; valid styles: {', '.join(STYLES)}")
    return style


def check_size(size) -> tuple[int, int]:
    """``(width, height)`` as two ints >= 16 (pixels). Raises ValueError otherwise."""
    try:
        w, h = (int(v) for v in size)
    except (TypeError, ValueError):
        raise ValueError(f"size must be (width, height) in pixels, got {size!r}") from None
    if (w, h) != tuple(size) or w < 16 or h < 16:
        raise ValueError(f"size must be two integers >= 16 (width, height in pixels), got {size!r}")
    return w, h


def check_landmarks(landmarks, name: str = "landmarks") -> np.ndarray:
    """Validate a ``(F, 68, D)`` real array (D in {2, 3}, F >= 1) and return it as float64.

    Raises:
        ValueError: another shape, no frame, or a non-real dtype (the message uses ``name``).
    """
    a = np.asarray(landmarks)
    if a.ndim != 3 or a.shape[1] != N_POINTS or a.shape[2] not in (2, 3):
        raise ValueError(
            f"{name} must have shape (frames, {N_POINTS}, D) with D = 2 or 3, got {a.shape}")
    if a.shape[0] == 0:
        raise ValueError(f"{name} has 0 frames; need at least one")
    if not np.issubdtype(a.dtype, np.number) or np.issubdtype(a.dtype, np.complexfloating):
        raise ValueError(f"{name} must be real numbers, got dtype {a.dtype}")
    return a.astype(np.float64, copy=False)


def valid_frames(a: np.ndarray) -> np.ndarray:
    """Boolean (F,): frames of ``a`` (F, ...) whose every coordinate is finite."""
    return np.all(np.isfinite(a.reshape(a.shape[0], -1)), axis=1)


def check_points_px(points_px, size) -> tuple[np.ndarray | None, tuple[int, int]]:
    """``(points (68, 2) float64 or None if any is NaN, (width, height))``.

    Raises:
        ValueError: ``points_px`` is not ``(68, >=2)`` or ``size`` is bad.
    """
    size = check_size(size)
    p = np.asarray(points_px, dtype=np.float64)
    if p.shape[0] != N_POINTS or p.ndim != 2 or p.shape[1] < 2:
        raise ValueError(f"points_px must have shape ({N_POINTS}, 2), got {p.shape}")
    p = p[:, :2]
    return (p if np.all(np.isfinite(p)) else None), size


# ---------------------------------------------------------------------- face geometry


def face_axes(p: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """(unit, right, up) of a (68, 2) face: unit = outer eye-corner distance (same units as
    ``p``), right = unit vector from eye corner 36 to 45, up = unit vector towards the brows
    (image y is down)."""
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


def forehead(p: np.ndarray, n: int = 24) -> np.ndarray:
    """(n + 10, 2) points closing the face over the brows (same units as ``p``): a
    super-elliptic arc from jaw end 16 over the top to jaw end 0, rising 0.6 eye-corner
    distances above the highest brow point, plus the brow points raised by 0.15 of that
    distance (so the arc never cuts the brows). Similarity-invariant."""
    unit, _, up = face_axes(p)
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


def painted_extent_points(p: np.ndarray) -> np.ndarray:
    """All points the painted face covers (landmarks + :func:`forehead`), in the units of the
    (68, >=2) ``p``; the forehead construction is similarity-invariant, so this works in
    landmark units as well as in pixels."""
    return np.concatenate([p[:, :2], forehead(p[:, :2])])


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


def _fit_points(a: np.ndarray, style: str) -> np.ndarray:
    """The points (F', N, 2) a style's drawing covers in its drawable frames, for fitting its
    view (the painted face adds its forehead; its neck may run off the image)."""
    if style != "painted":
        return a[..., :2]
    ok = np.flatnonzero(valid_frames(a))
    if len(ok) == 0:
        return a[:0, :, :2]
    return np.stack([painted_extent_points(a[f, :, :2]) for f in ok])


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
            :func:`~tf_talkface.viz.render.render_frames` does for it); ``None`` or another
            style: the points only.

    Returns:
        the :class:`View`.

    Raises:
        ValueError: bad shapes or margin, or no frame without NaN in any sequence.
    """
    w, h = check_size(size)
    if not 0.0 <= float(margin) < 0.5:
        raise ValueError(f"margin must be in [0, 0.5), got {margin!r}")
    if isinstance(sequences, np.ndarray):
        sequences = [sequences]
    if style is not None and check_style(style) == "painted":
        sequences = [_fit_points(check_landmarks(np.asarray(s)[None] if np.ndim(s) == 2 else s,
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


# ------------------------------------------------------------------- raster primitives


def to_fixed(points: np.ndarray) -> np.ndarray:
    """Float pixel coordinates -> OpenCV fixed-point int32 (N, 2) (use with ``shift=SHIFT``)."""
    return np.round(np.asarray(points, dtype=np.float64) * ONE).astype(np.int32).reshape(-1, 2)


def line_width(x: float) -> int:
    """A line width in whole pixels (>= 1) for a wanted width ``x`` in pixels."""
    return max(1, int(round(x)))


def blank_image(size, color) -> np.ndarray:
    """A ``uint8`` (H, W, 3) image of ``size = (W, H)`` filled with the RGB ``color``."""
    w, h = size
    img = np.empty((h, w, 3), dtype=np.uint8)
    img[:] = color
    return img


def put_text_centred(img: np.ndarray, text: str, y: float, color, max_scale: float = 0.9,
                     thickness: int | None = None) -> None:
    """Draw one line of ASCII ``text`` on ``img`` (in place) centred horizontally with its
    vertical centre at pixel row ``y``, shrinking it to fit the width."""
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


def empty_frame(size, background, note: str = "no landmarks (NaN)") -> np.ndarray:
    """The frame drawn for a face with NaN points: ``background`` with a centred ``note``."""
    img = blank_image(size, background)
    put_text_centred(img, note, size[1] / 2, TEXT_COLOR, max_scale=0.6)
    return img


# ------------------------------------------------------------------------------- styles


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
    p, size = check_points_px(points_px, size)
    if p is None:
        return np.array(image, order="C") if image is not None else empty_frame(size, background)
    img = np.array(image, order="C") if image is not None else blank_image(size, background)
    m = min(size)
    lw = thickness or line_width(m / 256)
    r = point_radius if point_radius is not None else max(1.5, m / 160)
    cv2.polylines(img, [to_fixed(p[[i, j]]) for i, j in FACE_EDGES], False, color, lw,
                  cv2.LINE_AA, SHIFT)
    cv2.polylines(img, [to_fixed(p[[i, j]]) for i, j in MOUTH_EDGES], False, mouth_color, lw,
                  cv2.LINE_AA, SHIFT)
    rr = int(round(r * ONE))
    for i, c in enumerate(to_fixed(p)):
        cv2.circle(img, (int(c[0]), int(c[1])), rr, mouth_color if i in _MOUTH else color, -1,
                   cv2.LINE_AA, SHIFT)
    return img


def draw_face(ax, points: np.ndarray, color="k", lw: float = 1.0, ms: float = 2.0,
              label: str | None = None, mouth_color=None) -> None:
    """Draw one face on a matplotlib axis: its :data:`EDGES` and its points.

    Args:
        ax: a matplotlib ``Axes``.
        points: ``(68, D)``, D >= 2, any units (x right, y down in image convention; invert the
            axis yourself for a blank canvas).
        color: matplotlib colour of the edges and points.
        lw / ms: line width and marker size in points.
        label: legend label (given to the first edge only).
        mouth_color: colour of the :data:`MOUTH_EDGES` (default ``color``).
    """
    p = np.asarray(points)[:, :2]
    mouth_edges = set(MOUTH_EDGES)
    for k, (i, j) in enumerate(EDGES):
        c = mouth_color if (mouth_color and (i, j) in mouth_edges) else color
        ax.plot([p[i, 0], p[j, 0]], [p[i, 1], p[j, 1]], "-", color=c, lw=lw,
                label=label if k == 0 else None)
    ax.plot(p[:, 0], p[:, 1], "o", color=color, ms=ms)
