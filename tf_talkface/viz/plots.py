"""Matplotlib plots: the pyplot set-up, atomic figure saving, landmark overlays on video frames.

Faces are drawn with the core's :func:`tf_talkface.viz.draw.draw_face` (same edges and mouth
colouring as every other style). Matplotlib runs on the Agg backend (no display needed) and is
imported only when a plot is made.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from tf_talkface.viz.draw import draw_face

__all__ = ["pyplot", "save_figure", "overlay_panels"]


def pyplot():
    """``matplotlib.pyplot`` on the Agg backend (no display; safe in workers and on servers)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: str | os.PathLike, dpi: int = 100) -> Path:
    """Save a matplotlib figure atomically (temp file + rename) and close it.

    Args:
        fig: a matplotlib ``Figure``.
        path: destination; the format follows its suffix (``.png``, ``.pdf``, ...); parent
            folders are created.
        dpi: dots per inch.

    Returns:
        ``Path(path)``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.stem + ".tmp" + path.suffix)
    fig.savefig(tmp, dpi=dpi, bbox_inches="tight")
    pyplot().close(fig)
    os.replace(tmp, path)
    return path


def overlay_panels(frame: np.ndarray, panels: list[tuple[str, list[tuple[np.ndarray, str]]]],
                   path: str | os.PathLike, title: str = "") -> Path:
    """One row of panels, each the video ``frame`` with landmark sets drawn over it, saved as
    a figure (atomically).

    Args:
        frame: ``uint8`` (H, W, 3) RGB video frame.
        panels: ``[(panel title, [(points (68, 2) in pixels, matplotlib colour), ...]), ...]``.
        path: destination (e.g. ``.png``).
        title: figure title.

    Returns:
        ``Path(path)``.
    """
    plt = pyplot()
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
