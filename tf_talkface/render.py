"""Drawing 68-point landmarks: line drawings of faces, overlays on video frames.

Everything draws with matplotlib (Agg backend, no display needed) from
:data:`tf_talkface.face.topology.EDGES`. Video writing with sound is added by the generate issue.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from tf_talkface.face.topology import EDGES, MOUTH


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def draw_face(ax, points: np.ndarray, color: str = "k", lw: float = 1.0, ms: float = 2.0,
              label: str | None = None, mouth_color: str | None = None) -> None:
    """Draw one (68, 2+) shape on a matplotlib axis: points and the original's edges (x right,
    y down in image convention; invert the axis yourself for a blank canvas)."""
    p = np.asarray(points)[:, :2]
    for k, (i, j) in enumerate(EDGES):
        c = mouth_color if (mouth_color and i in MOUTH and j in MOUTH) else color
        ax.plot([p[i, 0], p[j, 0]], [p[i, 1], p[j, 1]], "-", color=c, lw=lw,
                label=label if k == 0 else None)
    ax.plot(p[:, 0], p[:, 1], "o", color=color, ms=ms)


def save_figure(fig, path: str | os.PathLike, dpi: int = 100) -> Path:
    """Save a matplotlib figure atomically (temp file + rename) and close it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.stem + ".tmp" + path.suffix)
    fig.savefig(tmp, dpi=dpi, bbox_inches="tight")
    _plt().close(fig)
    os.replace(tmp, path)
    return path


def overlay_panels(frame: np.ndarray, panels: list[tuple[str, list[tuple[np.ndarray, str]]]],
                   path: str | os.PathLike, title: str = "") -> Path:
    """One row of panels, each the video ``frame`` (H, W, 3) uint8 with landmark sets drawn over
    it: ``panels = [(panel title, [(points (68, 2) in pixels, colour), ...]), ...]``."""
    plt = _plt()
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 4.2 * frame.shape[0] / frame.shape[1] + 0.6))
    axes = np.atleast_1d(axes)
    for ax, (name, sets) in zip(axes, panels):
        ax.imshow(frame)
        for pts, color in sets:
            draw_face(ax, pts, color=color, lw=0.9, ms=1.5, mouth_color="red")
        ax.set_title(name, fontsize=9)
        ax.axis("off")
    if title:
        fig.suptitle(title, fontsize=10)
    return save_figure(fig, path)
