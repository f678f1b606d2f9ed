"""The ``"3d"`` style: a matplotlib 3D wireframe of 3D faces with a sweeping camera.

Built on the drawing core (:mod:`tf_talkface.viz.draw`; conventions there): the same
:data:`~tf_talkface.viz.draw.FACE_EDGES` / :data:`~tf_talkface.viz.draw.MOUTH_EDGES` as the
2D styles, the mouth in :data:`~tf_talkface.viz.draw.LINES_MOUTH_COLOR`.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from tf_talkface.config import FPS
from tf_talkface.face.topology import N_POINTS
from tf_talkface.viz.draw import (
    FACE_EDGES, LINES_BACKGROUND, LINES_MOUTH_COLOR, MOUTH_EDGES, check_size, empty_frame,
    valid_frames)

__all__ = ["AZIMUTH_AMPLITUDE_DEG", "AZIMUTH_PERIOD_S", "ELEVATION_DEG", "azimuth_at", "fit_box3d",
           "draw_3d"]

AZIMUTH_AMPLITUDE_DEG = 30.0
"""Half-range of the ``"3d"`` style's camera sweep, degrees."""
AZIMUTH_PERIOD_S = 4.0
"""Period of the ``"3d"`` style's camera sweep, seconds."""
ELEVATION_DEG = 10.0
"""Camera elevation of the ``"3d"`` style, degrees."""


def azimuth_at(frame_index: float, fps: float = FPS) -> float:
    """Camera azimuth of the ``"3d"`` style at a frame, in degrees (0 = frontal):
    ``AZIMUTH_AMPLITUDE_DEG * sin(2 pi t / AZIMUTH_PERIOD_S)`` with ``t = frame_index / fps`` s."""
    t = float(frame_index) / float(fps)
    return AZIMUTH_AMPLITUDE_DEG * math.sin(2.0 * math.pi * t / AZIMUTH_PERIOD_S)


def fit_box3d(sequences: Sequence[np.ndarray], margin: float = 0.05):
    """Cubic axis limits ``((x0, x1), (y0, y1), (z0, z1))`` (landmark units) around all finite
    points of the ``(F, 68, 3)`` sequences (``((-1, 1),) * 3`` when there is none)."""
    pts = np.concatenate([a[valid_frames(a)].reshape(-1, 3) for a in sequences])
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
        for line, edges in ((self.face, FACE_EDGES), (self.mouth, MOUTH_EDGES)):
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
            import cv2

            img = cv2.resize(img, self.size, interpolation=cv2.INTER_AREA)
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
    """Matplotlib 3D wireframe of one 3D face: the 68 points and the edges (mouth in red).

    One matplotlib figure per ``size`` is created once and reused (not thread-safe).

    Args:
        points: ``(68, 3)`` landmarks (x right, y down, z towards the viewer), any units.
        azimuth_deg: camera rotation about the vertical axis in degrees; 0 = frontal.
        size: ``(width, height)`` in pixels.
        limits: ``((x0, x1), (y0, y1), (z0, z1))`` axis limits in landmark units; default: a
            cube around these points (:func:`fit_box3d`). Pass the same limits for every frame
            of a video (as :func:`~tf_talkface.viz.render.render_frames` does) so the scale does
            not change between frames.
        elevation_deg: camera elevation in degrees.

    Returns:
        ``uint8`` ``(H, W, 3)`` RGB image (white background). NaN points give the empty frame.

    Raises:
        ValueError: ``points`` is not ``(68, 3)`` (a 2D ``(68, 2)`` shape has no 3D view).
    """
    size = check_size(size)
    p = np.asarray(points, dtype=np.float64)
    if p.shape != (N_POINTS, 3):
        raise ValueError(
            f"the 3d style needs 3D landmarks of shape ({N_POINTS}, 3) per frame (D = 3), got "
            f"{p.shape}; use style 'painted' or 'lines' for 2D landmarks")
    if not np.all(np.isfinite(p)):
        return empty_frame(size, LINES_BACKGROUND)
    if limits is None:
        limits = fit_box3d([p[None]])
    return _canvas3d(size).draw(p, azimuth_deg, limits, elevation_deg)
